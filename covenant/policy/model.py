"""The policy as plain data: the settings, the container sections and whom they select,
and the one evaluator every entry point uses (``Policy.decide``). Immutable; made by
``loading`` from the file.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
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


def utc(when: float) -> str:
    """An instant as ISO 8601 in UTC, to the second: ``2027-01-01T00:00:00Z``."""
    # isoformat, not strftime: glibc's %Y writes year 1 as "1"
    instant = datetime.fromtimestamp(when, timezone.utc).replace(microsecond=0)
    return instant.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Waiver:
    """Checks a section turns off for the containers it selects, and why, and until when.

    ``waive: [CV015]`` (the short form) is a waiver with no reason and no end. ``expires``
    is the instant (seconds since the epoch) from which it no longer applies: the waiver
    covers a finding while ``now < expires``. ``until`` is the end as the file wrote it
    (``2026-12-31`` -- which expires at 2027-01-01T00:00:00Z -- or a timestamp)."""

    checks: frozenset[str]
    reason: str = ""
    ticket: str = ""
    owner: str = ""
    until: str = ""
    expires: float | None = None
    line: int | None = None
    section: str = ""  # the selector of the section it is in

    def applies(self, now: float) -> bool:
        return self.expires is None or now < self.expires

    def describe(self, now: float | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"checks": sorted(self.checks), "reason": self.reason or None,
                               "ticket": self.ticket or None, "owner": self.owner or None,
                               "until": self.until or None,
                               "expires": None if self.expires is None else utc(self.expires)}
        if now is not None and self.expires is not None:
            out["expired"] = not self.applies(now)
        return out

    def note(self) -> str:
        """What a log line says about it: ``reason [OPS-123, alice, until 2026-12-31]``."""
        extra = [x for x in (self.ticket, self.owner) if x]
        if self.until:
            extra.append(f"until {self.until}")
        text = self.reason or "no reason given"
        return f"{text} [{', '.join(extra)}]" if extra else text

    def fields(self) -> dict[str, str]:
        """Journal fields (COVENANT_WAIVER_*) of this waiver; empty values are left out."""
        return {"COVENANT_WAIVER_REASON": self.reason, "COVENANT_WAIVER_TICKET": self.ticket,
                "COVENANT_WAIVER_OWNER": self.owner, "COVENANT_WAIVER_UNTIL": self.until,
                "COVENANT_WAIVER_EXPIRES": "" if self.expires is None else utc(self.expires),
                "COVENANT_WAIVER_SECTION": self.section}


@dataclass(frozen=True)
class Section:
    """One container section: whom it selects, what it sets, which checks it waives."""

    selector: str  # as written in the file
    kind: str  # "name", "glob", "image" or "label"
    pattern: str  # name, glob, image glob, or label key[=value glob]
    settings: Mapping[str, Any]
    waivers: tuple[Waiver, ...] = ()
    order: int = 0  # position in the file

    @property
    def waive(self) -> frozenset[str]:
        """Every check any of its waivers names, expired or not."""
        return frozenset(c for w in self.waivers for c in w.checks)

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
    # check id -> the waiver that covered it (of ``waived``), or whose end made it a violation
    waivers: Mapping[str, Waiver] = field(default_factory=dict, hash=False)
    expired: Mapping[str, Waiver] = field(default_factory=dict, hash=False)

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

    def resolve(self, container: Container, user: str = "",
                now: float | None = None) -> tuple[dict[str, Any], frozenset[str]]:
        """Settings (profile defaults, then each selecting section, the most specific
        last so that it wins key by key) and the union of the checks they waive at ``now``
        (seconds since the epoch; None: the current time)."""
        settings, active, _ = self._resolve(container, user, time.time() if now is None else now)
        return settings, frozenset(active)

    def waivers_of(self, container: Container, user: str = "",
                   now: float | None = None) -> Mapping[str, Waiver]:
        """The waivers that apply to this container at ``now``, by check."""
        return self._resolve(container, user, time.time() if now is None else now)[1]

    def _resolve(self, container: Container, user: str,
                 now: float) -> tuple[dict[str, Any], dict[str, Waiver], dict[str, Waiver]]:
        """Settings, the waivers that apply at ``now`` and those that have ended, by check
        (of several for one check, the most specific section's; an ended one only where none
        applies)."""
        settings = {**DEFAULTS, **PROFILES[self.profile]}
        active: dict[str, Waiver] = {}
        ended: dict[str, Waiver] = {}
        for section in self.matching(container, user):
            settings.update(section.settings)
            for waiver in section.waivers:
                for check in waiver.checks:
                    (active if waiver.applies(now) else ended)[check] = waiver
        return settings, active, {c: w for c, w in ended.items() if c not in active}

    def settings_for(self, name: str) -> dict[str, Any]:
        """The settings of a container known only by its name."""
        return self.resolve({"Name": name})[0]

    def decide(self, container: Container, lookups: Lookups | None = None, user: str = "",
               now: float | None = None) -> Decision:
        """The single evaluator every entry point uses. ``lookups`` are the engine's answers
        about the volumes and containers this one references (``reach.references``); without
        them the container is judged on its own inspect data. ``user``: the authenticated
        user of an exec request, whose ``user=`` sections then apply too. ``now``: the time
        (seconds since the epoch) waivers are judged at; None, the current time (the shell's
        default: tests and the daemon's expiry timer pass it)."""
        settings, active, ended = self._resolve(container, user, time.time() if now is None else now)
        violations, waived_violations = evaluate(container, settings, frozenset(active), lookups)
        expired = {v.check: ended[v.check] for v in violations if v.check in ended}
        if expired:  # say why a finding that was waived is one again
            violations = tuple(replace(v, message=f"{v.message} (waiver expired {utc(w.expires or 0)}: "
                                                  f"{w.note()})") if (w := expired.get(v.check)) else v
                               for v in violations)
        return Decision(
            container_id=str(container.get("Id", "")),
            name=container_name(container),
            image=str(config(container).get("Image", "")),
            violations=violations,
            waived=waived_violations,
            service=str((config(container).get("Labels") or {}).get(SWARM_SERVICE_LABEL) or ""),
            waivers={v.check: active[v.check] for v in waived_violations},
            expired=expired,
        )

    def waivers(self) -> list[Waiver]:
        """Every waiver of every section, in file order."""
        return [w for s in self.sections for w in s.waivers]

    def next_expiry(self, now: float) -> float | None:
        """The first instant after ``now`` at which a waiver ends, if any does."""
        ends = [w.expires for w in self.waivers() if w.expires is not None and w.expires > now]
        return min(ends) if ends else None

    def expired_waivers(self, now: float) -> list[Waiver]:
        """The waivers that have ended by ``now`` (still in the file: a warning, not an error)."""
        return [w for w in self.waivers() if not w.applies(now)]

    def host_settings(self) -> dict[str, bool]:
        """Which daemon and image checks ``audit`` runs: the profile's, then ``host_audit``."""
        return resolve(self.profile, self.host_audit)

    def describe(self, now: float | None = None) -> dict[str, Any]:
        """The effective policy as plain data, for ``--check-config`` (waivers as at ``now``)."""
        now = time.time() if now is None else now
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
                                      "waive": sorted(s.waive),
                                      "waivers": [w.describe(now) for w in s.waivers]}
                         for s in self.sections},
            "containers": {s.pattern: self.settings_for(s.pattern) for s in self.sections
                           if s.kind == "name"},
        }
