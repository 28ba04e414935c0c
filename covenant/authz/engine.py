"""What the plugin asks dockerd: the stored configuration it decides from.

Every lookup is bounded in time (dockerd waits for the plugin without a timeout), and
every failure raises: the caller denies. dockerd resolves a reference (full id, name,
id prefix) with its own rules; asking dockerd's inspect with the very reference of the
request gets the container dockerd will act on, as long as no rename, named create or
removal runs meanwhile (the gate, ``gate.py``, sees to that).
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol
from urllib.parse import quote


class EngineLookupError(Exception):
    """dockerd could not tell us (not found, timeout, no engine)."""


class Engine(Protocol):
    def container(self, ref: str) -> dict[str, Any]: ...
    def exec(self, exec_id: str) -> dict[str, Any]: ...
    def plugin(self, ref: str) -> dict[str, Any]: ...
    def network(self, ref: str) -> dict[str, Any]: ...
    def service(self, ref: str) -> dict[str, Any]: ...
    def api_version(self) -> str: ...


class DockerEngine:
    """Inspects through the Docker API (docker-py, ``DOCKER_HOST``), a few clients pooled
    so that concurrent requests do not queue behind one another."""

    def __init__(self, timeout: float = 3.0, pool: int = 8) -> None:
        self.timeout = timeout
        self._api_version = ""
        self.idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self.pool = pool

    @contextmanager
    def _client(self) -> Iterator[Any]:
        import docker

        try:
            client = self.idle.get_nowait()
        except queue.Empty:
            client = docker.APIClient(**docker.utils.kwargs_from_env(), version="auto", timeout=self.timeout)
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
        try:
            with self._client() as client:
                response = client._get(client._url(path))
                response.raise_for_status()
                data = response.json()
        except Exception as e:  # noqa: BLE001 - any failure is "unknown", and the caller denies
            raise EngineLookupError(f"{type(e).__name__}: {e}") from None
        if not isinstance(data, dict):
            raise EngineLookupError(f"unexpected answer from dockerd for {path}")
        return data

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

    def api_version(self) -> str:
        """The engine's API version (what it can apply at all), asked once."""
        if not self._api_version:
            self._api_version = str(self._get("/version")["ApiVersion"])
        return self._api_version
