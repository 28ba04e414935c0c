"""The events daemon's side of quotas: is a container that started beyond its quota?

It lists the running containers (one call) and, only when the container's group is full
without it, asks each peer's start time (an inspect each): the core stops the ones that
started last, so every judgement of a group agrees (``covenant/rules/quota.py``). A
container found within its quota also names the ones it finds beyond (started after it,
judged before dockerd listed it): the caller judges those again.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .checks import Violation
from .engine import Engine, EngineNotFoundError
from .metrics import Metrics
from .policy import Decision, Policy
from .rules.quota import Running, breach_when_running, later_beyond, needs_start_times, peers


def with_quotas(engine: Engine, policy: Policy, data: dict[str, Any], decision: Decision,
                metrics: Metrics) -> tuple[Decision, set[str]]:
    """``decision`` with a ``quota:NAME`` violation added when the running container is
    beyond a quota, and the ids of other containers to judge again (beyond a quota once
    this one, within it, is counted). A container that already violates is stopped
    anyway: not counted."""
    state = data.get("State") or {}
    if not policy.quotas or not decision.allowed or not state.get("Running"):
        return decision, set()
    own = Running(decision.container_id, (data.get("Config") or {}).get("Labels") or {},
                  str(state.get("StartedAt") or ""))
    listed = [Running(str(c.get("Id")), c.get("Labels") or {}) for c in engine.running_list()]
    if not needs_start_times(policy.quotas, own.id, own.labels, listed):
        return decision, set()
    wanted = {r.id: r for q in policy.quotas for r in peers(q, own.id, own.labels, listed)}
    timed = []
    for peer in wanted.values():
        try:
            started = str((engine.container(peer.id).get("State") or {}).get("StartedAt") or "")
        except EngineNotFoundError:
            continue  # gone meanwhile: it no longer counts
        timed.append(dataclasses.replace(peer, started=started))
    breach = breach_when_running(policy.quotas, own, decision.name, timed)
    if breach is None:
        return decision, later_beyond(policy.quotas, own, timed)
    metrics.quotas.labels(breach.quota, "warned" if policy.mode == "warn" else "stopped").inc()
    violation = Violation(f"quota:{breach.quota}", breach.message)
    return dataclasses.replace(decision, violations=(violation,)), set()
