"""What docker-covenant asks dockerd: the stored configuration it decides from.

The events daemon inspects each container it judges through it, and the authorization
plugin each container and exec a start is decided on. Every lookup is bounded in time
(dockerd waits for the plugin without a timeout), and every failure raises: the plugin
denies, the daemon retries a connection that failed. dockerd resolves a reference (full id, name,
id prefix) with its own rules; asking dockerd's inspect with the very reference of the
request gets the container dockerd will act on, as long as no rename, named create or
removal runs meanwhile (the plugin's gate, ``authz/gate.py``, sees to that).
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol
from urllib.parse import quote

from . import identity

DEFAULT_HOST = "unix:///var/run/docker.sock"


class EngineLookupError(Exception):
    """dockerd could not tell us (not found, timeout, no engine)."""


class EngineNotFoundError(EngineLookupError):
    """dockerd answered that there is no such object (404)."""


class EngineUnreachableError(EngineLookupError):
    """No answer at all: the connection failed (dockerd restarting, not up yet)."""


class Engine(Protocol):
    def container(self, ref: str) -> dict[str, Any]: ...
    def exec(self, exec_id: str) -> dict[str, Any]: ...
    def plugin(self, ref: str) -> dict[str, Any]: ...
    def network(self, ref: str) -> dict[str, Any]: ...
    def service(self, ref: str) -> dict[str, Any]: ...
    def volume(self, name: str) -> dict[str, Any]: ...
    def running_list(self) -> list[dict[str, Any]]: ...
    def api_version(self) -> str: ...
    def host_path(self, path: str) -> str: ...
    def image_scan(self, container: Mapping[str, Any]) -> Mapping[str, Any] | None: ...


class UnixConnection(http.client.HTTPConnection):
    """HTTP to dockerd's unix socket."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class DockerEngine:
    """Inspects through the Docker API, a few connections pooled so that concurrent
    requests do not queue behind one another.

    On a unix socket (``DOCKER_HOST`` unset or ``unix://``) it speaks HTTP with the
    standard library: a start waits for this lookup, and docker-py's requests stack cost
    four times as much per inspect (1.8 ms against 0.4 ms). Any other ``DOCKER_HOST``
    (tcp, TLS, ssh) goes through docker-py, which reads the environment as the Docker CLI
    does."""

    def __init__(self, timeout: float = 3.0, pool: int = 8, host: str | None = None,
                 host_files: bool | None = None, tls: Any = None) -> None:
        self.timeout = timeout
        self.tls = tls  # a docker.tls.TLSConfig for this host; None: the environment's, as the CLI
        self._api_version = ""
        self.idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self.pool = pool
        self.host = host if host is not None else os.environ.get("DOCKER_HOST") or DEFAULT_HOST
        self.unix_path = self.host.removeprefix("unix://") if self.host.startswith("unix://") else ""
        # the engine's files are ours to read: a local engine, and not from inside a container
        self.host_files = host_files if host_files is not None else \
            bool(self.unix_path) and identity.own_container_id() is None
        # the image gate's verdict on a container's image (scanner.scan_lookup), when the
        # policy has a scanner: set by the entry point that runs one
        self.scan_hook: Callable[[Mapping[str, Any]], Mapping[str, Any] | None] | None = None

    @contextmanager
    def _client(self) -> Iterator[Any]:
        import docker

        try:
            client = self.idle.get_nowait()
        except queue.Empty:
            kwargs = {"base_url": self.host, "tls": self.tls} if self.tls is not None else \
                {**docker.utils.kwargs_from_env(), "base_url": self.host}
            client = docker.APIClient(**kwargs, version="auto", timeout=self.timeout)
        try:
            yield client
        except Exception:
            client.close()
            raise
        if self.idle.qsize() < self.pool:
            self.idle.put(client)
        else:
            client.close()

    def _get(self, path: str) -> dict[str, Any]:
        data = self._get_json(path)
        if not isinstance(data, dict):
            raise EngineLookupError(f"unexpected answer from dockerd for {path}")
        return data

    def _get_json(self, path: str) -> Any:
        try:
            data = self._get_unix(path) if self.unix_path else self._get_docker_py(path)
        except EngineLookupError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure is "unknown", and the caller denies
            status = getattr(getattr(e, "response", None), "status_code", None)
            if status == 404:
                raise EngineNotFoundError(f"{type(e).__name__}: {e}") from None
            if status is None and isinstance(e, OSError | http.client.HTTPException):
                raise EngineUnreachableError(f"{type(e).__name__}: {e}") from None  # requests' too
            raise EngineLookupError(f"{type(e).__name__}: {e}") from None
        return data

    def _get_docker_py(self, path: str) -> Any:
        with self._client() as client:
            response = client._get(client._url(path))
            response.raise_for_status()
            return response.json()

    def _get_unix(self, path: str) -> Any:
        """GET ``path`` (unversioned: dockerd answers in its own API version). A pooled
        connection that dockerd closed meanwhile is retried once on a new one: a new one,
        not the next pooled one, which dockerd may have closed as well (a BrokenPipeError
        from the second of two stale connections refused a quota's start)."""
        for attempt in (1, 2):
            try:
                if attempt == 2:
                    raise queue.Empty
                conn, reused = self.idle.get_nowait(), True
            except queue.Empty:
                conn, reused = UnixConnection(self.unix_path, self.timeout), False
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                body = response.read()
            except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
                conn.close()
                if reused and attempt == 1:
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            if response.will_close or self.idle.qsize() >= self.pool:
                conn.close()
            else:
                self.idle.put(conn)
            if response.status != 200:
                error = EngineNotFoundError if response.status == 404 else EngineLookupError
                raise error(f"dockerd answered {response.status} for {path}: "
                            f"{body[:200].decode(errors='replace').strip()}")
            return json.loads(body)
        raise EngineLookupError(f"no answer from dockerd for {path}")

    def running(self) -> list[str]:
        """The ids of the running containers (``docker ps -q``)."""
        return [str(c["Id"]) for c in self.listed()]

    def listed(self) -> list[dict[str, Any]]:
        """The running (and paused, and restarting) containers as ``docker ps`` lists them
        (id, names, image reference, labels): one call, enough to select policy sections
        without an inspect."""
        listed = self._get_json("/containers/json")
        if not isinstance(listed, list) or not all(isinstance(c, dict) and "Id" in c for c in listed):
            raise EngineLookupError("unexpected answer from dockerd for /containers/json")
        return listed

    def running_list(self) -> list[dict[str, Any]]:
        return self.listed()

    def stats(self, ref: str) -> dict[str, Any]:
        """One reading of a container's stats, at once (``one-shot``: no second sample
        for a CPU delta; the sampler keeps the previous reading itself)."""
        return self._get("/containers/" + quote(ref, safe="") + "/stats?stream=false&one-shot=true")

    def container(self, ref: str) -> dict[str, Any]:
        return self._get("/containers/" + quote(ref, safe="") + "/json")

    def exec(self, exec_id: str) -> dict[str, Any]:
        return self._get("/exec/" + quote(exec_id, safe="") + "/json")

    def plugin(self, ref: str) -> dict[str, Any]:
        return self._get("/plugins/" + quote(ref, safe="") + "/json")

    def network(self, ref: str) -> dict[str, Any]:
        return self._get("/networks/" + quote(ref, safe=""))

    def service(self, ref: str) -> dict[str, Any]:
        return self._get("/services/" + quote(ref, safe=""))

    def volume(self, name: str) -> dict[str, Any]:
        return self._get("/volumes/" + quote(name, safe=""))

    def info(self) -> dict[str, Any]:
        """``docker info``: the engine's name, its Swarm membership, its own settings (the
        host audit)."""
        return self._get("/info")

    def image(self, ref: str) -> dict[str, Any]:
        """``docker image inspect`` (the image audit, the image gate's id of a reference)."""
        return self._get("/images/" + quote(ref, safe="/:@") + "/json")

    def image_scan(self, container: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The scanner's verdict on the container's image, if a scanner runs (else None)."""
        return self.scan_hook(container) if self.scan_hook is not None else None

    def host_path(self, path: str) -> str:
        """Where a host path leads, every symbolic link followed as the kernel follows it
        when dockerd binds it (a missing tail stays as written: dockerd creates it). Only
        where this process sees the engine's files; elsewhere the path as written."""
        return os.path.realpath(path) if self.host_files else path

    def api_version(self) -> str:
        """The engine's API version (what it can apply at all), asked once."""
        if not self._api_version:
            self._api_version = str(self._get("/version")["ApiVersion"])
        return self._api_version
