"""The bar: a bare script that kills every container whose name starts with PREFIX the
instant it sees the `start` event -- no inspect, no policy, no logging.

    python bench/baseline.py PREFIX
"""

import contextlib
import sys

import docker


def main() -> None:
    prefix = sys.argv[1]
    api = docker.from_env().api
    events = api.events(decode=True, filters={"type": "container", "event": "start"})
    print("ready", flush=True)  # subscribed: the response headers have arrived
    for event in events:
        if event.get("Actor", {}).get("Attributes", {}).get("name", "").startswith(prefix):
            with contextlib.suppress(docker.errors.APIError):
                api.kill(event["Actor"]["ID"])


if __name__ == "__main__":
    main()
