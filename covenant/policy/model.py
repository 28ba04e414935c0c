"""The policy as plain data: the settings, the container sections and whom they select,
and the one evaluator every entry point uses (``Policy.decide``). Immutable; made by
``loading`` from the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checks import (
    DEFAULTS,
    PROFILES,
    Container,
    Violation,
    config,
    container_name,
    evaluate,
)
from ..checks.daemon import resolve
from ..hooks import Webhook
from ..reach import Lookups
from ..rules.api import ApiRule, members
from ..rules.quota import Quota
from ..selectors import GLOB_CHARS, selects

CONFIG_SEARCH_PATH = (Path("docker-covenant.yml"), Path("/etc/docker-covenant/docker-covenant.yml"))
MODES = ("enforce", "warn")
SWARM_SERVICE_LABEL = "com.docker.swarm.service.name"  # set by the orchestrator on every task
ACTIONS = ("kill", "stop")


class PolicyError(Exception):
    """A policy that cannot be used; ``str()`` is ``FILE:LINE: message``."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path, self.line, self.message = path, line, message
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {message}")


# Exact name beats glob beats image/label; within a tier the more literal pattern wins,
# then the one earlier in the file. A user's section (execs only) beats them all.
TIERS = {"image": 1, "label": 1, "glob": 2, "name": 3, "user": 4}


@dataclass(frozen=True)
class Section:
    """One container section: whom it selects, what it sets, which checks it waives."""

    selector: str  # as written in the file
    kind: str  # "name", "glob", "image" or "label"
    pattern: str  # name, glob, image glob, or label key[=value glob]
    settings: Mapping[str, Any]
    waive: frozenset[str] = frozenset()
    order: int = 0  # position in the file

    @property
    def precedence(self) -> tuple[int, int, int]:
        literal = sum(1 for ch in self.pattern if ch not in GLOB_CHARS)
        return (TIERS[self.kind], literal, -self.order)

    def selects(self, container: Container, user: str = "",
                groups: Mapping[str, tuple[str, ...]] | None = None) -> bool:
        """Whether this section applies: to the container, or (a ``user=`` section) to
        the user making the request (an exec), a name or an ``@group`` of ``groups``."""
        if self.kind == "user":
            return bool(user) and user in members((self.pattern,), groups or {})
        return selects(self.kind, self.pattern, container)


@dataclass(frozen=True)
class Decision:
    """What the policy says about one container."""

    container_id: str
    name: str
    image: str
    violations: tuple[Violation, ...]
    waived: tuple[Violation, ...] = ()
    service: str = ""  # the Swarm service whose task this container is (its label), if any

    @property
    def allowed(self) -> bool:
        return not self.violations


UNSCANNED = ("wait", "allow", "deny")


@dataclass(frozen=True)
class ImageScan:
    """The image gate's scanner (top-level ``image_scan``; CV301 in sections that require
    it): the command (``{image}`` is replaced by the image id, ``{ref}`` by the reference the
    container was created with), its report format, the severity that rejects, how long a
    scan may take, and what happens to a container whose image has no verdict yet."""

    command: tuple[str, ...]
    format: str
    severity: str = "HIGH"
    timeout: float = 300.0
    unscanned: str = "wait"


@dataclass(frozen=True)
class Policy:
    syslog_ident: str = "docker-covenant"
    debug: bool = True
    mode: str = "enforce"
    action: str = "kill"
    stop_timeout: int = 10
    reaudit_interval: float = 0
    reconcile_interval: float = 5
    usage_interval: float = 0
    metrics_address: str | None = None
    profile: str = "original"
    fail: str = "closed"
    log_requests: bool = False
    allowed_plugins: tuple[str, ...] = ()
    image_scan: ImageScan | None = None
    host_audit: Mapping[str, bool] = field(default_factory=dict)  # as written, not resolved
    webhook: Webhook | None = None
    sections: tuple[Section, ...] = ()
    api_rules: tuple[ApiRule, ...] = ()
    quotas: tuple[Quota, ...] = ()
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    shadow: str | None = None  # a policy file judged beside this one, never acted on (covenant/shadow.py)
    source: str = "<defaults>"
    digest: str = ""

    def matching(self, container: Container, user: str = "") -> list[Section]:
        """The sections that select this container (and, for an exec, ``user``), least
        specific first."""
        return sorted((s for s in self.sections if s.selects(container, user, self.groups)),
                      key=lambda s: s.precedence)

    def resolve(self, container: Container, user: str = "") -> tuple[dict[str, Any], frozenset[str]]:
        """Settings (profile defaults, then each selecting section, the most specific
        last so that it wins key by key) and the union of the checks they waive."""
        settings = {**DEFAULTS, **PROFILES[self.profile]}
        waived: set[str] = set()
        for section in self.matching(container, user):
            settings.update(section.settings)
            waived |= section.waive
        return settings, frozenset(waived)

    def settings_for(self, name: str) -> dict[str, Any]:
        """The settings of a container known only by its name."""
        return self.resolve({"Name": name})[0]

    def decide(self, container: Container, lookups: Lookups | None = None, user: str = "") -> Decision:
        """The single evaluator every entry point uses. ``lookups`` are the engine's answers
        about the volumes and containers this one references (``reach.references``); without
        them the container is judged on its own inspect data. ``user``: the authenticated
        user of an exec request, whose ``user=`` sections then apply too."""
        settings, waived = self.resolve(container, user)
        violations, waived_violations = evaluate(container, settings, waived, lookups)
        return Decision(
            container_id=str(container.get("Id", "")),
            name=container_name(container),
            image=str(config(container).get("Image", "")),
            violations=violations,
            waived=waived_violations,
            service=str((config(container).get("Labels") or {}).get(SWARM_SERVICE_LABEL) or ""),
        )

    def host_settings(self) -> dict[str, bool]:
        """Which daemon and image checks ``audit`` runs: the profile's, then ``host_audit``."""
        return resolve(self.profile, self.host_audit)

    def describe(self) -> dict[str, Any]:
        """The effective policy as plain data, for ``--check-config``."""
        return {
            "source": self.source,
            "sha256": self.digest,
            "syslog_ident": self.syslog_ident,
            "debug": self.debug,
            "mode": self.mode,
            "action": self.action,
            "stop_timeout": self.stop_timeout,
            "reaudit_interval": self.reaudit_interval,
            "reconcile_interval": self.reconcile_interval,
            "usage_interval": self.usage_interval,
            "metrics_address": self.metrics_address,
            "profile": self.profile,
            "fail": self.fail,
            "log_requests": self.log_requests,
            "allowed_plugins": list(self.allowed_plugins),
            "image_scan": None if self.image_scan is None else {
                "command": list(self.image_scan.command), "format": self.image_scan.format,
                "severity": self.image_scan.severity, "timeout": self.image_scan.timeout,
                "unscanned": self.image_scan.unscanned},
            "groups": {k: list(v) for k, v in self.groups.items()},
            "api_rules": [r.describe() for r in self.api_rules],
            "quotas": [q.describe() for q in self.quotas],
            "host_audit": self.host_settings(),
            "webhook": self.webhook.describe() if self.webhook else None,
            "shadow": self.shadow,
            "defaults": {**DEFAULTS, **PROFILES[self.profile]},
            "sections": {s.selector: {"selects": s.kind, "settings": dict(s.settings),
                                      "waive": sorted(s.waive)} for s in self.sections},
            "containers": {s.pattern: self.settings_for(s.pattern) for s in self.sections
                           if s.kind == "name"},
        }
