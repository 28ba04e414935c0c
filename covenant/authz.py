"""Authorization-plugin mode: refuse a violating container before it exists.

dockerd asks the plugin about every API request (``/AuthZPlugin.AuthZReq``) and waits
for the answer, with no timeout: so the handler never does unbounded work. The request
is read the way dockerd itself reads it, or the policy could be walked around:

* routing is on the percent-decoded, cleaned path, with or without a ``/vX.Y`` prefix
  and even in absolute form (``http://host/...``);
* JSON keys match struct fields case-insensitively (Go's ``encoding/json``: Unicode
  simple folding, so a long s matches ``s`` in ``SecurityOpt``); a repeated key overwrites, or
  merges when both values are objects; ``null`` resets;
* HostConfig fields given at the top level of a create body are honoured when there is
  no ``HostConfig`` object (and a few resource fields even when there is);
* capabilities come in any case, with or without ``CAP_``, or as a single string;
* dockerd forwards a body only when its Content-Type is exactly ``application/json`` and
  its length is known and under 1 MiB -- so a write whose body did not arrive is not
  evidence of compliance, and is denied;
* API versions before 1.24 let ``start`` carry a HostConfig: denied.

The decision itself is ``Policy.decide`` -- the evaluator the events path uses.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import posixpath
import re
import socket
import socketserver
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .checks import Violation
from .logs import fields
from .policy import Policy

PLUGIN_CONTENT_TYPE = "application/vnd.docker.plugins.v1+json"
DEFAULT_SOCKET_DIR = "/run/docker/plugins"
_VERSION = re.compile(r"^/v(\d+)\.(\d+)(/.*)?$")
_CREATE = re.compile(r"^/containers/create$")
_EXEC = re.compile(r"^/containers/([^/]+)/exec$")
_START = re.compile(r"^/containers/([^/]+)/start$")
MISSING: Any = object()

# HostConfig's JSON fields (with Resources' promoted ones) that a create body may carry
# at its top level (the deprecated embedded *HostConfig of ContainerConfigWrapper).
HOST_CONFIG_FIELDS = frozenset(f.casefold() for f in (
    "Binds", "ContainerIDFile", "LogConfig", "NetworkMode", "PortBindings", "RestartPolicy", "AutoRemove",
    "VolumeDriver", "VolumesFrom", "CapAdd", "CapDrop", "CgroupnsMode", "Dns", "DnsOptions", "DnsSearch",
    "ExtraHosts", "GroupAdd", "IpcMode", "Cgroup", "Links", "OomScoreAdj", "PidMode", "Privileged",
    "PublishAllPorts", "ReadonlyRootfs", "SecurityOpt", "StorageOpt", "Tmpfs", "UTSMode", "UsernsMode",
    "ShmSize", "Sysctls", "Runtime", "ConsoleSize", "Isolation", "CpuShares", "Memory", "NanoCpus",
    "CgroupParent", "BlkioWeight", "BlkioWeightDevice", "BlkioDeviceReadBps", "BlkioDeviceWriteBps",
    "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps", "CpuPeriod", "CpuQuota", "CpuRealtimePeriod",
    "CpuRealtimeRuntime", "CpusetCpus", "CpusetMems", "Devices", "DeviceCgroupRules", "DeviceRequests",
    "KernelMemory", "KernelMemoryTCP", "MemoryReservation", "MemorySwap", "MemorySwappiness",
    "OomKillDisable", "PidsLimit", "Ulimits", "CpuCount", "CpuPercent", "IOMaximumIOps",
    "IOMaximumBandwidth", "Mounts", "MaskedPaths", "ReadonlyPaths", "Init"))
# Inner-HostConfig fields a top-level value still fills when the inner one is unset.
TOP_LEVEL_FALLBACKS = ("Memory", "MemorySwap", "CpuShares", "CpusetCpus", "VolumeDriver")


class Pairs(list):  # type: ignore[type-arg]
    """A JSON object as its ordered (key, value) pairs: Go semantics need every one."""


def field(obj: Any, name: str) -> Any:
    """The value Go's encoding/json would put in struct field ``name``: keys match it
    case-insensitively; a later key overwrites, two objects merge, null resets."""
    if not isinstance(obj, Pairs):
        return MISSING
    want = name.casefold()
    value: Any = MISSING
    for key, v in obj:
        if key.casefold() == want:
            value = Pairs(value + v) if isinstance(value, Pairs) and isinstance(v, Pairs) else v
    return value


def _get(obj: Any, name: str, default: Any = None) -> Any:
    v = field(obj, name)
    return default if v is MISSING else v


def _mapping(obj: Any) -> dict[str, Any] | None:
    """A Go map (keys are data, compared exactly): the last duplicate wins."""
    return dict(obj) if isinstance(obj, Pairs) else None


def _struct(obj: Any, names: Iterable[str]) -> dict[str, Any] | None:
    if not isinstance(obj, Pairs):
        return None
    return {n: v for n in names if (v := field(obj, n)) is not MISSING}


def host_config_of_create(body: Pairs) -> dict[str, Any]:
    """The HostConfig dockerd derives from a create body (runconfig getHostConfig)."""
    inner = field(body, "HostConfig")
    top_present = any(k.casefold() in HOST_CONFIG_FIELDS for k, _ in body)
    source: Any
    if isinstance(inner, Pairs):
        source = inner
        if top_present:
            extra = Pairs((name, field(body, name)) for name in TOP_LEVEL_FALLBACKS
                          if field(body, name) not in (MISSING, None, 0, "") and not _get(inner, name))
            source = Pairs(inner + extra)
    elif top_present:
        source = body
    else:
        return {}
    hc: dict[str, Any] = {}
    for name in ("Privileged", "CapAdd", "CapDrop", "SecurityOpt", "Binds", "NetworkMode", "PidMode",
                 "IpcMode", "UTSMode", "UsernsMode", "Memory", "CpuShares", "NanoCpus", "CpuQuota",
                 "CpusetCpus", "ReadonlyRootfs", "CgroupParent", "PidsLimit"):
        value = field(source, name)
        if value is not MISSING:
            hc[name] = value
    if (rp := _struct(field(source, "RestartPolicy"), ("Name", "MaximumRetryCount"))) is not None:
        hc["RestartPolicy"] = rp
    if isinstance(devices := field(source, "Devices"), list):
        hc["Devices"] = [_struct(d, ("PathOnHost", "PathInContainer", "CgroupPermissions")) or {}
                         for d in devices]
    if isinstance(mounts := field(source, "Mounts"), list):
        hc["Mounts"] = [{**(_struct(m, ("Type", "Source", "Target", "ReadOnly")) or {}),
                         "BindOptions": _struct(field(m, "BindOptions"), ("Propagation",)) or {}}
                        for m in mounts]
    if (ports := _mapping(field(source, "PortBindings"))) is not None:
        hc["PortBindings"] = {p: [_struct(b, ("HostIp", "HostPort")) or {} for b in (bs or [])]
                              for p, bs in ports.items()}
    return hc


def container_of_create(body: Pairs, name: str) -> dict[str, Any]:
    """An inspect-shaped container (no ``Mounts``/``AppArmorProfile`` yet: the checks then
    judge the requested configuration) for ``Policy.decide``."""
    healthcheck = _struct(field(body, "Healthcheck"), ("Test",))
    return {
        "Id": "", "Name": "/" + name.lstrip("/"),
        "Config": {"Image": _get(body, "Image", ""), "User": _get(body, "User", ""),
                   "Labels": _mapping(field(body, "Labels")) or {}, "Healthcheck": healthcheck},
        "HostConfig": host_config_of_create(body),
    }


@dataclass(frozen=True)
class Verdict:
    allow: bool
    msg: str = ""
    name: str = ""
    violations: tuple[Violation, ...] = ()
    kind: str = "other"  # create, exec, start, other, malformed


class MalformedRequestError(ValueError):
    pass


def _route(uri: str) -> tuple[tuple[int, int] | None, str, dict[str, list[str]]]:
    """(API version or None, cleaned decoded path, query) as dockerd routes the request."""
    parts = urlsplit(uri)
    path = posixpath.normpath("/" + unquote(parts.path).lstrip("/")) if parts.path else "/"
    version = None
    if match := _VERSION.match(path):
        version = (int(match.group(1)), int(match.group(2)))
        path = match.group(3) or "/"
    return version, path, parse_qs(parts.query, keep_blank_values=True)


def _body(req: dict[str, Any]) -> Pairs | None:
    raw = req.get("RequestBody")
    if not raw:
        return None
    try:
        data = base64.b64decode(raw, validate=True)
        body = json.loads(data, object_pairs_hook=Pairs)
    except (binascii.Error, ValueError) as e:
        raise MalformedRequestError(f"request body is not JSON: {e}") from None
    if not isinstance(body, Pairs):
        raise MalformedRequestError("request body is not a JSON object")
    return body


def decide_request(policy: Policy, req: dict[str, Any],
                   container_name: Callable[[str], str | None]) -> Verdict:
    """The plugin's answer to one AuthZReq. ``container_name`` resolves an id or name to
    the container's name (None when it cannot)."""
    method = str(req.get("RequestMethod") or "").upper()
    version, path, query = _route(str(req.get("RequestUri") or ""))
    if method != "POST":
        return Verdict(True)
    if _CREATE.match(path):
        return _create(policy, req, (query.get("name") or [""])[0])
    if match := _EXEC.match(path):
        return _exec(policy, req, match.group(1), container_name)
    if (match := _START.match(path)) and version is not None and version < (1, 24):
        return Verdict(False, f"{match.group(1)}: start through API v{version[0]}.{version[1]} (before 1.24 "
                       "it can change the HostConfig); use a current client", match.group(1), kind="start")
    return Verdict(True)


def _create(policy: Policy, req: dict[str, Any], name: str) -> Verdict:
    body = _body(req)
    if body is None:
        return Verdict(False, f"{name or '(unnamed)'}: container create without a body the plugin "
                       "can read (send Content-Type: application/json, under 1 MiB)", name, kind="create")
    decision = policy.decide(container_of_create(body, name))
    return _verdict(decision.violations, decision.name or "(unnamed)", "create")


def _exec(policy: Policy, req: dict[str, Any], ref: str,
          container_name: Callable[[str], str | None]) -> Verdict:
    body = _body(req)
    if body is None:
        return Verdict(False, f"{ref}: exec without a body the plugin can read", ref, kind="exec")
    if not _get(body, "Privileged", False):
        return Verdict(True, kind="exec")
    name = container_name(ref)
    if name is None:
        return Verdict(False, f"{ref}: privileged exec into a container that could not be looked up", ref,
                       kind="exec")
    if policy.settings_for(name)["privileged"]:
        return Verdict(True, name=name, kind="exec")
    return _verdict((Violation("CV001", f"{name}: privileged exec not allowed"),), name, "exec")


def _verdict(violations: tuple[Violation, ...], name: str, kind: str) -> Verdict:
    if not violations:
        return Verdict(True, name=name, kind=kind)
    return Verdict(False, "; ".join(f"[{v.check}] {v.message}" for v in violations), name, violations, kind)


class AuthzPlugin:
    """Serves the plugin protocol on a unix socket; the policy is swapped whole on reload."""

    def __init__(self, policy: Policy, log: logging.Logger, socket_path: str,
                 lookup: Callable[[str], str | None]) -> None:
        self.policy = policy
        self.log = log
        self.socket_path = socket_path
        self.lookup = lookup
        self.server: socketserver.UnixStreamServer | None = None
        self.owns_socket = True

    def answer(self, req: dict[str, Any]) -> dict[str, Any]:
        policy = self.policy
        uri, method, user = req.get("RequestUri", ""), req.get("RequestMethod", ""), req.get("User", "")
        try:
            verdict = decide_request(policy, req, self.lookup)
        except MalformedRequestError as e:
            closed = policy.fail == "closed"
            self.log.warning("%s %s: %s; %s (fail: %s)", method, uri, e, "denied" if closed else "allowed",
                             policy.fail, extra=fields(COVENANT_ACTION="denied" if closed else "allowed",
                                                       COVENANT_MODE=policy.mode))
            return {"Allow": not closed, "Msg": f"docker-covenant could not evaluate the request: {e}"}
        if verdict.allow:
            if policy.log_requests:
                self.log.info("%s %s allowed (user %s)", method, uri, user or "-",
                              extra=fields(CONTAINER_NAME=verdict.name, COVENANT_ACTION="allowed"))
            return {"Allow": True}
        base = {"CONTAINER_NAME": verdict.name, "COVENANT_MODE": policy.mode}
        for v in verdict.violations:
            self.log.warning(v.message, extra=fields(**base, COVENANT_CHECK=v.check))
        checks = ",".join(v.check for v in verdict.violations)
        if policy.mode == "warn":
            self.log.warning("%s: would deny %s %s (warn mode): %s", verdict.name, method, uri, verdict.msg,
                             extra=fields(**base, COVENANT_CHECK=checks, COVENANT_ACTION="warned"))
            return {"Allow": True}
        self.log.warning("%s: denied %s %s: %s", verdict.name, method, uri, verdict.msg,
                         extra=fields(**base, COVENANT_CHECK=checks, COVENANT_ACTION="denied"))
        return {"Allow": False, "Msg": verdict.msg}

    def serve(self) -> None:
        """Bind the socket (replacing a stale one) and serve on daemon threads."""
        plugin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # dockerd keeps its connection to the plugin open

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if self.path == "/Plugin.Activate":
                    reply: dict[str, Any] = {"Implements": ["authz"]}
                elif self.path == "/AuthZPlugin.AuthZReq":
                    try:
                        req = json.loads(raw or b"{}")
                        if not isinstance(req, dict):
                            raise ValueError("not an object")
                    except ValueError as e:
                        req = {"RequestUri": "?", "RequestMethod": "?", "RequestBody": "!"}
                        plugin.log.error("unreadable AuthZReq from dockerd: %s", e)
                    reply = plugin.answer(req)
                elif self.path == "/AuthZPlugin.AuthZRes":
                    reply = {"Allow": True}
                else:
                    reply = {"Err": f"unknown endpoint {self.path}"}
                data = json.dumps(reply).encode()
                self.send_response(200 if "Err" not in reply else 404)
                self.send_header("Content-Type", PLUGIN_CONTENT_TYPE)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

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


def docker_lookup(timeout: float = 2.0) -> Callable[[str], str | None]:
    """Resolve a container id/name to its name through the Docker API, bounded in time."""
    import docker

    client: list[Any] = []

    def lookup(ref: str) -> str | None:
        try:
            if not client:
                client.append(docker.from_env(version="auto", timeout=timeout).api)
            return str(client[0].inspect_container(ref)["Name"]).lstrip("/")
        except Exception:  # noqa: BLE001 - not found, timeouts, no engine: all mean "unknown"
            return None

    return lookup


def activated_sockets() -> list[int]:
    """File descriptors systemd passed for socket activation (sd_listen_fds), if any."""
    try:
        from systemd.daemon import listen_fds
    except ImportError:
        return []
    return list(listen_fds())


def socket_path(name: str, directory: str = DEFAULT_SOCKET_DIR) -> str:
    return os.path.join(directory, f"{name}.sock")

