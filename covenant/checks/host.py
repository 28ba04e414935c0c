"""What of the host a container shares beyond its mounts: the host's namespaces
(directly or borrowed from another container), its network interfaces and low ports,
and its devices."""

from __future__ import annotations

from collections.abc import Callable

from .model import Container, Settings
from .reading import _listed, host_config, host_port_range, port_bindings, privileged_unless_allowed


def _host_namespace(field: str, key: str) -> Callable[[Container, Settings], str | None]:
    """``field`` is ``host``, directly or through the container it borrows the namespace of."""
    def check(c: Container, s: Settings) -> str | None:
        if not s[key] or str(host_config(c).get(field) or "") != "host":
            return None
        via = (c.get("Borrowed") or {}).get(field)
        return f" (through container {via})" if via else ""
    return check


def _privileged_ports(c: Container, s: Settings) -> str | None:
    if not s["privileged_ports_forbidden"]:
        return None
    bad = {hp for _, _, hp in port_bindings(c) if _privileged(host_port_range(hp))}
    return f": {_listed(bad)}" if bad else None


def _privileged(ports: tuple[int, int] | None) -> bool:
    """A host port range reaching below 1024 (dockerd may pick any port of a range);
    an ephemeral port (0) is the kernel's pick, above 1024."""
    return ports is not None and ports[1] >= 1 and ports[0] < 1024


def _all_interfaces(c: Container, s: Settings) -> str | None:
    if not s["host_ip_required"]:
        return None
    bad = {port for port, ip, _ in port_bindings(c) if ip in ("", "0.0.0.0", "::")}
    return f": {_listed(bad)}" if bad else None


def _devices(c: Container, s: Settings) -> str | None:
    if not s["host_devices_forbidden"]:
        return None
    hc = host_config(c)
    devices = {d.get("PathOnHost", "") for d in hc.get("Devices") or []}
    devices |= {f"cgroup rule '{r}'" for r in hc.get("DeviceCgroupRules") or []}
    devices |= {f"device request {r.get('Driver') or 'default'}" for r in hc.get("DeviceRequests") or []}
    if privileged_unless_allowed(c, s):
        devices.add("all (privileged)")
    return f": {_listed(devices)}" if devices else None
