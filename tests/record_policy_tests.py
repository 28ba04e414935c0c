"""Re-record policy-tests/data/*.json: ``python tests/record_policy_tests.py`` (needs root and docker.io).

The sample policies' test files (``policy-tests/``) judge `docker inspect` output of
containers that really ran: each is started on a private dockerd, inspected while it
runs, and saved as the Docker CLI's ``docker inspect`` saves it (a JSON array).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from harness import IMAGE, PrivateDockerd, busybox_image

OUT = Path(__file__).resolve().parent.parent / "policy-tests" / "data"
COMPLIANT = {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges"]}
# file -> container name -> options of `docker run`
FILES: dict[str, dict[str, dict[str, Any]]] = {
    # the sections of docker-covenant.yml (by exact name), and containers none selects
    "sample-policy.json": {
        "docker-bench-security": {"privileged": True, "cap_add": ["ALL"],
                                  "security_opt": ["apparmor=docker-default"]},
        "privoxy": {"cap_drop": ["all"]},
        "docker-covenant": {"cap_drop": ["ALL"]},
        "web": {"privileged": True},
        "app": COMPLIANT,
    },
    # what bench/issue12.yml's rules name (db-*, prod-*), judged as containers
    "issue12.json": {
        "db-1": COMPLIANT,
        "prod-api": {"security_opt": ["no-new-privileges"]},
    },
}


def main() -> None:
    daemon = PrivateDockerd()
    try:
        daemon.start()
        client = daemon.client()
        busybox_image(client)
        OUT.mkdir(parents=True, exist_ok=True)
        for file, containers in FILES.items():
            saved = []
            for name, options in containers.items():
                c = client.containers.run(IMAGE, ["sleep", "3600"], name=name, detach=True,
                                          network_mode="none", **options)
                data = client.api.inspect_container(c.id)
                if not data["State"]["Running"]:
                    raise RuntimeError(f"{name} did not start: {data['State']}")
                saved.append(data)
                c.remove(force=True)
            (OUT / file).write_text(json.dumps(saved, indent=4) + "\n")
            print(f"recorded {len(saved)} containers in {OUT / file}")
    finally:
        daemon.stop()


if __name__ == "__main__":
    main()
