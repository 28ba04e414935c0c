"""The inspect a start is judged on, asked for as soon as the create is done.

``docker run`` creates a container and starts it by its full id a moment later; the
start is decided on dockerd's inspect of the container, a lookup that itself goes
through the plugin. Asking for that inspect when dockerd reports the create done
(its AuthZRes) takes the lookup off the start's path. It is still dockerd's own answer
about the stored container: only an update or a rename can change a created container,
and every one of them (requested or done) discards what was fetched before it, so a start
after any of them asks afresh.

``docker exec`` likewise creates an exec and starts it by its id: the exec's inspect is
fetched when its create is done. An exec cannot be changed once created (dockerd has no
call for it), so nothing discards it; the container it runs in is still looked up live.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from typing import Any

from ..engine import Engine
from .route import RouteError, route

FULL_ID = re.compile(r"[0-9a-f]{64}")
CHANGES = frozenset({"container_update", "container_rename"})


class Prefetching:
    """An Engine whose container lookup by full id may be answered from an inspect made
    right after the container's create; everything else goes to the engine."""

    def __init__(self, engine: Engine, size: int = 256, ttl: float = 30.0) -> None:
        self.engine, self.size, self.ttl = engine, size, ttl
        self._lock = threading.Lock()
        self._generation = 0
        self._fetched: OrderedDict[str, tuple[int, float, Future[dict[str, Any]]]] = OrderedDict()
        self._execs: OrderedDict[str, tuple[int, float, Future[dict[str, Any]]]] = OrderedDict()
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="prefetch")

    # -- what dockerd reports -----------------------------------------------------------
    def requested(self, method: str, uri: str) -> None:
        """An AuthZReq: an update or a rename discards everything fetched before it."""
        if method == "POST" and _kind(uri) in CHANGES:
            self._discard()

    def done(self, res: dict[str, Any]) -> None:
        """An AuthZRes: a create done starts the fetch; an update or rename done discards."""
        method, uri = str(res.get("RequestMethod")), str(res.get("RequestUri"))
        kind = _kind(uri) if method == "POST" else None
        if kind in CHANGES:
            self._discard()
        elif kind == "container_create" and res.get("ResponseStatusCode") == 201:
            self._fetch(self._fetched, self.engine.container, _created_id(res))
        elif kind == "exec_create" and res.get("ResponseStatusCode") == 201:
            self._fetch(self._execs, self.engine.exec, _created_id(res))

    def _fetch(self, into: OrderedDict[str, tuple[int, float, Future[dict[str, Any]]]],
               lookup: Callable[[str], dict[str, Any]], object_id: str | None) -> None:
        if not object_id:
            return
        with self._lock:
            into[object_id] = (self._generation, time.monotonic(), self._pool.submit(lookup, object_id))
            while len(into) > self.size:
                into.popitem(last=False)

    def _discard(self) -> None:
        with self._lock:
            self._generation += 1
            self._fetched.clear()

    # -- the Engine --------------------------------------------------------------------
    def container(self, ref: str) -> dict[str, Any]:
        data = self._take(self._fetched, ref, "Id", changes=True)
        return data if data is not None else self.engine.container(ref)

    def exec(self, exec_id: str) -> dict[str, Any]:
        data = self._take(self._execs, exec_id, "ID", changes=False)
        return data if data is not None else self.engine.exec(exec_id)

    def _take(self, fetched: OrderedDict[str, tuple[int, float, Future[dict[str, Any]]]], ref: str,
              id_key: str, changes: bool) -> dict[str, Any] | None:
        """What was fetched for ``ref`` (a full id), once; None when the caller must ask.
        ``changes``: an update or rename since the fetch began makes it stale."""
        with self._lock:
            entry = fetched.pop(ref, None) if FULL_ID.fullmatch(ref) else None
        if entry is None or time.monotonic() - entry[1] >= self.ttl:
            return None
        try:
            data = entry[2].result(timeout=3.0)
        except Exception:  # noqa: BLE001 - the caller asks again
            return None
        with self._lock:
            current = not changes or entry[0] == self._generation
        return data if current and data.get(id_key) == ref else None

    def plugin(self, ref: str) -> dict[str, Any]:
        return self.engine.plugin(ref)

    def network(self, ref: str) -> dict[str, Any]:
        return self.engine.network(ref)

    def service(self, ref: str) -> dict[str, Any]:
        return self.engine.service(ref)

    def volume(self, name: str) -> dict[str, Any]:
        return self.engine.volume(name)

    def api_version(self) -> str:
        return self.engine.api_version()

    def running_list(self) -> list[dict[str, Any]]:
        return self.engine.running_list()

    def host_path(self, path: str) -> str:
        return self.engine.host_path(path)

    def image_scan(self, container: Mapping[str, Any]) -> Mapping[str, Any] | None:
        return self.engine.image_scan(container)


@lru_cache(maxsize=64)
def _kind(uri: str) -> str | None:
    """The endpoint a URI reaches. Each request's URI comes by here two or three times
    (its AuthZReq, its AuthZRes), while dockerd waits: read once."""
    try:
        return route(uri).kind
    except RouteError:
        return None


def _created_id(res: dict[str, Any]) -> str | None:
    try:
        body = json.loads(base64.b64decode(str(res.get("ResponseBody") or "")))
    except ValueError:
        return None
    found = body.get("Id") if isinstance(body, dict) else None
    return found if isinstance(found, str) and FULL_ID.fullmatch(found) else None
