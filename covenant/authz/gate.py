"""Keeps a container reference meaning the same container from the plugin's decision to
dockerd's action.

A start names a container by a reference (full id, name or id prefix) that dockerd
resolves again after the plugin answers. Between the two, a rename, a create with a name
or a removal could make the reference mean another container: the plugin would have
judged one and dockerd would start the other. So requests that resolve a reference and
requests that change what references resolve to never overlap: each holds the gate from
its AuthZReq until dockerd reports it done (its AuthZRes). Requests of the same class
run together; the other class waits its turn, in arrival order.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .route import Route

RESOLVES = frozenset({"container_start", "container_restart", "container_update"})
EXCLUSIVE = frozenset({"container_rename"})  # it resolves a reference and changes names
# dockerd resolves a restart's reference as its handler begins, then waits for the
# container to stop (up to its timeout): hold the gate that long at most.
HOLD = {"container_restart": 5.0}


def gate_class(method: str, route: Route) -> str | None:
    """"resolve", "change", "exclusive", "exec" or None (the request needs no ordering).
    An exec create is ordered against renames only: a rename judges the execs the
    container has, so none may be created under the old name while it is judged.

    Every create is a change, named or not: an unnamed one adds an id that a short id
    prefix can then resolve to. Every DELETE under /containers/ is one: dockerd 20.10
    routes ``DELETE /containers/{name:.*}``, so ``/containers/PARENT/ALIAS`` removes a
    linked container."""
    if method == "POST" and route.kind in RESOLVES:
        return "resolve"
    if method == "POST" and route.kind in EXCLUSIVE:
        return "exclusive"
    if method == "POST" and route.kind == "exec_create":
        return "exec"
    if (method == "POST" and route.kind in ("container_create", "container_prune")) or \
            (method == "DELETE" and route.path.startswith("/containers/")):
        return "change"
    return None


class GateBusyError(Exception):
    """Waited too long for requests of the other class to finish."""


@dataclass(eq=False)
class Ticket:
    cls: str
    key: tuple[str, str]  # (method, URI): how dockerd's AuthZRes names the request
    since: float = field(default=0.0)
    hold: float | None = None  # at most this long (else the gate's ttl)


def compatible(a: str, b: str) -> bool:
    if "exclusive" in (a, b):
        return False
    return a == b or "exec" in (a, b)


class NameGate:
    """The ordering described above. ``wait`` bounds how long a request waits for the
    other class (then it is refused); ``ttl`` frees a holder whose AuthZRes never came
    (dockerd resolves a reference as its handler begins, so this only bounds a leak)."""

    def __init__(self, wait: float = 30.0, ttl: float = 120.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.wait, self.ttl, self.clock = wait, ttl, clock
        self._cond = threading.Condition()
        self._active: list[Ticket] = []
        self._queue: deque[Ticket] = deque()

    def enter(self, cls: str, key: tuple[str, str], hold: float | None = None) -> Ticket:
        ticket = Ticket(cls, key, self.clock(), hold)
        with self._cond:
            self._queue.append(ticket)
            deadline = ticket.since + self.wait
            while not self._may_enter(ticket):
                self._expire()
                remaining = deadline - self.clock()
                if remaining <= 0:
                    self._queue.remove(ticket)
                    self._cond.notify_all()
                    raise GateBusyError(f"waited {self.wait:g} s for other container starts, renames or "
                                        "removals to finish")
                self._cond.wait(min(remaining, 1.0))
            self._queue.remove(ticket)
            ticket.since = self.clock()
            self._active.append(ticket)
            self._cond.notify_all()
        return ticket

    def _may_enter(self, ticket: Ticket) -> bool:
        ahead = []
        for queued in self._queue:
            if queued is ticket:
                break
            ahead.append(queued)
        return all(compatible(ticket.cls, other.cls) for other in (*self._active, *ahead))

    def _expire(self) -> None:
        now = self.clock()
        self._active = [t for t in self._active if now - t.since <= (t.hold or self.ttl)]

    def leave(self, key: tuple[str, str]) -> None:
        """dockerd finished the request named ``key`` (the oldest one so named)."""
        with self._cond:
            for ticket in self._active:
                if ticket.key == key:
                    self._active.remove(ticket)
                    self._cond.notify_all()
                    return

    def cancel(self, ticket: Ticket) -> None:
        """The request was refused: dockerd will not act on it, nor report it done."""
        with self._cond:
            if ticket in self._active:
                self._active.remove(ticket)
                self._cond.notify_all()

    def holders(self) -> int:
        with self._cond:
            return len(self._active)
