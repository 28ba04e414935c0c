"""Privileges and capabilities: privileged mode, what the capability set adds or keeps,
and whether the process runs as root."""

from __future__ import annotations

import re

from .model import Container, Settings
from .reading import DOCKER_DEFAULT_CAPS, _listed, capabilities, config, effective_capabilities, host_config

# Every capability of Linux before 5.8 (CAP_CHOWN..CAP_AUDIT_READ): adding all of them by
# name is adding ALL, whatever newer ones (PERFMON, BPF, CHECKPOINT_RESTORE) the kernel knows.
ALL_CAPS = frozenset(
    {"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
     "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
     "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
     "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL",
     "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ"}
)
ROOT_USERS = ("", "root", "0")


def _privileged(c: Container, s: Settings) -> str | None:
    return "" if host_config(c).get("Privileged") and not s["privileged"] else None


def _cap_drop(c: Container, s: Settings) -> str | None:
    missing = s["cap_drop_required"] and "ALL" not in capabilities(host_config(c).get("CapDrop"))
    return "" if missing else None


def _cap_add_all(c: Container, s: Settings) -> str | None:
    if s["privileged"]:
        return None
    every = "ALL" in capabilities(host_config(c).get("CapAdd")) or effective_capabilities(c) >= ALL_CAPS
    return "" if every else None


def _cap_add_extra(c: Container, s: Settings) -> str | None:
    if not s["no_added_capabilities"]:
        return None
    allowed = DOCKER_DEFAULT_CAPS | capabilities(s["allowed_capabilities"] or [])
    extra = capabilities(host_config(c).get("CapAdd")) - allowed - {"ALL"}
    return f": {_listed(extra)}" if extra else None


def _root_user(c: Container, s: Settings) -> str | None:
    if not s["non_root_required"]:
        return None
    user = str(config(c).get("User") or "").partition(":")[0].strip()
    return f" ({user or 'user unset'})" if is_root(user) else None


def is_root(user: str) -> bool:
    """The user part of ``--user`` names root: unset, ``root``, or a number Go's
    ``strconv.Atoi`` reads as 0 (``0``, ``00``, ``+0``, ``-0``), as runc's user lookup does."""
    return user in ROOT_USERS or (re.fullmatch(r"[+-]?[0-9]+", user) is not None and int(user) == 0)
