"""Every check of every kind in one table: id, title, severity, CIS item and where it is
judged. Reports (SARIF rules, JUnit, the table) and ``--fail-on`` read it, so a check that
exists anywhere has a severity and is described the same way everywhere."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .catalogue import CATALOGUE
from .daemon import HOST_CATALOGUE
from .usage import USAGE_CHECKS

# Ascending: ``--fail-on medium`` fails on medium and high.
SEVERITY_LEVELS = ("low", "medium", "high")


@dataclass(frozen=True)
class Rule:
    """What a report says about a check, whatever kind it is."""

    id: str
    title: str
    severity: str
    cis: str | None
    scope: str  # container, usage, request, daemon or image
    key: str  # the policy key that turns it on (host_audit key for daemon/image checks)


# CV030 is judged by the authorization plugin on managed-plugin requests (authz/widen.py).
PLUGIN_RULE = Rule("CV030", "Managed plugin in allowed_plugins", "high", None, "request", "allowed_plugins")

RULES: Mapping[str, Rule] = {r.id: r for r in sorted((
    *(Rule(c.id, c.title, c.severity, c.cis, "container", c.key) for c in CATALOGUE),
    *(Rule(u.id, u.title, u.severity, None, "usage", u.key) for u in USAGE_CHECKS),
    *(Rule(h.id, h.title, h.severity, h.cis, h.scope, h.key) for h in HOST_CATALOGUE),
    PLUGIN_RULE,
), key=lambda r: r.id)}


def rank(severity: str) -> int:
    """0 for low up to 2 for high; -1 for anything else (never at or above a threshold)."""
    return SEVERITY_LEVELS.index(severity) if severity in SEVERITY_LEVELS else -1
