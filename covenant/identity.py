"""Which container, if any, this process runs in — so it never stops itself.

Docker bind-mounts ``<data-root>/containers/<id>/hostname`` onto ``/etc/hostname`` of
every container; that mount is in our own mount table whatever the container is named
and whatever cgroup layout the host uses. The cgroup path is the fallback for
engines that set no hostname file.
"""

from __future__ import annotations

import re

_ID = re.compile(r"/containers/([0-9a-f]{64})/(?:hostname|hosts|resolv\.conf)$")
_CGROUP_ID = re.compile(r"(?:docker[-/]|/)([0-9a-f]{64})(?:\.scope)?$")


def container_id_from_mountinfo(text: str) -> str | None:
    """The id in the root of the mount on /etc/hostname (proc(5) mountinfo fields 4, 5)."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) > 4 and parts[4] in ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf"):
            match = _ID.search(parts[3])
            if match:
                return match.group(1)
    return None


def container_id_from_cgroup(text: str) -> str | None:
    for line in text.splitlines():
        match = _CGROUP_ID.search(line.strip())
        if match:
            return match.group(1)
    return None


def own_container_id(proc: str = "/proc/self") -> str | None:
    """This process's container id, or None on the host."""
    for name, parse in (("mountinfo", container_id_from_mountinfo), ("cgroup", container_id_from_cgroup)):
        try:
            with open(f"{proc}/{name}", encoding="utf-8", errors="replace") as f:
                found = parse(f.read())
        except OSError:
            continue
        if found:
            return found
    return None
