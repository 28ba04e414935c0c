"""The check catalogue: pure functions from a container's configuration to violations.

Every check reads the plain ``docker inspect`` dictionary of one container and the
settings that the policy resolved for that container's name. Nothing here talks to
Docker or logs: the same functions serve the events path, the start-up sweep and
any offline use, so a decision can be reproduced from recorded JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Container = Mapping[str, Any]
Settings = Mapping[str, Any]

# Options that name a security mechanism only to switch it off: a container
# carrying nothing but these has no security option worth the name.
DISABLING_SECURITY_OPTS = frozenset(
    {"seccomp=unconfined", "apparmor=unconfined", "label=disable", "systempaths=unconfined",
     "no-new-privileges=false"}
)


@dataclass(frozen=True)
class Violation:
    """One broken rule: the check's stable id and the operator-facing message."""

    check: str
    message: str


@dataclass(frozen=True)
class Check:
    """A rule with a stable id (``CVnnn``), the policy key that governs it and the
    CIS Docker Benchmark (v1.3.1, container runtime) item where one exists."""

    id: str
    title: str
    cis: str | None
    key: str
    violates: Callable[[Container, Settings], bool]
    message: str  # formatted with ``name``

    def __call__(self, container: Container, settings: Settings) -> Violation | None:
        if self.violates(container, settings):
            return Violation(self.id, self.message.format(name=container_name(container)))
        return None


def container_name(container: Container) -> str:
    """The name as ``docker ps`` shows it (inspect prefixes a slash)."""
    return str(container.get("Name") or container.get("Id", "")[:12]).lstrip("/")


def host_config(container: Container) -> Mapping[str, Any]:
    return container.get("HostConfig") or {}


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


def protective_security_opts(container: Container) -> list[str]:
    opts = host_config(container).get("SecurityOpt") or []
    return [o for o in opts if normalise_security_opt(o) not in DISABLING_SECURITY_OPTS]


def _privileged(c: Container, s: Settings) -> bool:
    return bool(host_config(c).get("Privileged")) and not s["privileged"]


def _cap_drop(c: Container, s: Settings) -> bool:
    return bool(s["cap_drop_required"]) and "ALL" not in capabilities(host_config(c).get("CapDrop"))


def _security_opt(c: Container, s: Settings) -> bool:
    return bool(s["security_opt_required"]) and not protective_security_opts(c)


def _cap_add_all(c: Container, s: Settings) -> bool:
    return "ALL" in capabilities(host_config(c).get("CapAdd")) and not s["privileged"]


CATALOGUE: tuple[Check, ...] = (
    Check("CV001", "Container must not run privileged", "5.4", "privileged",
          _privileged, "{name}: privileged set but not allowed"),
    Check("CV002", "Container must drop all capabilities (--cap-drop=all)", "5.3",
          "cap_drop_required", _cap_drop, "{name}: all capabilities not dropped"),
    Check("CV003", "Container must carry a security option (--security-opt)", None,
          "security_opt_required", _security_opt, "{name}: no security options has been set"),
    Check("CV004", "Container must not add capability ALL", "5.3", "privileged",
          _cap_add_all, "{name}: capability ALL has been set"),
)

# Policy keys of a container section, with the value a container with no section gets.
DEFAULTS: Mapping[str, bool] = {
    "privileged": False,
    "cap_drop_required": True,
    "security_opt_required": True,
}


def evaluate(container: Container, settings: Settings) -> tuple[Violation, ...]:
    """All violations of one container under its resolved settings, in catalogue order."""
    found = (check(container, settings) for check in CATALOGUE)
    return tuple(v for v in found if v is not None)
