"""Reading the inspect data: the fields the checks judge, read the way dockerd reads them.

Capabilities are normalised as the engine does, security options are cut as dockerd's
``parseSecurityOpt`` cuts them, and bind mounts are those ``reach`` resolved, so that a
check asks one question of one shape and never re-parses a field itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..reach import clean_path, mounts
from .model import Container, Settings

# Options that name a security mechanism only to switch it off: a container
# carrying nothing but these has no security option worth the name.
# (A bare ``disable`` is ``label=disable`` to dockerd; ``writable-cgroups`` only weakens.)
DISABLING_SECURITY_OPTS = frozenset(
    {"seccomp=unconfined", "apparmor=unconfined", "label=disable", "disable", "systempaths=unconfined",
     "no-new-privileges=false", "writable-cgroups", "writable-cgroups=true"}
)
# Go's strconv.ParseBool, which dockerd applies to ``no-new-privileges=VALUE``; any other
# value makes dockerd refuse the container.
GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
# Docker's default capability set (moby oci/caps/defaults.go).
DOCKER_DEFAULT_CAPS = frozenset(
    {"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
     "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"}
)


def container_name(container: Container) -> str:
    """The name as ``docker ps`` shows it (inspect prefixes a slash)."""
    return str(container.get("Name") or container.get("Id", "")[:12]).lstrip("/")


def host_config(container: Container) -> Mapping[str, Any]:
    return container.get("HostConfig") or {}


def config(container: Container) -> Mapping[str, Any]:
    return container.get("Config") or {}


def capability(name: str) -> str:
    """Normalise a capability the way the engine does: any case, ``CAP_`` optional."""
    upper = name.strip().upper()
    return upper[4:] if upper.startswith("CAP_") else upper


def capabilities(values: Iterable[str] | str | None) -> frozenset[str]:
    if values is None:
        return frozenset()
    if isinstance(values, str):
        values = [values]
    return frozenset(capability(v) for v in values)


def normalise_security_opt(option: str) -> str:
    """``seccomp:unconfined`` (the old separator) means ``seccomp=unconfined``."""
    key, sep, value = option.partition("=")
    if not sep:
        key, sep, value = option.partition(":")
    key = key.strip().lower()
    return f"{key}={value.strip().lower()}" if sep else key


def security_opts(container: Container) -> list[str]:
    return [normalise_security_opt(o) for o in host_config(container).get("SecurityOpt") or []]


def split_security_opt(option: str) -> tuple[str, str | None]:
    """(key, value) exactly as dockerd cuts an option (daemon parseSecurityOpt): at the
    first ``=``, else at the first ``:``; no trimming, no case folding."""
    for sep in ("=", ":"):
        if sep in option:
            key, _, value = option.partition(sep)
            return key, value
    return option, None


def no_new_privileges(container: Container) -> bool:
    """Whether dockerd sets no-new-privileges: a bare ``no-new-privileges`` or a value Go's
    ``strconv.ParseBool`` reads as true, the last occurrence winning. A value it cannot
    read makes dockerd refuse the container; here it protects nothing."""
    value = False
    for option in host_config(container).get("SecurityOpt") or []:
        key, raw = split_security_opt(str(option))
        if key == "no-new-privileges":
            value = raw is None or raw in GO_TRUE
    return value


def protective_security_opts(container: Container) -> list[str]:
    """The options that switch a protection on; no-new-privileges counts only when dockerd
    reads it as true."""
    opts = [o for o in security_opts(container) if o not in DISABLING_SECURITY_OPTS
            and not o.startswith(("no-new-privileges", "writable-cgroups"))]
    return opts + (["no-new-privileges"] if no_new_privileges(container) else [])


def labels_disabled(container: Container) -> bool:
    """SELinux labelling switched off: ``label=disable`` (``:`` or ``=``) or a bare ``disable``."""
    return any(o in ("label=disable", "disable") for o in security_opts(container))


def privileged_unless_allowed(c: Container, s: Settings) -> bool:
    """Privileged, and the section does not allow it: then every host device, no seccomp,
    no AppArmor and no /proc masks, whatever the other fields say (moby oci_linux.go)."""
    return bool(host_config(c).get("Privileged")) and not s["privileged"]


def effective_capabilities(container: Container) -> frozenset[str]:
    """Docker's defaults (none after dropping ALL) less the drops, plus the adds."""
    hc = host_config(container)
    drop, add = capabilities(hc.get("CapDrop")), capabilities(hc.get("CapAdd"))
    base = frozenset() if "ALL" in drop else DOCKER_DEFAULT_CAPS - drop
    return base | add


def bind_mounts(container: Container) -> list[Mapping[str, Any]]:
    """Host paths the container gets: bind mounts, and named volumes already resolved to
    the paths they bind (see ``reach``); a configuration not created yet is read from
    ``HostConfig.Binds``/``Mounts``."""
    return [m for m in mounts(container) if m.get("Type") == "bind"]


def host_source(mount: Mapping[str, Any]) -> str:
    """The cleaned host path of a bind, naming the volume or the symbolic link it came
    through if any."""
    source = clean_path(str(mount.get("Source", "")))
    if mount.get("Link"):
        source = f"{source} (through the link {mount['Link']})"
    return f"{source} (volume {mount['Name']})" if mount.get("Name") else source


def port_bindings(container: Container) -> list[tuple[str, str, str]]:
    """(container port, host ip, host port) of every published port."""
    out = []
    for port, bindings in (host_config(container).get("PortBindings") or {}).items():
        for b in bindings or []:
            out.append((port, (b or {}).get("HostIp") or "", str((b or {}).get("HostPort") or "")))
    return out


def host_port_range(host_port: str) -> tuple[int, int] | None:
    """The host ports a binding's ``HostPort`` asks for, as dockerd reads it when the
    container starts (go-connections ``nat.NewPort(nat.SplitProtoPort(...))``): anything
    after a ``/`` is a protocol, ``A-B`` a range to pick from (parts after a second ``-``
    ignored), each part ``strconv.ParseUint(_, 10, 16)``: ASCII digits only. (0, 0) is an
    ephemeral port; None a value dockerd refuses (the start fails)."""
    parts = host_port.split("/")
    port = parts[0] if host_port and parts[0] else ""
    if not port:
        return (0, 0)
    ends = port.split("-")[:2] if "-" in port else [port, port]
    if not all(e and e.isascii() and e.isdigit() and int(e) < 1 << 16 for e in ends):
        return None
    start, end = int(ends[0]), int(ends[1])
    return (start, end) if end >= start else None


def _listed(items: Iterable[str]) -> str:
    return ", ".join(sorted(items))
