"""One handler per endpoint that can start or widen a container.

The authority is what dockerd stored: a container start (and restart) is decided on the
container's own ``docker inspect``, an exec start on the exec's, an update on the stored
container with the update applied. Reading request bodies (create, exec create) is an
early, friendly refusal; a body read differently from dockerd can at worst create a
container that then cannot start.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..checks import Violation
from ..policy import Policy
from . import model, types
from .engine import Engine
from .gojson import AmbiguousError, DecodeError, GoType, decode
from .route import Route, RouteError, route, version_less

WRITE_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH"})
# dockerd parses a form body into the same parameters as the query for these.
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass(frozen=True)
class Verdict:
    allow: bool
    msg: str = ""
    name: str = ""
    violations: tuple[Violation, ...] = ()
    kind: str = "other"
    malformed: bool = False  # an early (create-time) parse failure: ``fail: open`` may allow it


class MalformedRequestError(ValueError):
    """A request body we cannot read exactly as dockerd does."""


@dataclass(frozen=True)
class Request:
    method: str
    route: Route
    body: bytes | None  # None: dockerd forwarded none
    headers: dict[str, str]
    user: str

    @classmethod
    def from_authz(cls, req: dict[str, Any]) -> Request:
        method = req.get("RequestMethod")
        uri = req.get("RequestUri")
        if not isinstance(method, str) or not method or not isinstance(uri, str) or not uri:
            raise RouteError("AuthZReq without a method and URI")
        raw = req.get("RequestBody")
        body = None
        if raw:
            if not isinstance(raw, str):
                raise MalformedRequestError("RequestBody is not base64 text")
            try:
                body = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError) as e:
                raise MalformedRequestError(f"RequestBody is not base64: {e}") from None
        headers = req.get("RequestHeaders") or {}
        return cls(method, route(uri), body,
                   {str(k).lower(): str(v) for k, v in headers.items()} if isinstance(headers, dict) else {},
                   str(req.get("User") or ""))

    def decoded(self, typ: GoType) -> Any:
        if self.body is None:
            raise MalformedRequestError("no body the plugin can read (send Content-Type: application/json, "
                                        "under 1 MiB)")
        try:
            return decode(self.body, typ)
        except (DecodeError, AmbiguousError) as e:
            raise MalformedRequestError(str(e)) from None

    def form_body(self) -> bool:
        """A body dockerd would read as form parameters, which the plugin cannot see."""
        media = self.headers.get("content-type", "").split(";")[0].strip().lower()
        return media in FORM_TYPES


def verdict(violations: tuple[Violation, ...], name: str, kind: str) -> Verdict:
    if not violations:
        return Verdict(True, name=name, kind=kind)
    return Verdict(False, "; ".join(f"[{v.check}] {v.message}" for v in violations), name, violations, kind)


def deny(msg: str, name: str, kind: str) -> Verdict:
    return Verdict(False, msg, name, kind=kind)


# -- containers ----------------------------------------------------------------------------------

def container_create(policy: Policy, req: Request, engine: Engine) -> Verdict:
    name = req.route.arg("name")
    try:
        body = req.decoded(types.CONTAINER_CREATE)
    except MalformedRequestError as e:
        return Verdict(False, f"{name or '(unnamed)'}: container create: {e}", name, kind="create",
                       malformed=True)
    decision = policy.decide(model.container_of_create(body, name))
    return verdict(decision.violations, decision.name or "(unnamed)", "create")


def container_start(policy: Policy, req: Request, engine: Engine) -> Verdict:
    """Decided on the stored container. API versions before 1.24 let a start body replace
    the HostConfig, and a chunked body never reaches the plugin: those are refused."""
    ref, kind = req.route.name, req.route.kind.removeprefix("container_")
    if kind == "start":
        if req.body is not None and req.body.strip() not in (b"", b"{}", b"null"):
            return deny(f"{ref}: a start request with a body (it could change the configuration); "
                        "send none", ref, kind)
        if req.route.version is not None and version_less(req.route.version, "1.24"):
            return deny(f"{ref}: start through API v{req.route.version} (before 1.24 it can change the "
                        "HostConfig); use a current client", ref, kind)
    stored = engine.container(ref)
    decision = policy.decide(model.for_start(stored))
    return verdict(decision.violations, decision.name, kind)


def container_update(policy: Policy, req: Request, engine: Engine) -> Verdict:
    ref = req.route.name
    update = req.decoded(types.CONTAINER_UPDATE)
    decision = policy.decide(model.container_after_update(engine.container(ref), update))
    return verdict(decision.violations, decision.name, "update")


MAX_EXECS_CHECKED = 64  # a rename inspects each exec of the container: bounded


def container_rename(policy: Policy, req: Request, engine: Engine) -> Verdict:
    """The policy is kept per name: a running container must pass under its new name, and
    so must its privileged execs, running or created and not yet started (dockerd lists
    only those). A stopped one is judged when it starts."""
    new = req.route.arg("name").lstrip("/")
    stored = engine.container(req.route.name)
    state = stored.get("State") or {}
    if not (state.get("Running") or state.get("Paused") or state.get("Restarting")):
        return Verdict(True, name=new, kind="rename")
    renamed = {**stored, "Name": f"/{new}"}
    violations = policy.decide(model.for_start(renamed)).violations
    exec_ids = stored.get("ExecIDs") or []
    if not policy.resolve(renamed)[0]["privileged"]:
        if len(exec_ids) > MAX_EXECS_CHECKED:
            return deny(f"{new}: more than {MAX_EXECS_CHECKED} execs to check; rename it when they have "
                        "ended", new, "rename")
        if any((engine.exec(e).get("ProcessConfig") or {}).get("privileged") for e in exec_ids):
            violations += (Violation("CV001", f"{new}: a privileged exec runs (or waits to start) in it, "
                                     "and privileged exec is not allowed under this name"),)
    return verdict(violations, new, "rename")


# -- exec --------------------------------------------------------------------------------------

def _privileged_exec(policy: Policy, container: dict[str, Any], kind: str) -> Verdict:
    name = str(container.get("Name") or "").lstrip("/")
    if policy.resolve(container)[0]["privileged"]:
        return Verdict(True, name=name, kind=kind)
    return verdict((Violation("CV001", f"{name}: privileged exec not allowed"),), name, kind)


def exec_create(policy: Policy, req: Request, engine: Engine) -> Verdict:
    ref = req.route.name
    try:
        body = req.decoded(types.EXEC_CREATE)
    except MalformedRequestError as e:
        return Verdict(False, f"{ref}: exec create: {e}", ref, kind="exec", malformed=True)
    if not body.get("Privileged"):
        return Verdict(True, kind="exec")
    return _privileged_exec(policy, engine.container(ref), "exec")


def exec_start(policy: Policy, req: Request, engine: Engine) -> Verdict:
    """Decided on what dockerd stored for the exec, whatever its create body looked like."""
    stored = engine.exec(req.route.name)
    if not (stored.get("ProcessConfig") or {}).get("privileged"):
        return Verdict(True, kind="exec")
    return _privileged_exec(policy, engine.container(str(stored["ContainerID"])), "exec")


HANDLERS: dict[str, Callable[[Policy, Request, Engine], Verdict]] = {
    "container_create": container_create,
    "container_start": container_start,
    "container_restart": container_start,
    "container_update": container_update,
    "container_rename": container_rename,
    "exec_create": exec_create,
    "exec_start": exec_start,
}


def decide_request(policy: Policy, req: dict[str, Any], engine: Engine) -> Verdict:
    """The plugin's answer to one AuthZReq. Raises on anything it cannot read or look up:
    the caller denies."""
    request = Request.from_authz(req)
    if request.method != "POST":
        return Verdict(True)
    handler = HANDLERS.get(request.route.kind)
    if handler is None:
        from . import widen  # services, plugins, builds, volumes
        handler = widen.HANDLERS.get(request.route.kind)
    return handler(policy, request, engine) if handler is not None else Verdict(True)


def glob_any(value: str, patterns: list[str] | tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)
