"""The plugin's whole judgement of one request, as a function: what ``AuthzPlugin`` answers
dockerd with (before ``mode`` and ``fail`` decide what to do with it), and what
``docker-covenant test`` and the shadow policy get for a create request body.

``OfflineEngine`` stands in for dockerd where there is none to ask (``test``): every
referenced volume or container is unknown, a bind source is judged as written, no image
is scanned.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from ..checks import Violation
from ..engine import Engine, EngineNotFoundError
from ..policy import Policy
from .handlers import Request, Verdict, decide_request
from .quota import QuotaKeeper
from .route import route


def judge(policy: Policy, request: Request, engine: Engine, quotas: QuotaKeeper | None = None) -> Verdict:
    """The request rules, the endpoint's handler, then (for what they allow) the quotas.
    Raises on what cannot be read or looked up: the plugin denies."""
    verdict = decide_request(policy, request, engine)
    if verdict.allow:  # a start that passes the policy must fit its quotas too
        verdict = (quotas or QuotaKeeper()).check(policy, request, engine) or verdict
    return verdict


def flagged(verdict: Verdict) -> tuple[Violation, ...]:
    """What a verdict flags: its checks, or the request rule (``rule:NAME``) or quota
    (``quota:NAME``) that refused, with the refusal's message."""
    if verdict.allow or verdict.violations:
        return verdict.violations
    check = f"rule:{verdict.rule}" if verdict.rule else \
        f"quota:{verdict.quota}" if verdict.quota else "denied"
    return (Violation(check, verdict.msg),)


def create_request(name: str, body: Mapping[str, Any] | bytes, user: str = "") -> Request:
    """``POST /containers/create?name=NAME`` with a JSON body, as the Docker CLI sends it."""
    target = "/containers/create" + (f"?{urlencode({'name': name})}" if name else "")
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Request("POST", route(target), raw, {"content-type": "application/json"}, user, target)


class OfflineEngine:
    """An engine that knows nothing: the plugin's handlers run without dockerd."""

    def _none(self, ref: str) -> dict[str, Any]:
        raise EngineNotFoundError(f"no engine to ask about {ref!r}")

    container = exec = plugin = network = service = volume = _none

    def running_list(self) -> list[dict[str, Any]]:
        return []

    def api_version(self) -> str:
        return "1.45"

    def host_path(self, path: str) -> str:
        return path

    def image_scan(self, container: Mapping[str, Any]) -> Mapping[str, Any] | None:
        return None


def _engine_type_check() -> Engine:  # mypy: OfflineEngine is an Engine
    return OfflineEngine()
