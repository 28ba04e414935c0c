"""Re-record tests/data/inspect.json: ``python tests/record_inspect.py`` (needs root and docker.io).

Runs one container per configuration on a private dockerd and saves what ``docker
inspect`` says of it while it runs, so the pure-policy unit tests read the engine's real
output for a started container (``Mounts``, ``AppArmorProfile``, ``State``) rather than JSON
written by hand or a container that was only created.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from harness import IMAGE, PrivateDockerd, busybox_tar

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
    # the catalogue (issue 3): each with the original three satisfied
    "hardened": {"cap_drop": ["ALL"], "cap_add": ["CHOWN"], "security_opt": ["no-new-privileges"],
                 "read_only": True, "mem_limit": "64m", "cpu_shares": 512, "pids_limit": 100,
                 "user": "1000:1000", "restart_policy": {"Name": "on-failure", "MaximumRetryCount": 3},
                 "healthcheck": {"test": ["CMD", "true"], "interval": 10**10},
                 "volumes": {"/srv/data": {"bind": "/data", "mode": "ro"},
                             "/etc": {"bind": "/host-etc", "mode": "ro"}}},
    "loose": {"cap_drop": ["ALL"], "cap_add": ["NET_ADMIN", "sys_ptrace"],
              "security_opt": ["no-new-privileges:false", "seccomp=unconfined", "apparmor=unconfined"],
              "pid_mode": "host", "ipc_mode": "host", "uts_mode": "host", "userns_mode": "host",
              "devices": ["/dev/null:/dev/xnull:rwm"], "cgroup_parent": "/covtest",
              "restart_policy": {"Name": "always"}, "user": "0:0",
              "volumes": {"/etc": {"bind": "/host-etc", "mode": "rw"},
                          "/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"},
                          "/srv/shared": {"bind": "/shared", "mode": "rshared"}}},
    "host-network": {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges"], "network_mode": "host",
                     "healthcheck": {"test": ["NONE"]}, "user": "root",
                     "restart_policy": {"Name": "on-failure", "MaximumRetryCount": 0}},
}
# Created with these, then given port bindings by hand: a daemon with --bridge=none has
# no network that can publish ports.
PORTS = {"ports-loopback": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]},
         "ports-wide": {"80/tcp": [{"HostIp": "", "HostPort": "80"}],
                        "443/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8443"}],
                        "53/udp": [{"HostIp": "::", "HostPort": ""}]}}


def image_with_passwd(client: Any) -> None:
    """The tests' busybox image (same tag) plus an /etc/passwd, so ``--user root`` starts."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        busybox_tar(tar)
        passwd = b"root:x:0:0:root:/root:/bin/sh\n"
        info = tarfile.TarInfo("etc/passwd")
        info.size = len(passwd)
        tar.addfile(info, io.BytesIO(passwd))
    repo, _, tag = IMAGE.partition(":")
    client.api.import_image_from_data(buf.getvalue(), repository=repo, tag=tag)


def running(client: Any, container_id: str) -> dict[str, Any]:
    """The inspect of a started container, then the container removed."""
    data: dict[str, Any] = client.api.inspect_container(container_id)
    if not data["State"]["Running"]:
        raise RuntimeError(f"{data['Name']} did not start: {data['State']}")
    client.api.remove_container(container_id, force=True)
    return data


def main() -> None:
    for path in ("/srv/data", "/srv/shared"):
        Path(path).mkdir(parents=True, exist_ok=True)
    # rshared needs a shared mount to start (this host's / is private): a tmpfs of our own
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/srv/shared"], check=True)
    subprocess.run(["mount", "--make-shared", "/srv/shared"], check=True)
    daemon = PrivateDockerd()
    try:
        daemon.start()
        client = daemon.client()
        image_with_passwd(client)
        recorded = {}
        for case, options in CASES.items():
            create = {"network_mode": "none", **options}
            c = client.containers.run(IMAGE, ["sleep", "3600"], name=case, detach=True, **create)
            recorded[case] = running(client, c.id)
        for case, bindings in PORTS.items():
            c = client.containers.run(IMAGE, ["sleep", "3600"], name=case, network_mode="none", detach=True,
                                      cap_drop=["ALL"], security_opt=["no-new-privileges"])
            recorded[case] = running(client, c.id)
            recorded[case]["HostConfig"]["PortBindings"] = bindings
        out = Path(__file__).parent / "data" / "inspect.json"
        out.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
        print(f"recorded {len(recorded)} containers in {out}")
    finally:
        daemon.stop()
        subprocess.run(["umount", "-l", "/srv/shared"], check=False)
        for path in ("/srv/data", "/srv/shared"):
            with contextlib.suppress(OSError):
                Path(path).rmdir()


if __name__ == "__main__":
    main()
