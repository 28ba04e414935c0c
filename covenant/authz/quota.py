"""The plugin's side of quotas: before a start, count the group and keep the count honest.

dockerd starts a container after the plugin answers, and only then lists it as running.
Two starts judged at once would each count the group without the other and both pass. So
the decision runs under one lock, and a start that was allowed is kept as "pending" --
counted as running -- until dockerd reports it done (its AuthZRes: the container runs, or
the start failed) or, should that report never come, for ``ttl`` seconds.

The list of running containers is asked *outside* the lock: that request goes through
dockerd, which reports it done to this plugin (an AuthZRes) before it answers, and that
report must not wait for the lock its own request's caller holds. A start reported done
after the list was asked may be missing from it, so it is still counted for a check whose
list began before the report. The core (``covenant/rules/quota.py``) decides; this looks
things up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..engine import Engine
from ..policy import Policy
from ..rules.quota import Running, breach_at_start, owner_breach, starter_breach
from . import model, types
from .handlers import Request, Verdict

STARTS = frozenset({"container_start", "container_restart"})


def owner_required(policy: Policy, request: Request) -> bool:
    """A create under a per-user quota: its body must be read (``fail: open`` or not)."""
    return request.route.kind == "container_create" and any(q.per == "user" for q in policy.quotas)


class QuotaKeeper:
    def __init__(self, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.clock = ttl, clock
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], list[tuple[float, Running]]] = {}
        self._seq = 0  # counts the starts reported done
        self._finished: list[tuple[int, float, Running]] = []  # (seq, when, start) reported done

    def check(self, policy: Policy, request: Request, engine: Engine) -> Verdict | None:
        """A refusal naming the quota a start would exceed, else None (and the start is
        counted as pending). Any failed lookup raises: the plugin denies."""
        if not policy.quotas or request.method != "POST":
            return None
        if request.route.kind == "container_create":
            return self._owner(policy, request)
        if request.route.kind not in STARTS:
            return None
        stored = engine.container(request.route.name)
        own, name = str(stored.get("Id") or ""), str(stored.get("Name") or "").lstrip("/")
        labels = (stored.get("Config") or {}).get("Labels") or {}
        if (stored.get("State") or {}).get("Running"):
            # already running: not refused (a start does nothing, a restart leaves the count
            # as it is), but it keeps its place (pending) until dockerd reports it done. A
            # restart stops it and starts it again, and a start finds it stopped if it exited
            # since: either way it is not listed as running for a moment, and a start judged
            # then would take its place.
            with self._lock:
                self._pending.setdefault((request.method, request.uri), []).append(
                    (self.clock(), Running(own, labels)))
            return None
        owned = starter_breach(policy.quotas, name, labels, request.user)  # another user's container
        with self._lock:
            self._expire()
            since = self._seq
        running = [Running(str(c.get("Id")), c.get("Labels") or {}) for c in engine.running_list()]
        with self._lock:
            pending = [r for entries in self._pending.values() for _, r in entries]
            pending += [r for seq, _, r in self._finished if seq > since]
            breach = owned or breach_at_start(policy.quotas, own, name, labels, running, pending)
            if breach is not None:
                return Verdict(False, f"[quota {breach.quota}] {breach.message}", name, kind="quota",
                               quota=breach.quota)
            self._pending.setdefault((request.method, request.uri), []).append(
                (self.clock(), Running(own, labels)))
        return None

    @staticmethod
    def _owner(policy: Policy, request: Request) -> Verdict | None:
        """Under a per-user quota a create must name its user (``owner_breach``). Its
        labels are read from the body as dockerd decodes it; a body that cannot be read
        raises (a deny, whatever ``fail`` says: the owner is what the count rests on)."""
        if not any(q.per == "user" for q in policy.quotas):
            return None
        name = request.route.arg("name") or "(unnamed)"
        container = model.container_of_create(request.decoded(types.CONTAINER_CREATE), name)
        breach = owner_breach(policy.quotas, name, container["Config"]["Labels"], request.user)
        if breach is None:
            return None
        return Verdict(False, f"[quota {breach.quota}] {breach.message}", name, kind="quota",
                       quota=breach.quota)

    def done(self, method: str, uri: str) -> None:
        """dockerd reported the request named so done: the oldest start so named is no
        longer pending (it runs, and is listed, or it failed)."""
        with self._lock:
            entries = self._pending.get((method, uri))
            if entries:
                _, start = entries.pop(0)
                if not entries:
                    del self._pending[(method, uri)]
                self._seq += 1
                self._finished.append((self._seq, self.clock(), start))

    def pending(self) -> int:
        with self._lock:
            return sum(len(e) for e in self._pending.values())

    def _expire(self) -> None:
        now = self.clock()
        self._finished = [f for f in self._finished if now - f[1] < self.ttl]
        for key in list(self._pending):
            self._pending[key] = [e for e in self._pending[key] if now - e[0] < self.ttl]
            if not self._pending[key]:
                del self._pending[key]
