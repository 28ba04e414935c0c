"""The plugin protocol on a unix socket (or one systemd passed us).

Whatever happens while answering an AuthZReq -- an unreadable request, a failed lookup,
a bug -- the answer is a deny, and it is always a well-formed reply: dockerd retries a
failed plugin call and, on the retry, sends the request without its body.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import socketserver
import threading
import time
from typing import Any

from ..checks import Violation
from ..engine import Engine
from ..hooks import document
from ..logs import fields
from ..metrics import Metrics
from ..policy import Policy
from ..shadow import Shadow
from ..webhook import Notifier
from . import wire
from .gate import HOLD, GateBusyError, NameGate, gate_class
from .handlers import Request, Verdict
from .judge import judge
from .prefetch import Prefetching
from .quota import QuotaKeeper, owner_required
from .rules import RULE_HOLD, needs_order

JUDGED_METHODS = frozenset({"POST", "DELETE"})  # what handlers judge and the gate orders
ALLOW = b'{"Allow": true}'
DENY_FAILED = b'{"Allow": false, "Msg": "docker-covenant: request failed"}'
DENY_UNREADABLE = b'{"Allow": false, "Msg": "docker-covenant: unreadable plugin call"}'
DEFAULT_SOCKET_DIR = "/run/docker/plugins"
MAX_REQUEST = 64 * 1024 * 1024  # dockerd forwards bodies under 1 MiB, base64 and headers aside


class AuthzPlugin:
    """Serves the plugin protocol; the policy is swapped whole on reload."""

    def __init__(self, policy: Policy, log: logging.Logger, socket_path: str, engine: Engine,
                 gate: NameGate | None = None, metrics: Metrics | None = None) -> None:
        self.policy = policy
        self.metrics = metrics
        self.quotas = QuotaKeeper()
        self.gate = gate or NameGate()
        self.log = log
        self.socket_path = socket_path
        self.engine = Prefetching(engine)
        self.server: socketserver.UnixStreamServer | None = None
        self.owns_socket = True
        self.webhook: Notifier | None = None  # set (and replaced on reload) by the daemon
        self.shadow: Shadow | None = None  # a shadow verdict on each create, after the answer
        self.host = socket.gethostname()

    def answer(self, req: Any) -> dict[str, Any]:
        """The reply to one AuthZReq; never raises. A request the gate orders holds it
        until dockerd reports the request done (``done``) or it is refused."""
        policy = self.policy
        method = uri = "?"
        try:
            if not isinstance(req, dict):
                raise ValueError("AuthZReq is not a JSON object")
            method, uri = str(req.get("RequestMethod", "?")), str(req.get("RequestUri", "?"))
            if method not in JUDGED_METHODS and not policy.log_requests and not policy.api_rules:
                return {"Allow": True}  # nothing to judge or order: the hot path of docker ps
            request = Request.from_authz(req)
            self.engine.requested(request.method, request.uri)
            # in warn mode nothing is refused, so nothing needs ordering either
            cls = gate_class(request.method, request.route) if policy.mode == "enforce" else None
            if cls and request.unseen_body():
                # dockerd would read that body after we answer, for as long as the client
                # takes, and the gate would hold every other start meanwhile
                return self._refuse(policy, Verdict(False, f"{method} {request.route.path}: a body the "
                                                    "plugin was not sent; send JSON or none"), method, uri)
            hold = HOLD.get(request.route.kind)
            if policy.mode == "enforce" and cls in (None, "exec") and needs_order(policy, request):
                # a rule judged the container a reference names: keep it naming that one
                cls, hold = "resolve", RULE_HOLD
            ticket = self.gate.enter(cls, (method, uri), hold) if cls else None
        except GateBusyError as e:
            self.log.warning("%s %s: %s; denied", method, uri, e,
                             extra=fields(COVENANT_ACTION="denied", COVENANT_MODE=policy.mode))
            return {"Allow": False, "Msg": f"docker-covenant: {e}; try again"}
        except Exception as e:  # noqa: BLE001 - on a security path every failure is a deny
            return self._cannot(policy, method, uri, e)
        reply = self._answer(policy, request)
        if ticket is not None and not reply["Allow"]:
            self.gate.cancel(ticket)
        return reply

    def done(self, res: Any) -> None:
        """An AuthZRes: dockerd has acted on the request."""
        if isinstance(res, dict):
            self.gate.leave((str(res.get("RequestMethod")), str(res.get("RequestUri"))))
            self.quotas.done(str(res.get("RequestMethod")), str(res.get("RequestUri")))
            self.engine.done(res)

    def _cannot(self, policy: Policy, method: str, uri: str, e: Exception) -> dict[str, Any]:
        self.log.warning("%s %s: cannot evaluate (%s: %s); denied", method, uri, type(e).__name__, e,
                         extra=fields(COVENANT_ACTION="denied", COVENANT_MODE=policy.mode))
        return {"Allow": False, "Msg": f"docker-covenant could not evaluate the request: {e}"}

    def _answer(self, policy: Policy, request: Request) -> dict[str, Any]:
        method, uri = request.method, request.uri
        try:
            verdict = judge(policy, request, self.engine, self.quotas)
        except Exception as e:  # noqa: BLE001 - on a security path every failure is a deny
            return self._cannot(policy, method, uri, e)
        if self.shadow is not None and request.route.kind == "container_create":
            # the engine itself: the shadow must not take an inspect prefetched for a start
            self.shadow.offer_create(request, self.engine.engine, verdict)
        if verdict.malformed and policy.fail == "open" and not owner_required(policy, request):
            self.log.warning("%s %s: %s; allowed (fail: open; the start is still judged)", method, uri,
                             verdict.msg, extra=fields(COVENANT_ACTION="allowed", COVENANT_MODE=policy.mode))
            return {"Allow": True}
        if verdict.allow:
            if policy.log_requests:
                self.log.info("%s %s allowed (user %s)", method, uri, request.user or "-",
                              extra=fields(CONTAINER_NAME=verdict.name, COVENANT_ACTION="allowed"))
            return {"Allow": True}
        return self._refuse(policy, verdict, method, uri)

    def _refuse(self, policy: Policy, verdict: Verdict, method: str, uri: str) -> dict[str, Any]:
        base = {"CONTAINER_NAME": verdict.name, "COVENANT_MODE": policy.mode}
        for v in verdict.violations:
            self.log.warning(v.message, extra=fields(**base, COVENANT_CHECK=v.check))
        checks = ",".join(v.check for v in verdict.violations) or (
            f"rule:{verdict.rule}" if verdict.rule else f"quota:{verdict.quota}" if verdict.quota else "")
        warned = policy.mode == "warn" and not verdict.malformed
        if verdict.rule and self.metrics is not None:
            self.metrics.api_rules.labels(verdict.rule, "warned" if warned else "denied").inc()
        if verdict.quota and self.metrics is not None:
            self.metrics.quotas.labels(verdict.quota, "warned" if warned else "denied").inc()
        if warned:
            self.log.warning("%s: would deny %s %s (warn mode): %s", verdict.name, method, uri, verdict.msg,
                             extra=fields(**base, COVENANT_CHECK=checks, COVENANT_ACTION="warned"))
            self._hook(policy, verdict, checks, "warned", method, uri)
            return {"Allow": True}
        self.log.warning("%s: denied %s %s: %s", verdict.name, method, uri, verdict.msg,
                         extra=fields(**base, COVENANT_CHECK=checks, COVENANT_ACTION="denied"))
        self._hook(policy, verdict, checks, "denied", method, uri)
        return {"Allow": False, "Msg": verdict.msg}

    def _hook(self, policy: Policy, verdict: Verdict, checks: str, action: str, method: str,
              uri: str) -> None:
        """The refusal to the webhook, if it wants this kind: a queue put that never waits
        (dockerd waits on this reply). A rule's or a quota's refusal has no check: the
        document names the rule or quota as its check, with the refusal's message."""
        webhook = self.webhook
        if webhook is None or action not in webhook.hook.on:
            return
        found = verdict.violations or (Violation(checks, verdict.msg),)
        doc = document(action=action, container_id="", name=verdict.name, image="", violations=found,
                       mode=policy.mode, host=self.host, when=time.time())
        webhook.offer({**doc, "request": {"method": method, "uri": uri}})

    def reply_to(self, path: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        if path == "/Plugin.Activate":
            return 200, {"Implements": ["authz"]}
        if path == "/AuthZPlugin.AuthZReq":
            try:
                req = json.loads(raw)
            except (ValueError, RecursionError) as e:
                req = None
                self.log.error("unreadable AuthZReq from dockerd: %s", e)
            return 200, self.answer(req)
        if path == "/AuthZPlugin.AuthZRes":
            with contextlib.suppress(ValueError, RecursionError):
                self.done(json.loads(raw))
            return 200, {"Allow": True}
        return 404, {"Err": f"unknown endpoint {path}"}

    def converse(self, sock: socket.socket) -> None:
        """Answer the calls dockerd makes on one connection, until it closes it. A call
        that cannot be framed gets a 400 (a failed call: dockerd denies the request)."""
        reader = wire.Reader(sock, MAX_REQUEST)
        while True:
            try:
                call = reader.next()
            except (wire.ProtocolError, OSError) as e:
                self.log.error("unreadable call from dockerd: %s", e)
                with contextlib.suppress(OSError):
                    sock.sendall(wire.response(400, DENY_UNREADABLE, keep_alive=False))
                return
            if call is None:
                return
            try:
                status, reply = self.reply_to(call.path, call.body)
                data = ALLOW if reply == {"Allow": True} else json.dumps(reply).encode()
            except Exception as e:  # noqa: BLE001 - still answer, and answer no
                self.log.error("plugin request failed: %s", e)
                status, data = 200, DENY_FAILED
            try:
                sock.sendall(wire.response(status, data, call.keep_alive))
            except OSError:
                return
            if not call.keep_alive:
                return

    def serve(self) -> None:
        """Bind the socket (replacing a stale one) and serve on daemon threads."""
        plugin = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                plugin.converse(self.request)

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        activated = activated_sockets()
        if activated:
            # systemd (a .socket unit) holds the socket: dockerd's connections queue in it
            # while this process restarts, instead of failing.
            self.server = Server(self.socket_path, Handler, bind_and_activate=False)
            self.server.socket.close()
            self.server.socket = socket.socket(fileno=activated[0])
            self.owns_socket = False
        else:
            os.makedirs(os.path.dirname(self.socket_path) or ".", exist_ok=True)
            if os.path.exists(self.socket_path):
                os.unlink(self.socket_path)  # a stale socket of a previous run
            self.server = Server(self.socket_path, Handler)
            os.chmod(self.socket_path, 0o600)
        threading.Thread(target=self.server.serve_forever, name="authz", daemon=True).start()

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self.owns_socket and os.path.exists(self.socket_path):
            os.unlink(self.socket_path)


def activated_sockets() -> list[int]:
    """File descriptors systemd passed for socket activation (sd_listen_fds), if any."""
    try:
        from systemd.daemon import listen_fds
    except ImportError:
        return []
    return list(listen_fds())


def socket_path(name: str, directory: str = DEFAULT_SOCKET_DIR) -> str:
    return os.path.join(directory, f"{name}.sock")
