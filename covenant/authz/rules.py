"""The shell of the request rules: look up the container a path names, hand it to the core.

``covenant/rules/api.py`` decides; here dockerd is asked which container ``{container}``
(a full id, a name or an id prefix, resolved by dockerd's own inspect exactly as the
handler will resolve it) or ``{exec}`` (an exec id, whose container cannot change) refers
to. A lookup that finds nothing hands in None and the rule denies; any other failure
raises, and the plugin denies.
"""

from __future__ import annotations

from typing import Any

from ..engine import Engine, EngineNotFoundError
from ..policy import Policy
from ..rules import ApiCall, judge, lookups_needed
from .handlers import Request, Verdict

# Requests a container-scoped rule allowed hold the gate this long at most: dockerd
# resolves the reference as its handler begins (a ``docker cp`` upload can take minutes).
RULE_HOLD = 5.0


def call_of(request: Request) -> ApiCall:
    return ApiCall(request.method, request.route.path, request.user)


def container_of(engine: Engine, target: str, ref: str) -> dict[str, Any] | None:
    """The inspect of the container ``ref`` refers to (for ``exec``: the exec's container)."""
    try:
        if target == "exec":
            ref = str(engine.exec(ref)["ContainerID"])
        return engine.container(ref)
    except EngineNotFoundError:
        return None


def rules_verdict(policy: Policy, request: Request, engine: Engine) -> Verdict | None:
    """A deny naming the rule, or None when no request rule forbids the request."""
    if not policy.api_rules:
        return None
    call = call_of(request)
    found = {(target, ref): container_of(engine, target, ref)
             for target, ref in lookups_needed(policy.api_rules, call)}
    denial = judge(policy.api_rules, policy.groups, call, found)
    if denial is None:
        return None
    name = next((str(c.get("Name") or "").lstrip("/") for c in found.values() if c), f"rule {denial.rule}")
    return Verdict(False, denial.message, name, kind="rule", rule=denial.rule)


def needs_order(policy: Policy, request: Request) -> bool:
    """Whether a rule judged this request by the container a reference names: then a
    removal, create or rename must not make the reference mean another container before
    dockerd resolves it (the gate, as for a start)."""
    return any(target == "container" for target, _ in lookups_needed(policy.api_rules, call_of(request)))

