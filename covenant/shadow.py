"""The shadow policy: a second policy judged beside the enforced one, and never acted on.

Its verdicts go to the journal (``COVENANT_ACTION=shadow``) and to ``/metrics``, so a rule
can be tried on live traffic before it is enforced. It is named by the enforced policy's
top-level ``shadow`` key (relative to that file) or by ``--shadow PATH``, and read again
with the policy on every reload. Nothing here stops, refuses or changes anything: every
judgement runs after the enforced decision was acted on (the events daemon) or on a thread
of its own after the plugin answered (a create), and any failure -- a shadow file that
cannot be used, a bug -- is logged and costs the shadow verdict only.

What is judged: in the events daemon each container the enforced policy judges, by the
shadow's container checks and waivers (``Policy.decide``, with the same lookups), not its
quotas or usage limits; in the plugin each create, as the plugin judges it
(``authz.judge``: request rules, the body, a per-user quota's label). Its ``mode``,
``action`` and other settings do nothing; a ``shadow`` key in the shadow file is ignored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .checks import Violation
from .engine import Engine
from .logs import fields
from .metrics import Metrics
from .policy import Decision, Policy, PolicyError, load_policy
from .reach import Lookups

MAX_PENDING = 1000  # creates waiting for their shadow verdict; beyond, one is not judged


def shadow_path(policy: Policy, override: str | None = None) -> str | None:
    """The shadow policy's file: ``--shadow``, else ``shadow:`` relative to the policy file."""
    if override:
        return override
    if policy.shadow:
        return str(Path(policy.source).parent / policy.shadow)
    return None


class Shadow:
    """The loaded shadow policy (or none), and what judges, logs and counts with it."""

    def __init__(self, log: logging.Logger, metrics: Metrics, override: str | None = None) -> None:
        self.log, self.metrics, self.override = log, metrics, override
        self.policy: Policy | None = None  # replaced whole; read once per judgement
        self._pool: ThreadPoolExecutor | None = None
        self._pending = 0
        self._lock = threading.Lock()

    def load(self, enforced: Policy) -> None:
        """Read the shadow file the enforced policy names (at start, on every reload). One
        that cannot be used is logged at error priority and enforcement goes on: a previous
        shadow of the same file is kept, else there is none."""
        path = shadow_path(enforced, self.override)
        old = self.policy
        if path is None:
            if old is not None:
                self.log.info("shadow policy off", extra=fields(COVENANT_ACTION="shadow-off"))
            self._set(None)
            return
        try:
            new = load_policy(path)
        except PolicyError as e:
            keep = old if old is not None and old.source == path else None
            self.log.error("shadow policy not loaded: %s; %s", e,
                           f"keeping the previous shadow policy (sha256 {keep.digest[:12]})" if keep
                           else "no shadow policy (enforcement goes on)",
                           extra=fields(COVENANT_ACTION="shadow-failed", COVENANT_SHADOW_POLICY=path))
            self._set(keep)
            return
        self._set(new)
        self.log.info("shadow policy %s (sha256 %s): judged beside the enforced policy, never acted on",
                      new.source, new.digest[:12],
                      extra=fields(COVENANT_ACTION="shadow-loaded", COVENANT_SHADOW_POLICY=new.source))

    def _set(self, policy: Policy | None) -> None:
        self.policy = policy
        self.metrics.shadow_loaded.set(1 if policy is not None else 0)

    # -- the events daemon ----------------------------------------------------------------
    def judge(self, container: Mapping[str, Any], lookups: Lookups | None, enforced: Decision) -> None:
        """The shadow's verdict on a container the enforced policy has just judged (and
        acted on), logged and counted. Never raises."""
        policy = self.policy
        if policy is None:
            return
        try:
            decision = policy.decide(dict(container), lookups)
            self._record(policy, "stop it", decision.violations, enforced.violations, {
                "CONTAINER_ID": decision.container_id, "CONTAINER_NAME": decision.name,
                "CONTAINER_IMAGE": decision.image}, decision.name)
        except Exception:  # a shadow never costs the enforcement anything
            self.log.exception("%s: shadow evaluation failed", enforced.name,
                               extra=fields(CONTAINER_ID=enforced.container_id,
                                            COVENANT_ACTION="shadow-error"))

    # -- the authorization plugin ---------------------------------------------------------
    def offer_create(self, request: Any, engine: Engine, enforced: Any) -> None:
        """Judge a create under the shadow policy on a thread of its own, after the plugin
        has answered; returns at once. ``enforced``: the plugin's verdict on it (an
        ``authz.Verdict``; one on a body it could not read is not judged again)."""
        if self.policy is None or enforced.malformed:
            return
        with self._lock:
            if self._pending >= MAX_PENDING:
                return
            self._pending += 1
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="shadow")
        self._pool.submit(self._judge_create, request, engine, enforced)

    def _judge_create(self, request: Any, engine: Engine, enforced: Any) -> None:
        from .authz.judge import flagged, judge

        try:
            policy = self.policy
            if policy is None:
                return
            verdict = judge(policy, request, engine)
            if verdict.malformed:
                return
            name = verdict.name or request.route.arg("name") or "(unnamed)"
            self._record(policy, "deny its create", flagged(verdict), flagged(enforced),
                         {"CONTAINER_NAME": name}, name)
        except Exception:  # a shadow never costs the plugin anything
            self.log.exception("%s %s: shadow evaluation failed", request.method, request.uri,
                               extra=fields(COVENANT_ACTION="shadow-error"))
        finally:
            with self._lock:
                self._pending -= 1

    # -- both -----------------------------------------------------------------------------
    def _record(self, policy: Policy, verb: str, found: tuple[Violation, ...],
                enforced: tuple[Violation, ...], base: dict[str, str], name: str) -> None:
        verdict = "violates" if found else "allowed"
        enforced_verdict = "violates" if enforced else "allowed"
        self.metrics.shadow_decisions.labels(verdict, enforced_verdict).inc()
        for v in found:
            self.metrics.shadow_violations.labels(v.check).inc()
        checks = [v.check for v in found]
        before = {v.check for v in enforced}
        new = [c for c in checks if c not in before]
        now = "the enforced policy allows it" if not enforced else \
            "the enforced policy flags " + ",".join(v.check for v in enforced)
        extra = fields(**base, COVENANT_ACTION="shadow", COVENANT_CHECK=",".join(checks),
                       COVENANT_SHADOW_VERDICT=verdict, COVENANT_ENFORCED_VERDICT=enforced_verdict,
                       COVENANT_SHADOW_NEW=",".join(new), COVENANT_SHADOW_POLICY=policy.source)
        if found:
            self.log.info("%s: shadow policy would %s (%s): %s; %s", name, verb, ",".join(checks),
                          "; ".join(v.message for v in found), now, extra=extra)
        else:
            self.log.debug("%s: shadow policy allows it; %s", name, now, extra=extra)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
