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
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from ..checks import Violation
from ..engine import Engine, EngineNotFoundError
from ..lookups import look_up
from ..policy import Policy
from ..reach import Lookups
from ..rules import rename_escape
from . import model, types
from .gojson import AmbiguousError, DecodeError, GoType, decode
from .route import Route, RouteError, route, version_less

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
    rule: str = ""  # the request rule (``api_rules``) that denied it
    quota: str = ""  # the quota a start would exceed


class MalformedRequestError(ValueError):
    """A request body we cannot read exactly as dockerd does."""


@dataclass(frozen=True)
class Request:
    method: str
    route: Route
    body: bytes | None  # None: dockerd forwarded none
    headers: dict[str, str]
    user: str
    uri: str = ""  # as dockerd sent it

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
                   str(req.get("User") or ""), uri)

    def decoded(self, typ: GoType) -> Any:
        if self.body is None:
            raise MalformedRequestError("no body the plugin can read (send Content-Type: application/json, "
                                        "under 1 MiB)")
        try:
            return decode(self.body, typ)
        except (DecodeError, AmbiguousError) as e:
            raise MalformedRequestError(str(e)) from None

    def unseen_body(self) -> bool:
        """A body dockerd holds and the plugin was not sent. dockerd sends only JSON bodies,
        which it reads whole before asking; any other body a handler reads later -- its
        ``ParseForm`` reads a form body whose values override the query's, at a moment the
        client chooses (after the plugin has looked the container up). Without a
        Content-Type no handler reads a body; the last Content-Type value is all the plugin
        sees of several, so any Content-Type counts."""
        return self.body is None and "content-type" in self.headers and \
            self.headers.get("content-length") != "0"

    def form_body(self) -> bool:
        """A body dockerd would read as form parameters, which the plugin cannot see."""
        media = self.headers.get("content-type", "").split(";")[0].strip().lower()
        return media in FORM_TYPES


def lookups_of(engine: Engine, container: dict[str, Any]) -> Lookups:
    """What the core needs about the volumes and containers ``container`` references,
    asked of dockerd as the daemon asks it. An object that does not exist is left out
    (dockerd makes a named volume afresh, and refuses a reference it cannot find); any
    other failure raises, and the request is denied."""
    return look_up(container, partial(_or_none, engine.container), partial(_or_none, engine.volume),
                   engine.host_path, engine.image_scan)


def _or_none(find: Callable[[str], dict[str, Any]], ref: str) -> dict[str, Any] | None:
    try:
        return find(ref)
    except EngineNotFoundError:
        return None


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
    container = model.container_of_create(body, name)
    decision = policy.decide(container, lookups_of(engine, container))
    return verdict(decision.violations, decision.name or "(unnamed)", "create")


def container_start(policy: Policy, req: Request, engine: Engine) -> Verdict:
    """Decided on the stored container. API versions before 1.24 let a start body replace
    the HostConfig, and a chunked body never reaches the plugin: those are refused."""
    ref, kind = req.route.name, req.route.kind.removeprefix("container_")
    if req.unseen_body():
        return deny(f"{ref}: a {kind} request with a body the plugin cannot read (a form body can "
                    "change its parameters); send none", ref, kind)
    if kind == "start":
        if req.body is not None and req.body.strip() not in (b"", b"{}", b"null"):
            return deny(f"{ref}: a start request with a body (it could change the configuration); "
                        "send none", ref, kind)
        if req.route.version is not None and version_less(req.route.version, "1.24"):
            return deny(f"{ref}: start through API v{req.route.version} (before 1.24 it can change the "
                        "HostConfig); use a current client", ref, kind)
    stored = engine.container(ref)
    if fragile(ref, stored):
        return deny(FRAGILE.format(ref=ref, kind=kind), ref, kind)
    decision = policy.decide(model.for_start(stored), lookups_of(engine, stored))
    return verdict(decision.violations, decision.name, kind)


HEX = re.compile(r"[0-9a-f]+")
FRAGILE = ("{ref}: a {kind} by a reference that may name another container before dockerd acts "
           "(the container removes itself when it exits, and {ref} is also an id prefix); use the full id")


def fragile(ref: str, stored: dict[str, Any]) -> bool:
    """dockerd resolves a reference again after the plugin answers: a full id, else a
    name, else an id prefix. Removals, renames and creates wait for the request (the
    gate), but a container started with ``--rm`` removes itself when it exits, and then
    a hex reference falls through to whatever id it prefixes."""
    return bool(HEX.fullmatch(ref)) and ref != stored.get("Id") and \
        bool((stored.get("HostConfig") or {}).get("AutoRemove"))


def container_update(policy: Policy, req: Request, engine: Engine) -> Verdict:
    ref = req.route.name
    update = req.decoded(types.CONTAINER_UPDATE)
    stored = engine.container(ref)
    if fragile(ref, stored):
        return deny(FRAGILE.format(ref=ref, kind="update"), ref, "update")
    decision = policy.decide(model.container_after_update(stored, update), lookups_of(engine, stored))
    return verdict(decision.violations, decision.name, "update")


MAX_EXECS_CHECKED = 64  # a rename inspects each exec of the container: bounded


def container_rename(policy: Policy, req: Request, engine: Engine) -> Verdict:
    """The policy is kept per name: a container must pass under its new name, and so must
    its execs that are privileged or name a user, running or created and not yet started
    (dockerd lists only those). A stopped container is judged too: a restart in flight
    starts it again under whatever name it has by then."""
    new, ref = req.route.arg("name").lstrip("/"), req.route.name
    if req.unseen_body():
        return deny(f"{ref}: a rename with a body the plugin cannot read (a form body's name wins "
                    "over the query's); send none", ref, "rename")
    stored = engine.container(ref)
    if fragile(ref, stored):
        return deny(FRAGILE.format(ref=ref, kind="rename"), ref, "rename")
    old = str(stored.get("Name") or "").lstrip("/")
    if escape := rename_escape(policy.api_rules, policy.groups, stored, new, req.user):
        return Verdict(False, escape.message, old, kind="rename", rule=escape.rule)
    renamed = {**stored, "Name": f"/{new}"}
    violations = policy.decide(model.for_start(renamed), lookups_of(engine, stored)).violations
    exec_ids = stored.get("ExecIDs") or []
    settings = policy.resolve(renamed)[0]
    if exec_ids and (not settings["privileged"] or settings["non_root_required"]):
        if len(exec_ids) > MAX_EXECS_CHECKED:
            return deny(f"{new}: more than {MAX_EXECS_CHECKED} execs to check; rename it when they have "
                        "ended", new, "rename")
        for exec_id in exec_ids:
            process = engine.exec(exec_id).get("ProcessConfig") or {}
            if process.get("privileged") or process.get("user"):
                found = _judge_exec(policy, renamed, bool(process.get("privileged")),
                                    str(process.get("user") or ""), "rename").violations
                violations += tuple(v for v in found if v not in violations)
    return verdict(violations, new, "rename")


# -- exec --------------------------------------------------------------------------------------

# What an exec can add to its container, and how a refusal says it.
EXEC_CHECKS = {"CV001": "{name}: privileged exec not allowed",
               "CV027": "{name}: exec as root ({user}) not allowed"}


def _judge_exec(policy: Policy, container: dict[str, Any], privileged: bool, user: str,
                kind: str, requester: str = "") -> Verdict:
    """An exec runs in its container with its own privileged flag and user: judged as the
    container would be with them, on what an exec can change (privileges, root). The
    ``user=`` sections of ``requester`` (the authenticated user asking) apply: an exec is
    judged only here, so a user's allowance cannot disagree with the events daemon."""
    decision = policy.decide(model.container_for_exec(container, privileged, user), user=requester)
    said = {"name": decision.name, "user": user or "user unset"}
    found = tuple(Violation(v.check, EXEC_CHECKS[v.check].format(**said))
                  for v in decision.violations if v.check in EXEC_CHECKS)
    return verdict(found, decision.name, kind)


def exec_create(policy: Policy, req: Request, engine: Engine) -> Verdict:
    ref = req.route.name
    try:
        body = req.decoded(types.EXEC_CREATE)
    except MalformedRequestError as e:
        return Verdict(False, f"{ref}: exec create: {e}", ref, kind="exec", malformed=True)
    privileged, user = bool(body.get("Privileged")), str(body.get("User") or "")
    if not privileged and not user:
        return Verdict(True, kind="exec")  # the container's own user, judged when it started
    return _judge_exec(policy, engine.container(ref), privileged, user, "exec", req.user)


def exec_start(policy: Policy, req: Request, engine: Engine) -> Verdict:
    """Decided on what dockerd stored for the exec, whatever its create body looked like."""
    stored = engine.exec(req.route.name)
    process = stored.get("ProcessConfig") or {}
    privileged, user = bool(process.get("privileged")), str(process.get("user") or "")
    if not privileged and not user:
        return Verdict(True, kind="exec")
    return _judge_exec(policy, engine.container(str(stored["ContainerID"])), privileged, user, "exec",
                       req.user)


HANDLERS: dict[str, Callable[[Policy, Request, Engine], Verdict]] = {
    "container_create": container_create,
    "container_start": container_start,
    "container_restart": container_start,
    "container_update": container_update,
    "container_rename": container_rename,
    "exec_create": exec_create,
    "exec_start": exec_start,
}


def decide_request(policy: Policy, req: dict[str, Any] | Request, engine: Engine) -> Verdict:
    """The plugin's answer to one AuthZReq. Raises on anything it cannot read or look up:
    the caller denies."""
    request = req if isinstance(req, Request) else Request.from_authz(req)
    from .rules import rules_verdict  # request rules first: they bind every method
    if (ruled := rules_verdict(policy, request, engine)) is not None:
        return ruled
    if request.method != "POST":
        return Verdict(True)
    handler = HANDLERS.get(request.route.kind)
    if handler is None:
        from . import widen  # services, plugins, builds, volumes
        handler = widen.HANDLERS.get(request.route.kind)
    return handler(policy, request, engine) if handler is not None else Verdict(True)


def glob_any(value: str, patterns: list[str] | tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)
