"""Quotas: how many containers may run at once, on the host or per label value.

Policy data::

    quotas:
      - name: per-project
        max_running: 5
        per: label=com.docker.compose.project
      - name: host
        max_running: 50
      - name: per-user
        max_running: 3
        per: user          # counted by the label docker-covenant.user (see OWNER_LABEL)

Pure functions on plain data: the shell lists the running containers (id, labels, and
where a decision depends on order, when each started) and hands them in. Two entry
points, two questions:

* the plugin, before a start: would this start make the group exceed its quota, counting
  the containers running and the starts it has allowed that dockerd has not yet reported
  done (``breach_at_start``);
* the events daemon, after a start: is this container beyond the quota, counting only the
  containers of its group that started before it (``breach_when_running``). Ordering by
  start time makes every judgement agree: of a group over its quota, exactly the ones that
  started last are stopped, whichever is judged first. dockerd sets a container's start
  time a moment before it lists it as running, so a container judged in that moment may
  not see one that started just before it; the one that started before is judged later
  and does see it: ``later_beyond`` names the containers it finds beyond the quota, to be
  judged again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .api import RULE_NAME, RuleError

QUOTA_KEYS = ("name", "max_running", "per")
# dockerd does not record who made a container: under a per-user quota, the plugin has
# every create carry this label with the authenticated user as its value, and counts by it.
OWNER_LABEL = "docker-covenant.user"
_STARTED = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$")


@dataclass(frozen=True)
class Quota:
    name: str
    max_running: int
    per: str = "host"  # "host", "label=KEY" or "user"
    line: int | None = None

    def group(self, labels: Mapping[str, str]) -> str | None:
        """The group a container with these labels counts in, or None when the quota
        does not cover it (a per-label quota covers only containers carrying the label)."""
        if self.per == "host":
            return ""
        key = OWNER_LABEL if self.per == "user" else self.per.removeprefix("label=")
        return str(labels[key]) if key in labels else None

    def said(self, group: str) -> str:
        if self.per == "user":
            return f"of user {group}"
        return "on this host" if self.per == "host" else f"with {self.per.removeprefix('label=')}={group}"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "max_running": self.max_running, "per": self.per}


@dataclass(frozen=True)
class Running:
    """A running container as ``docker ps`` lists it; ``started`` is its inspect's
    ``State.StartedAt`` where the caller needed and fetched it."""

    id: str
    labels: Mapping[str, str]
    started: str = ""


@dataclass(frozen=True)
class Breach:
    quota: str
    message: str


def parse_quotas(value: Any, line: int | None) -> tuple[Quota, ...]:
    if not isinstance(value, list):
        raise RuleError(line, f"quotas: expected a list of quotas, got {value!r}")
    quotas: list[Quota] = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise RuleError(line, f"quotas[{i}]: a quota is a mapping with name and max_running, "
                            f"got {item!r}")
        lines: dict[Any, int] = getattr(item, "lines", {})
        first = min(lines.values(), default=line)
        for key in item:
            if key not in QUOTA_KEYS:
                raise RuleError(lines.get(key, first), f"quotas[{i}]: unknown key {key!r} (known: "
                                + ", ".join(QUOTA_KEYS) + ")")
        name = item.get("name")
        if not isinstance(name, str) or not RULE_NAME.match(name) or any(q.name == name for q in quotas):
            raise RuleError(lines.get("name", first), f"quotas[{i}].name: expected a name of its own "
                            f"(letters, digits, '.', '_', '-'), got {name!r}")
        limit = item.get("max_running")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise RuleError(lines.get("max_running", first), f"quotas[{i}] ({name}).max_running: expected a "
                            f"whole number, 0 or more, got {limit!r}")
        per = item.get("per", "host")
        if not isinstance(per, str) or not (per in ("host", "user") or (
                per.startswith("label=") and len(per) > 6 and "=" not in per[6:])):
            raise RuleError(lines.get("per", first), f"quotas[{i}] ({name}).per: expected host, user or "
                            f"label=KEY, got {per!r}")
        quotas.append(Quota(name, limit, per, first))
    return tuple(quotas)


def peers(quota: Quota, own_id: str, labels: Mapping[str, str], running: Sequence[Running]) -> list[Running]:
    """The other running containers in the same group of ``quota``."""
    group = quota.group(labels)
    if group is None:
        return []
    return [r for r in running if r.id != own_id and quota.group(r.labels) == group]


def _breach(quota: Quota, name: str, group: str, count: int) -> Breach:
    return Breach(quota.name, f"{name}: {count} containers {quota.said(group)} already running, at most "
                  f"{quota.max_running} (quota {quota.name})")


def breach_at_start(quotas: tuple[Quota, ...], own_id: str, name: str, labels: Mapping[str, str],
                    running: Sequence[Running], pending: Sequence[Running]) -> Breach | None:
    """Before a start: the first quota the start would exceed. ``pending``: starts allowed
    and not yet reported done (they may not be listed as running yet)."""
    for quota in quotas:
        group = quota.group(labels)
        if group is None and quota.per == "user":
            return Breach(quota.name, f"{name}: no {OWNER_LABEL} label, so no owner to count it for "
                          f"(quota {quota.name}); create it again as its user")
        if group is None:
            continue
        others = {r.id for r in peers(quota, own_id, labels, [*running, *pending])}
        if len(others) >= quota.max_running:
            return _breach(quota, name, group, len(others))
    return None


def needs_start_times(quotas: tuple[Quota, ...], own_id: str, labels: Mapping[str, str],
                      running: Sequence[Running]) -> bool:
    """Whether any quota's group is full without this container: only then does the
    order of starts matter (and the shell need each peer's start time)."""
    return any(len(peers(q, own_id, labels, running)) >= q.max_running for q in quotas
               if q.group(labels) is not None)


def started_key(started: str, container_id: str) -> tuple[str, int, str]:
    """A sortable key of dockerd's ``StartedAt`` (RFC 3339 in UTC, nanoseconds with
    trailing zeros trimmed, so the strings do not sort by time), then the id."""
    m = _STARTED.match(started)
    if m is None:
        return (started, 0, container_id)  # not a time dockerd writes: ordered as text
    return (m.group(1), int((m.group(2) or "0").ljust(9, "0")), container_id)


def breach_when_running(quotas: tuple[Quota, ...], own: Running, name: str,
                        running: Sequence[Running]) -> Breach | None:
    """After a start: the first quota whose group holds at least ``max_running`` others
    that started before ``own`` (``running`` carries every peer's start time)."""
    mine = started_key(own.started, own.id)
    for quota in quotas:
        group = quota.group(own.labels)
        if group is None:
            continue
        earlier = [r for r in peers(quota, own.id, own.labels, running)
                   if started_key(r.started, r.id) < mine]
        if len(earlier) >= quota.max_running:
            return _breach(quota, name, group, len(earlier))
    return None


def owner_breach(quotas: tuple[Quota, ...], name: str, labels: Mapping[str, str], user: str) -> Breach | None:
    """At create, under a per-user quota: the container must name its creator, the
    authenticated user, in ``OWNER_LABEL`` -- else it would count for someone else, or
    for nobody. Without a user (no TLS client authentication) nothing can be counted for
    one: refused."""
    quota = next((q for q in quotas if q.per == "user"), None)
    if quota is None:
        return None
    if not user:
        return Breach(quota.name, f"{name}: no authenticated user to count it for (quota {quota.name}: "
                      "dockerd passes a user only with TLS client authentication)")
    if labels.get(OWNER_LABEL) != user:
        return Breach(quota.name, f"{name}: a container created by {user} must carry the label "
                      f"{OWNER_LABEL}={user} (quota {quota.name})")
    return None


def later_beyond(quotas: tuple[Quota, ...], own: Running, running: Sequence[Running]) -> set[str]:
    """The other containers of ``own``'s groups that are beyond a quota once ``own`` is
    counted (they started after at least ``max_running`` others), ``running`` carrying
    every peer's start time."""
    out: set[str] = set()
    for quota in quotas:
        if quota.group(own.labels) is None:
            continue
        members = sorted([own, *peers(quota, own.id, own.labels, running)],
                         key=lambda r: started_key(r.started, r.id))
        out |= {r.id for r in members[quota.max_running:] if r.id != own.id}
    return out


def starter_breach(quotas: tuple[Quota, ...], name: str, labels: Mapping[str, str],
                   user: str) -> Breach | None:
    """Before a start, under a per-user quota: a container counts for the user its label
    names, so only that user may start it -- else another would run it on that user's
    count, past their own. Without a user (no TLS client authentication: the engine's own
    socket) the label's count is all there is to check."""
    quota = next((q for q in quotas if q.per == "user"), None)
    if quota is None or not user or OWNER_LABEL not in labels or labels[OWNER_LABEL] == user:
        return None
    owner = labels[OWNER_LABEL]
    return Breach(quota.name, f"{name}: a container of {owner} ({OWNER_LABEL}={owner}) is started by {owner} "
                  f"only, not {user} (quota {quota.name})")
