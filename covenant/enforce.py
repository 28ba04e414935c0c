"""Inspect a started container, ask the policy, act on the answer, and log it.

Evaluation runs on a small pool so that one slow inspect never delays the next
container; a ``stop`` with a grace period runs on a second, larger pool because it
holds its thread for the whole grace period, while a ``kill`` is sent inline, at once.

A container's configuration is final once it is created, but for ``docker update`` and
``docker rename`` (the policy is kept per name), whose events discard what was known. So
a container is judged when it is created too: a violator known then is killed the moment
it starts (``action: kill``), before any inspect, and the inspect that follows confirms
and logs it. The same
holds for the next start of a violator that was stopped (a restart policy's loop).
"""

from __future__ import annotations

import logging
import socket
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
from .engine import DockerEngine, Engine, EngineNotFoundError, EngineUnreachableError
from .hooks import document
from .logs import fields
from .metrics import Metrics
from .policy import Decision, Policy
from .quotas import with_quotas
from .reach import Lookups
from .shadow import Shadow
from .webhook import Notifier

T = TypeVar("T")
KILLED = "killed"  # what _stop_early returns when its kill was sent
RECENT = 4096  # (id, StartedAt) pairs remembered to decide each start only once
LAST_DECISIONS = 50  # kept for /status


class Enforcer:
    """The thin shell around ``Policy.decide``: Docker I/O in, log lines and stops out."""

    def __init__(self, api: APIClient, policy: Policy, log: logging.Logger, own_id: str | None = None,
                 metrics: Metrics | None = None, workers: int = 8, stop_workers: int = 64,
                 engine: Engine | None = None) -> None:
        self.api = api  # kills and stops
        # inspects: on a unix socket with http.client, four times cheaper than docker-py
        self.engine = engine or DockerEngine(pool=workers)
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
        # violators judged before they start, with the policy that judged them
        self._known: OrderedDict[str, tuple[Policy, Decision]] = OrderedDict()
        self._changes = 0  # updates and renames seen: a judgement begun before one is not kept
        self.webhook: Notifier | None = None  # set (and replaced on reload) by the daemon
        self.shadow: Shadow | None = None  # judged after each decision was acted on, never acted on
        self.host = socket.gethostname()

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
        """A rename or update: the container is judged again as it is now, if it runs.
        Called in the order of the events stream, so a later start sees the change."""
        with self._lock:
            self._known.pop(container_id, None)
            self._changes += 1
        self.submit(container_id, again=True, running_only=True)

    def submit_create(self, container_id: str) -> None:
        """A create: judge the container before it starts; returns at once."""
        with self._lock:
            changes = self._changes
        self._evaluate_pool.submit(self._prejudge, container_id, changes)

    def forget(self, container_id: str) -> None:
        """A destroy: nothing to know about it any more."""
        with self._lock:
            self._known.pop(container_id, None)

    def act(self, decision: Decision) -> None:
        """A decision made elsewhere (the usage sampler): logged and acted on as any other."""
        self._record(self.policy, decision, time.monotonic())

    def _prejudge(self, container_id: str, changes: int) -> None:
        """Judge a created container; keep the verdict of a violator for its start."""
        policy = self.policy
        try:
            data = _retrying(self.engine.container, container_id)
            if self.own_id and data.get("Id") == self.own_id:
                return
            found = look_up(self.engine, data)
            decision = policy.decide(data, found)
        except Exception as e:  # noqa: BLE001 - its start is judged anyway
            self.log.debug("%s: not judged at create (%s)", container_id[:12], e)
            return
        self._keep(policy, decision, found, changes)

    def _keep(self, policy: Policy, decision: Decision, found: Lookups, changes: int) -> None:
        """Remember a violator for its next start, if nothing can have changed its verdict
        meanwhile: the same policy, no update or rename since it was inspected, and no
        borrowed namespace or volumes (another container may change)."""
        if decision.allowed or found.containers or policy.mode != "enforce" or policy.action != "kill":
            return
        with self._lock:
            if changes != self._changes or policy is not self.policy:
                return
            known = decision.container_id in self._known
            self._known[decision.container_id] = (policy, decision)
            if len(self._known) > RECENT:
                self._known.popitem(last=False)
        if not known:
            self.log.debug("%s: violates as it is (%s); killed the moment it starts", decision.name,
                           ",".join(v.check for v in decision.violations),
                           extra=fields(**_journal_fields(policy, decision), COVENANT_ACTION="known"))

    def _known_violator(self, container_id: str, policy: Policy) -> Decision | None:
        with self._lock:
            known = self._known.get(container_id)
        return known[1] if known is not None and known[0] is policy else None

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
        with self._lock:
            changes = self._changes
        known = None if again else self._known_violator(container_id, policy)
        early = None if known is None else self._stop_early(policy, known, received)
        try:
            data = _retrying(self.engine.container, container_id)
        except EngineNotFoundError:
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
        found = look_up(self.engine, data)
        judged = policy.decide(data, found, now=time.time())
        decision, beyond = with_quotas(self.engine, policy, data, judged, self.metrics)
        for other in beyond:  # started after this one, but judged before dockerd listed this one
            self.submit(other, again=True, running_only=True)
        if decision.allowed or policy.mode == "warn":
            self._settle(decision.container_id)
        self.metrics.evaluated.inc()
        self.metrics.evaluation_seconds.observe(time.monotonic() - received)
        self._record(policy, decision, received, early)
        if self.shadow is not None:
            self.shadow.judge(data, found, judged)
        if not again:  # a quota depends on what else runs: not known ahead of the next start
            self._keep(policy, judged, found, changes)
        return decision

    def _stop_early(self, policy: Policy, known: Decision, received: float) -> str | None:
        """Kill a violator known since its create, before inspecting it: KILLED, or why
        there was nothing to kill ("already removed", "already not running"). None if the
        kill failed otherwise, or the action is a stop (its grace period dwarfs an
        inspect): it is then stopped the usual way."""
        if policy.action != "kill":
            return None
        try:
            _retrying(self.api.kill, known.container_id)
        except docker.errors.NotFound:
            return "already removed"
        except docker.errors.APIError as e:
            return "already not running" if e.status_code == 409 else None  # 409: it ended first
        except Exception:  # noqa: BLE001 - stopped below, after the inspect
            return None
        self.metrics.enforcement_seconds.observe(time.monotonic() - received)
        return KILLED

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

    def _record(self, policy: Policy, decision: Decision, received: float, early: str | None = None) -> None:
        """Log the decision and act on it. ``early``: what the kill before the inspect did
        (``_stop_early``); the decision's entry comes first, then, if the container had
        ended, the same ``gone`` entry as a kill after the inspect writes."""
        if early == KILLED and decision.allowed:
            self._note(decision, "error")
            self.log.error("%s: stopped on the verdict made when it was created, but it complies as "
                           "inspected after its start (changed meanwhile)", decision.name,
                           extra=fields(**_journal_fields(policy, decision), COVENANT_ACTION="error"))
            return
        self._log_decision(policy, decision)
        if decision.allowed or policy.mode == "warn":
            return
        base = _journal_fields(policy, decision)
        if early is not None:
            if early != KILLED:
                self._outcome(decision, base, logging.INFO, early, "gone")
            else:
                self._hook(decision, "killed")
            return
        if policy.action == "kill":
            self._stop(decision, None, base, received)
        else:
            with self._lock:
                self._pending.add(decision.container_id)
            self._stop_pool.submit(self._stop, decision, policy.stop_timeout, base, received)

    def _log_decision(self, policy: Policy, decision: Decision) -> None:
        base = _journal_fields(policy, decision)
        for w in decision.waived:
            self.metrics.actions.labels("waived").inc()
            waiver = decision.waivers.get(w.check)
            self.log.debug("%s: %s waived (%s): %s", decision.name, w.check, w.message,
                           waiver.note() if waiver else "no reason given",
                           extra=fields(**base, **(waiver.fields() if waiver else {}), COVENANT_CHECK=w.check,
                                        COVENANT_ACTION="waived"))
        if decision.allowed:
            self._note(decision, "allowed")
            self.log.debug("%s: allowed", decision.name, extra=fields(**base, COVENANT_ACTION="allowed"))
            return
        for v in decision.violations:
            self.metrics.violations.labels(v.check).inc()
            ended = decision.expired.get(v.check)
            self.log.warning(v.message, extra=fields(**base, **(ended.fields() if ended else {}),
                                                     COVENANT_CHECK=v.check))
        checks = ",".join(v.check for v in decision.violations)
        if decision.expired:
            base = {**base, "COVENANT_WAIVER_EXPIRED": ",".join(sorted(decision.expired))}
        if policy.mode == "warn":
            self._note(decision, "warned")
            self.log.warning("%s: not stopping container (warn mode)", decision.name,
                             extra=fields(**base, COVENANT_CHECK=checks, COVENANT_ACTION="warned"))
            return
        action = "killed" if policy.action == "kill" else "stopped"
        self._note(decision, action, hook=False)  # the webhook hears of it once it is sent
        expiry = f" (waiver of {','.join(sorted(decision.expired))} expired)" if decision.expired else ""
        self.log.warning("%s: stopping container%s%s", decision.name,
                         f" (a task of service {decision.service})" if decision.service else "", expiry,
                         extra=fields(**base, COVENANT_CHECK=checks, COVENANT_ACTION=action))

    def _note(self, decision: Decision, action: str, hook: bool = True) -> None:
        self.metrics.actions.labels(action).inc()
        if decision.service:
            self.metrics.service_actions.labels(decision.service, action).inc()
        self.decisions.append({"time": time.time(), "id": decision.container_id, "name": decision.name,
                               "image": decision.image, "action": action, "service": decision.service,
                               "checks": [v.check for v in decision.violations]})
        if hook:
            self._hook(decision, action)

    def _hook(self, decision: Decision, action: str) -> None:
        """Hand the decision to the webhook, if it wants this kind: a queue put that never
        waits, made after a kill or stop was sent, so the webhook never delays one."""
        webhook = self.webhook
        if webhook is None or action not in webhook.hook.on:
            return
        webhook.offer(document(action=action, container_id=decision.container_id, name=decision.name,
                               image=decision.image, violations=decision.violations, mode=self.policy.mode,
                               host=self.host, when=time.time()))

    def _stop(self, decision: Decision, timeout: int | None, base: dict[str, str], received: float) -> None:
        """Kill at once (timeout None) or stop with the policy's grace period."""
        try:
            if timeout is None:
                _retrying(self.api.kill, decision.container_id)
            else:
                _retrying(self.api.stop, decision.container_id, timeout=timeout)
            self.metrics.enforcement_seconds.observe(time.monotonic() - received)
            self._hook(decision, "killed" if timeout is None else "stopped")
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
        self._hook(decision, action)


def _journal_fields(policy: Policy, decision: Decision) -> dict[str, str]:
    base = {"CONTAINER_ID": decision.container_id, "CONTAINER_NAME": decision.name,
            "CONTAINER_IMAGE": decision.image, "COVENANT_MODE": policy.mode}
    if decision.service:  # a Swarm task: the service is what the operator changes
        base["COVENANT_SERVICE"] = decision.service
    return base


def look_up(engine: Engine, container: dict[str, Any]) -> Lookups:
    """What the core needs to know about the volumes and containers this one references,
    asked of the engine (a volume or container gone meanwhile is left out)."""
    return lookups.look_up(container, partial(_found, engine.container), partial(_found, engine.volume),
                           engine.host_path, engine.image_scan)


def _found(call: Callable[[str], Any], ref: str) -> Any:
    """The engine's answer, or None if the object no longer exists."""
    try:
        return _retrying(call, ref)
    except EngineNotFoundError:
        return None


def _retrying(call: Callable[..., T], *args: Any, attempts: int = 4, **kwargs: Any) -> T:
    """Retry a call whose connection failed (a pooled socket of an engine that restarted,
    a daemon still coming up): a lost inspect would be a container never evaluated."""
    delay = 0.05
    for _ in range(attempts - 1):
        try:
            return call(*args, **kwargs)
        except (requests.exceptions.ConnectionError, EngineUnreachableError):
            time.sleep(delay)
            delay *= 2
    return call(*args, **kwargs)
