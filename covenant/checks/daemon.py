"""Daemon and image checks for ``audit``: pure functions on what the engine says of itself.

The shell hands in plain data: ``GET /info`` (``docker info``), the default bridge network
(``GET /networks/bridge``, absent on a daemon run with ``--bridge=none``) and
``GET /images/ID/json`` (``docker image inspect``) of each image a running container uses.
Nothing here talks to Docker, so a verdict can be reproduced from recorded JSON.

These checks judge the host, not one container: they are not part of the container
catalogue (``CATALOGUE``), cannot be waived per container section, and are governed by the
top-level ``host_audit`` mapping and the profile. Their ids are CV1nn (CV10x daemon, CV11x
image), apart from the container checks' CV0nn. CIS numbers are the CIS Docker Benchmark
v1.3.1's, sections 2 (daemon configuration) and 4 (images).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .model import Settings, Violation
from .privileges import is_root

Data = Mapping[str, Any]

# moby daemon/info.go (fillAPIInfo) warns of each TCP listener without TLS, or with TLS
# but no client verification; /info has no other field that names the listeners.
_PLAIN_TCP = "API is accessible on http://"
_NO_VERIFY = "without TLS client verification"


@dataclass(frozen=True)
class Daemon:
    """What the engine says of its own configuration: ``/info`` and the default bridge
    network's inspect data (None when the daemon has no default bridge)."""

    info: Data
    bridge: Data | None = None


@dataclass(frozen=True)
class HostCheck:
    """A daemon or image rule: stable id, title, severity, CIS item, the ``host_audit``
    key that turns it on, and what it reads (``scope``: ``daemon`` or ``image``).
    ``violates`` returns None when compliant, else a detail appended to the message."""

    id: str
    title: str
    severity: str  # high, medium, low
    cis: str
    key: str
    scope: str
    violates: Callable[[Any], str | None]
    message: str  # formatted with ``name`` and ``detail``


def _userns(d: Daemon) -> str | None:
    options = d.info.get("SecurityOptions") or []
    return None if any("name=userns" in str(o).split(",") for o in options) else ""


def _live_restore(d: Daemon) -> str | None:
    return None if d.info.get("LiveRestoreEnabled") is True else ""


def _icc(d: Daemon) -> str | None:
    if d.bridge is None:  # --bridge=none: no default bridge to talk over
        return None
    options = d.bridge.get("Options") or {}
    return None if options.get("com.docker.network.bridge.enable_icc") == "false" else ""


def _authorization(d: Daemon) -> str | None:
    return None if (d.info.get("Plugins") or {}).get("Authorization") else ""


def _tcp_tls(d: Daemon) -> str | None:
    found = []
    for warning in d.info.get("Warnings") or []:
        text = str(warning)
        if _PLAIN_TCP in text:
            found.append(text.split(_PLAIN_TCP, 1)[1].split(maxsplit=1)[0] + " (no TLS)")
        elif _NO_VERIFY in text and "https://" in text:
            where = text.split("https://", 1)[1].split(maxsplit=1)[0]
            found.append(where + " (TLS without client verification)")
    return ": " + ", ".join(found) if found else None


def _image_user(image: Data) -> str | None:
    user = str((image.get("Config") or {}).get("User") or "").partition(":")[0].strip()
    return f" ({user or 'no USER'})" if is_root(user) else None


def _image_healthcheck(image: Data) -> str | None:
    test = ((image.get("Config") or {}).get("Healthcheck") or {}).get("Test") or []
    return "" if not test or test[0] == "NONE" else None


HOST_CATALOGUE: tuple[HostCheck, ...] = (
    HostCheck("CV101", "User namespace remapping enabled (--userns-remap)", "medium", "2.8",
              "userns_remap_required", "daemon", _userns, "{name}: user namespace remapping off"),
    HostCheck("CV102", "Live restore enabled (--live-restore)", "low", "2.13",
              "live_restore_required", "daemon", _live_restore, "{name}: live restore off"),
    HostCheck("CV103", "Inter-container communication off on the default bridge (--icc=false)", "medium",
              "2.1", "icc_disabled_required", "daemon", _icc,
              "{name}: inter-container communication on the default bridge"),
    HostCheck("CV104", "An authorization plugin configured (--authorization-plugin)", "medium", "2.11",
              "authorization_plugin_required", "daemon", _authorization, "{name}: no authorization plugin"),
    HostCheck("CV105", "No TCP socket without TLS and client verification (--tlsverify)", "high", "2.6",
              "tcp_tls_required", "daemon", _tcp_tls, "{name}: API on TCP without TLS verification{detail}"),
    HostCheck("CV111", "Image sets a non-root USER", "medium", "4.1", "image_user_required", "image",
              _image_user, "{name}: image runs as root{detail}"),
    HostCheck("CV112", "Image has a HEALTHCHECK", "low", "4.6", "image_healthcheck_required", "image",
              _image_healthcheck, "{name}: image has no HEALTHCHECK"),
)
HOST_CHECKS: Mapping[str, HostCheck] = {c.id: c for c in HOST_CATALOGUE}
HOST_SETTINGS: Mapping[str, HostCheck] = {c.key: c for c in HOST_CATALOGUE}
HOST_DEFAULTS: Mapping[str, bool] = {c.key: False for c in HOST_CATALOGUE}
# original: none (an existing policy means what it meant); cis: every one; strict: what
# an operator can change on the daemon without re-planning storage (user namespaces
# remap file ownership) or adding a plugin, and images that do not run as root.
HOST_PROFILES: Mapping[str, Mapping[str, bool]] = {
    "original": {},
    "cis": {c.key: True for c in HOST_CATALOGUE},
    "strict": {key: True for key in ("live_restore_required", "icc_disabled_required", "tcp_tls_required",
                                     "image_user_required")},
}


def daemon_name(info: Data) -> str:
    """How a daemon is named in messages: its host name, else its ID."""
    return str(info.get("Name") or info.get("ID") or "daemon")


def image_name(image: Data) -> str:
    """How an image is named in messages: its first tag, else its short ID."""
    tags = [t for t in image.get("RepoTags") or [] if t and t != "<none>:<none>"]
    return str(tags[0]) if tags else str(image.get("Id") or "")[:19]


def _run(scope: str, subject: Any, name: str, settings: Settings) -> tuple[Violation, ...]:
    found = []
    for check in HOST_CATALOGUE:
        if check.scope != scope or not settings.get(check.key):
            continue
        detail = check.violates(subject)
        if detail is not None:
            found.append(Violation(check.id, check.message.format(name=name, detail=detail)))
    return tuple(found)


def evaluate_daemon(daemon: Daemon, settings: Settings) -> tuple[Violation, ...]:
    """The daemon checks that ``settings`` (resolved ``host_audit``) turn on, in id order."""
    return _run("daemon", daemon, daemon_name(daemon.info), settings)


def evaluate_image(image: Data, settings: Settings) -> tuple[Violation, ...]:
    """The image checks that ``settings`` turn on, for one ``docker image inspect`` object."""
    return _run("image", image, image_name(image), settings)


def wanted(settings: Settings, scope: str) -> bool:
    """Whether any check of ``scope`` is on: the shell asks the engine only then."""
    return any(settings.get(c.key) for c in HOST_CATALOGUE if c.scope == scope)


def resolve(profile: str, overrides: Mapping[str, bool]) -> dict[str, bool]:
    """The ``host_audit`` settings: all off, then the profile's, then the policy's own."""
    return {**HOST_DEFAULTS, **HOST_PROFILES[profile], **overrides}


def image_ids(containers: Iterable[Data]) -> list[str]:
    """The distinct image IDs (``Image``, a sha256 ID) the containers run, in first-seen order."""
    return list(dict.fromkeys(str(c["Image"]) for c in containers if c.get("Image")))
