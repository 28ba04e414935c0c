"""Re-record tests/data/inspect.json: ``python tests/record_inspect.py`` (needs root and docker.io).

Creates (does not start) one container per configuration on a private dockerd and
saves what ``docker inspect`` says of it, so the pure-policy unit tests read the
engine's real output rather than JSON written by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness import IMAGE, PrivateDockerd, busybox_image

CASES = {
    "default": {},
    "compliant": {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges"]},
    "privileged": {"privileged": True},
    "cap-drop-some": {"cap_drop": ["NET_RAW"], "security_opt": ["apparmor=docker-default"]},
    "cap-drop-lowercase": {"cap_drop": ["all", "cap_net_raw"], "security_opt": ["no-new-privileges:true"]},
    "cap-add-all": {"cap_drop": ["ALL"], "cap_add": ["all"], "security_opt": ["no-new-privileges"]},
    "seccomp-unconfined": {"cap_drop": ["ALL"], "security_opt": ["seccomp=unconfined"]},
    "disabling-only": {"cap_drop": ["ALL"], "security_opt": ["apparmor=unconfined", "label=disable"]},
    "old-colon-syntax": {"cap_drop": ["ALL"], "security_opt": ["seccomp:unconfined"]},
}


def main() -> None:
    daemon = PrivateDockerd()
    try:
        daemon.start()
        client = daemon.client()
        busybox_image(client)
        recorded = {}
        for case, options in CASES.items():
            c = client.containers.create(IMAGE, ["sleep", "1"], name=case, network_mode="none", **options)
            recorded[case] = client.api.inspect_container(c.id)
        out = Path(__file__).parent / "data" / "inspect.json"
        out.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
        print(f"recorded {len(recorded)} containers in {out}")
    finally:
        daemon.stop()


if __name__ == "__main__":
    main()
