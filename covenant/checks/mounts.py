"""Mounts and host paths: which host directories a container's binds reach (sensitive
ones, the engine's socket, paths outside the allowed prefixes), how they propagate, and
whether its own root filesystem is writable."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from ..reach import clean_path, is_under, reaches
from .model import Container, Settings
from .reading import _listed, bind_mounts, host_config, host_source

# The engine's own sockets and run directory: a bind of any of them, or of a directory
# holding them (/run, /var/run, /), hands the container the engine.
DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")
ENGINE_PATHS = (*DOCKER_SOCKETS, "/run/docker", "/var/run/docker")
# CIS 5.5's eight and everything under them ("/" only as a bind of "/" itself, which
# reaches everything), the merged-/usr links into /usr, the engine's data, root's home and
# the engine's sockets. A bind reaches a path it contains too: /var reaches /var/lib/docker.
SENSITIVE_HOST_PATHS = ("/", "/boot", "/dev", "/etc", "/lib", "/proc", "/sys", "/usr",
                        "/bin", "/sbin", "/lib32", "/lib64", "/libx32",
                        "/var/lib/docker", "/root", *ENGINE_PATHS)


def _sensitive_mounts(c: Container, s: Settings) -> str | None:
    if not s["sensitive_mounts_forbidden"]:
        return None
    sensitive = (*SENSITIVE_HOST_PATHS, *(s["sensitive_paths"] or []))
    bad = {host_source(m) for m in bind_mounts(c)
           if m.get("RW", True) and any(reaches(str(m.get("Source", "")), p) for p in sensitive)}
    return f": {_listed(bad)}" if bad else None


def _shared_propagation(c: Container, s: Settings) -> str | None:
    if not s["shared_propagation_forbidden"]:
        return None
    bad = {m.get("Destination", "") for m in bind_mounts(c) if m.get("Propagation") in ("shared", "rshared")}
    return f": {_listed(bad)}" if bad else None


def _docker_socket(c: Container, s: Settings) -> str | None:
    if not s["docker_socket_forbidden"]:
        return None
    found = {host_source(m) for m in bind_mounts(c) if _is_docker_socket(m)}
    return f": {_listed(found)}" if found else None


def _is_docker_socket(mount: Mapping[str, Any]) -> bool:
    """The engine's socket or run directory, or a directory holding them, or anything
    named ``docker.sock``, or a bind onto the container's own socket path."""
    source, target = clean_path(mount.get("Source", "")), clean_path(mount.get("Destination", ""))
    return (any(reaches(source, p) for p in ENGINE_PATHS) or target in DOCKER_SOCKETS
            or posixpath.basename(source) == "docker.sock")


def _bind_prefixes(c: Container, s: Settings) -> str | None:
    prefixes = s["bind_mount_prefixes"]
    if prefixes is None:
        return None
    bad = {host_source(m) for m in bind_mounts(c)
           if not any(is_under(str(m.get("Source", "")), p) for p in prefixes)}
    return f": {_listed(bad)}" if bad else None


def _read_only(c: Container, s: Settings) -> str | None:
    return "" if s["read_only_required"] and not host_config(c).get("ReadonlyRootfs") else None
