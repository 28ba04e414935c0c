"""Security options: the confinement dockerd applies unless told not to (AppArmor,
seccomp, SELinux labels, no-new-privileges, the /proc masks), judged on the options as
dockerd parses them and on privileged mode, which switches them all off."""

from __future__ import annotations

from ..reach import is_under
from .model import Container, Settings
from .reading import (
    _listed,
    host_config,
    labels_disabled,
    no_new_privileges,
    privileged_unless_allowed,
    protective_security_opts,
    security_opts,
)


def _security_opt(c: Container, s: Settings) -> str | None:
    return "" if s["security_opt_required"] and not protective_security_opts(c) else None


def _apparmor(c: Container, s: Settings) -> str | None:
    if not s["apparmor_required"]:
        return None
    if privileged_unless_allowed(c, s):
        return " (unconfined: privileged)"
    profile = c.get("AppArmorProfile")
    opts = [o for o in security_opts(c) if o.startswith("apparmor=")]
    if profile is None:  # not started yet: judge the requested option
        profile = opts[-1].partition("=")[2] if opts else ""
    return f" ({profile or 'none'})" if profile in ("", "unconfined") else None


def _seccomp_unconfined(c: Container, s: Settings) -> str | None:
    if not s["seccomp_unconfined_forbidden"]:
        return None
    if privileged_unless_allowed(c, s):
        return " (privileged)"
    return "" if "seccomp=unconfined" in security_opts(c) else None


def _no_new_privileges(c: Container, s: Settings) -> str | None:
    if not s["no_new_privileges_required"]:
        return None
    return None if no_new_privileges(c) else ""


def _selinux_disabled(c: Container, s: Settings) -> str | None:
    """An asked-for ``label=disable``. dockerd adds it itself to a privileged, ``--pid=host``
    or ``--ipc=host`` container (moby daemon/create.go), which CV001/CV011/CV012 judge."""
    hc = host_config(c)
    engine_added = hc.get("Privileged") or "host" in (hc.get("PidMode"), hc.get("IpcMode"))
    return "" if s["selinux_disable_forbidden"] and not engine_added and labels_disabled(c) else None


def _proc_unmasked(c: Container, s: Settings) -> str | None:
    """``systempaths=unconfined`` (the CLI sends ``MaskedPaths: []``, ``ReadonlyPaths: []``)
    or a privileged container: /proc/sys writable, /proc/kcore and the rest readable. A
    configuration that leaves them unset (null) gets dockerd's defaults."""
    if not s["proc_unmasked_forbidden"]:
        return None
    if privileged_unless_allowed(c, s):
        return ": all (privileged)"
    hc, bad = host_config(c), set()
    readonly, masked = hc.get("ReadonlyPaths"), hc.get("MaskedPaths")
    if readonly is not None and not any(is_under("/proc/sys", p) for p in readonly):
        bad.add("/proc/sys writable")
    if masked is not None and not any(is_under("/proc/kcore", p) for p in masked):
        bad.add("/proc/kcore unmasked")
    return f": {_listed(bad)}" if bad else None
