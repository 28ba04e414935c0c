"""Inspect a started container, ask the policy, act on the answer, and log it.

Evaluation runs on a small pool so that one slow inspect never delays the next
container; a ``stop`` with a grace period runs on a second, larger pool because it
holds its thread for the whole grace period, while a ``kill`` is sent inline, at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import docker.errors
import requests
from docker import APIClient

from . import lookups
from .logs import fields
from .metrics import Metrics
from .policy import Decision, Policy
from .reach import Lookups

T = TypeVar("T")
RECENT = 4096  # (id, StartedAt) pairs remembered to decide each start only once
LAST_DECISIONS = 50  # kept for /status


class Enforcer:
    """The thin shell around ``Policy.decide``: Docker I/O in, log lines and stops out."""

    def __init__(self, api: APIClient, policy: Policy, log: logging.Logger, own_id: str | None = None,
                 metrics: Metrics | None = None, workers: int = 8, stop_workers: int = 64) -> None:
        self.api = api
        self.policy = policy  # replaced whole on reload; read once per evaluation
        self.log = log
        self.own_id = own_id
        self.metrics = metrics or Metrics()
        self.decisions: deque[dict[str, Any]] = deque(maxlen=LAST_DECISIONS)
        self._evaluate_pool = ThreadPoolExecutor(workers, thread_name_prefix="evaluate")
        self._stop_pool = ThreadPoolExecutor(stop_workers, thread_name_prefix="stop")
        self._recent: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._lock = threading.Lock()
        self._settled: set[str] = set()  # running containers judged and left running since their start
        self._pending: set[str] = set()  # handed on, not yet evaluated, or being stopped

    def submit(self, container_id: str, again: bool = False, running_only: bool = False) -> None:
        """Queue one container for evaluation; returns at once. ``again`` decides a start
        that was already decided (a re-audit, a new policy); ``running_only`` leaves a
        container that is not running alone (a rename or update of a stopped one is
        judged when it starts)."""
        with self._lock:
            self._pending.add(container_id)
            if again:
                self._settled.discard(container_id)
        self._evaluate_pool.submit(self._guarded, container_id, again, time.monotonic(), running_only)

    def submit_again(self, container_id: str) -> None:
        self.submit(container_id, again=True)

    def submit_change(self, container_id: str) -> None:
        """A rename or update: the container is judged again as it is now, if it runs."""
        self.submit(container_id, again=True, running_only=True)

    def unjudged(self, running: list[str]) -> list[str]:
        """Of these running containers, those neither judged and left running since their
        start nor waiting to be judged. Forgets containers no longer running."""
        with self._lock:
            self._settled &= set(running)
            return [c for c in running if c not in self._settled and c not in self._pending]

    def responsive(self, timeout: float) -> bool:
        """True if the evaluation pool runs a no-op within timeout (the watchdog's probe)."""
        try:
            self._evaluate_pool.submit(lambda: None).result(timeout)
        except Exception:  # noqa: BLE001 - a timeout or a pool shut down: not responsive
            return False
        return True

    def shutdown(self) -> None:
        self._evaluate_pool.shutdown(wait=True, cancel_futures=True)
        self._stop_pool.shutdown(wait=False, cancel_futures=True)

    def _guarded(self, container_id: str, again: bool, received: float, running_only: bool = False) -> None:
        try:
            self.evaluate(container_id, again, received, running_only)
        except Exception:  # a bug must cost one evaluation, never the daemon
            self.log.exception("%s: evaluation failed", container_id[:12],
                               extra=fields(CONTAINER_ID=container_id, COVENANT_ACTION="error"))
        finally:
            with self._lock:
                self._pending.discard(container_id)

    def evaluate(self, container_id: str, again: bool = False, received: float | None = None,
                 running_only: bool = False) -> Decision | None:
        """Evaluate one container now; None when there was nothing to decide."""
        received = time.monotonic() if received is None else received
        policy = self.policy
        short = container_id[:12]
        try:
            data = _retrying(self.api.inspect_container, container_id)
        except docker.errors.NotFound:
            self.log.debug("%s: gone before it could be inspected", short,
                           extra=fields(CONTAINER_ID=container_id, COVENANT_ACTION="gone"))
            return None
        state = data.get("State") or {}
        if running_only and not (state.get("Running") or state.get("Paused") or state.get("Restarting")):
            return None
        if self.own_id and data.get("Id") == self.own_id:
            self._settle(str(data.get("Id")))
            self.log.debug("%s: this is docker-covenant's own container; never stopped",
                           data.get("Name", short).lstrip("/"),
                           extra=fields(CONTAINER_ID=container_id, COVENANT_ACTION="self"))
            return None
        if not self._first_time(data) and not again:
            return None
        decision = policy.decide(data, look_up(self.api, data))
        if decision.allowed or policy.mode == "warn":
            self._settle(decision.container_id)
        self.metrics.evaluated.inc()
        self.metrics.evaluation_seconds.observe(time.monotonic() - received)
        self._record(policy, decision, received)
        return decision

    def _settle(self, container_id: str) -> None:
        with self._lock:
            self._settled.add(container_id)

    def _first_time(self, data: dict[str, Any]) -> bool:
        """A start seen both by the sweep and by the events stream is decided once."""
        key = (str(data.get("Id")), str((data.get("State") or {}).get("StartedAt")))
        with self._lock:
            if key in self._recent:
                return False
            self._recent[key] = None
            if len(self._recent) > RECENT:
                self._recent.popitem(last=False)
        return True

    def _record(self, policy: Policy, decision: Decision, received: float) -> None:
        base = {"CONTAINER_ID": decision.container_id, "CONTAINER_NAME": decision.name,
                "CONTAINER_IMAGE": decision.image, "COVENANT_MODE": policy.mode}
        for w in decision.waived:
            self.metrics.actions.labels("waived").inc()
            self.log.debug("%s: %s waived (%s)", decision.name, w.check, w.message,
                           extra=fields(**base, COVENANT_CHECK=w.check, COVENANT_ACTION="waived"))
        if decision.allowed:
            self._note(decision, "allowed")
            self.log.debug("%s: allowed", decision.name, extra=fields(**base, COVENANT_ACTION="allowed"))
            return
        for v in decision.violations:
            self.metrics.violations.labels(v.check).inc()
            self.log.warning(v.message, extra=fields(**base, COVENANT_CHECK=v.check))
        checks = ",".join(v.check for v in decision.violations)
        if policy.mode == "warn":
            self._note(decision, "warned")
            self.log.warning("%s: not stopping container (warn mode)", decision.name,
                             extra=fields(**base, COVENANT_CHECK=checks, COVENANT_ACTION="warned"))
            return
        action = "killed" if policy.action == "kill" else "stopped"
        self._note(decision, action)
        self.log.warning("%s: stopping container", decision.name,
                         extra=fields(**base, COVENANT_CHECK=checks, COVENANT_ACTION=action))
        if policy.action == "kill":
            self._stop(decision, None, base, received)
        else:
            with self._lock:
                self._pending.add(decision.container_id)
            self._stop_pool.submit(self._stop, decision, policy.stop_timeout, base, received)

    def _note(self, decision: Decision, action: str) -> None:
        self.metrics.actions.labels(action).inc()
        self.decisions.append({"time": time.time(), "id": decision.container_id, "name": decision.name,
                               "image": decision.image, "action": action,
                               "checks": [v.check for v in decision.violations]})

    def _stop(self, decision: Decision, timeout: int | None, base: dict[str, str], received: float) -> None:
        """Kill at once (timeout None) or stop with the policy's grace period."""
        try:
            if timeout is None:
                _retrying(self.api.kill, decision.container_id)
            else:
                _retrying(self.api.stop, decision.container_id, timeout=timeout)
            self.metrics.enforcement_seconds.observe(time.monotonic() - received)
        except docker.errors.NotFound:
            self._outcome(decision, base, logging.INFO, "already removed", "gone")
        except docker.errors.APIError as e:
            if e.status_code == 409:  # "is not running": it ended on its own first
                self._outcome(decision, base, logging.INFO, "already not running", "gone")
            else:
                self._outcome(decision, base, logging.ERROR, f"failed to stop container: {e.explanation}",
                              "failed")
        except Exception as e:  # noqa: BLE001 - a lost connection must be said, not raised
            self._outcome(decision, base, logging.ERROR, f"failed to stop container: {e}", "failed")
        finally:
            if timeout is not None:
                with self._lock:
                    self._pending.discard(decision.container_id)

    def _outcome(self, decision: Decision, base: dict[str, str], level: int, text: str, action: str) -> None:
        self.metrics.actions.labels(action).inc()
        self.log.log(level, "%s: %s", decision.name, text, extra=fields(**base, COVENANT_ACTION=action))


def look_up(api: APIClient, container: dict[str, Any]) -> Lookups:
    """What the core needs to know about the volumes and containers this one references,
    asked of the engine (a volume or container gone meanwhile is left out)."""
    return lookups.look_up(container, partial(_found, api.inspect_container),
                           partial(_found, api.inspect_volume))


def _found(call: Callable[[str], Any], ref: str) -> Any:
    """The engine's answer, or None if the object no longer exists."""
    try:
        return _retrying(call, ref)
    except docker.errors.NotFound:
        return None


def _retrying(call: Callable[..., T], *args: Any, attempts: int = 4, **kwargs: Any) -> T:
    """Retry a call whose connection failed (a pooled socket of an engine that restarted,
    a daemon still coming up): a lost inspect would be a container never evaluated."""
    delay = 0.05
    for _ in range(attempts - 1):
        try:
            return call(*args, **kwargs)
        except requests.exceptions.ConnectionError:
            time.sleep(delay)
            delay *= 2
    return call(*args, **kwargs)
