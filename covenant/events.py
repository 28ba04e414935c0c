"""Follow the Docker events stream without ever missing a container start.

On every (re)connection the stream is opened first — resuming from the last event
seen — and only then are the running containers swept, so a container that starts
between the two is caught by at least one of them. dockerd replays at most its last
256 events, so the sweep, not the replay, is what makes an outage of any length safe.
The reader only hands ids on: the slow work happens elsewhere, because dockerd drops
events for a subscriber whose 1,024-event buffer stays full for 100 ms.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from docker import APIClient

from .metrics import Metrics

EVENT_FILTER = {"type": "container", "event": ["create", "start", "rename", "update", "destroy"]}
SEEN = 4096  # (id, timeNano) of recent events, to drop the ones a resume replays
REPLAY_MARGIN_NS = 2 * 10**9


class Watcher:
    def __init__(self, api: APIClient, on_start: Callable[[str], None], log: logging.Logger,
                 on_connected: Callable[[], None] = lambda: None,
                 backoff: tuple[float, float] = (0.05, 2.0), metrics: Metrics | None = None,
                 on_change: Callable[[str], None] = lambda _cid: None,
                 on_create: Callable[[str], None] = lambda _cid: None,
                 on_destroy: Callable[[str], None] = lambda _cid: None) -> None:
        self.api = api
        self.on_start = on_start
        self.handlers = {"start": on_start, "rename": on_change, "update": on_change,
                         "create": on_create, "destroy": on_destroy}
        self.on_connected = on_connected
        self.log = log
        self.backoff = backoff
        self.connected = threading.Event()
        self.metrics = metrics or Metrics()
        self._stream: Any = None
        self._since: str | None = None  # where to resume, daemon time "sec.nanosec"
        self._seen: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._newest = 0

    def run(self, stopping: threading.Event) -> None:
        """Connect, sweep, follow; after a failure wait (doubling, capped) and do it again."""
        delay = self.backoff[0]
        while not stopping.is_set():
            try:
                self._follow(stopping)
                if stopping.is_set():
                    break
                self.log.warning("Docker events stream ended; reconnecting")
                delay = self.backoff[0]
            except Exception as e:  # noqa: BLE001 - whatever broke, the answer is to retry
                if stopping.is_set():
                    break
                self.log.warning("cannot follow Docker events (%s); retrying in %.2f s",
                                 _brief(e), delay)
            self.connected.clear()
            self.metrics.connected.set(0)
            if stopping.wait(delay):
                break
            delay = min(delay * 2, self.backoff[1])
            self.metrics.reconnects.inc()

    def _follow(self, stopping: threading.Event) -> None:
        since = self._since
        if since is None:
            # Nothing seen yet: resume from the moment of this connection on a reconnect.
            self._since = f"{time.time():.9f}"
        stream = self.api.events(since=since, filters=EVENT_FILTER, decode=True)
        self._stream = stream
        try:
            self.log.info("following Docker events%s", f" from {since}" if since else "")
            self.sweep()
            self.connected.set()
            self.metrics.connected.set(1)
            self.on_connected()
            for event in stream:
                if stopping.is_set():
                    return
                self._event(event)
        finally:
            stream.close()

    def sweep(self, handler: Callable[[str], None] | None = None) -> int:
        """Hand every running container to handler (default: on_start); returns how many."""
        running = self.api.containers(quiet=True)
        for container in running:
            (handler or self.on_start)(container["Id"])
        self.log.debug("swept %d running containers", len(running))
        return len(running)

    def _event(self, event: dict[str, Any]) -> None:
        handler = self.handlers.get(str(event.get("Action")))
        if event.get("Type") != "container" or handler is None:
            return
        cid = (event.get("Actor") or {}).get("ID") or event.get("id")
        if not cid:
            return
        nano = int(event.get("timeNano") or 0)
        key = (cid, nano)
        if key in self._seen:
            return  # replayed after a reconnect: already handed on
        self._seen[key] = None
        if len(self._seen) > SEEN:
            self._seen.popitem(last=False)
        # Concurrent starts reach the stream slightly out of timestamp order: resume a
        # margin before the newest event, and let the seen set drop what comes twice.
        if nano > self._newest:
            self._newest = nano
            since = max(0, nano - REPLAY_MARGIN_NS)
            self._since = f"{since // 10**9}.{since % 10**9:09d}"
        handler(cid)

    def close(self) -> None:
        """Unblock ``run`` from another thread (shutdown)."""
        stream = self._stream
        if stream is not None:
            with contextlib.suppress(Exception):  # already closed is fine
                stream.close()


def reaudit(watcher: Watcher, handler: Callable[[str], None], interval: Callable[[], float],
            stopping: threading.Event) -> None:
    """Every interval (read anew each round: a reload may change it; 0 is off), evaluate
    every running container again: catches a container changed by ``docker update`` and
    anything a lost event would have hidden."""
    while interval() and not stopping.wait(interval()):
        if not watcher.connected.is_set():
            continue  # the reconnection sweeps anyway
        try:
            count = watcher.sweep(handler)
        except Exception as e:  # noqa: BLE001 - the next round tries again
            watcher.log.warning("re-audit failed (%s)", _brief(e))
            continue
        watcher.log.debug("re-audit: %d running containers queued", count)


def reconcile(watcher: Watcher, unjudged: Callable[[list[str]], list[str]], handler: Callable[[str], None],
              interval: Callable[[], float], stopping: threading.Event) -> None:
    """Every interval (0 is off), list the running containers (one call) and hand on those
    not judged since they started. dockerd drops events for a subscriber that falls 1,024
    behind for 100 ms, without a word (moby pkg/pubsub): a daemon that was frozen or
    starved while containers started never hears of them otherwise."""
    while interval() and not stopping.wait(interval()):
        if not watcher.connected.is_set():
            continue  # the reconnection sweeps anyway
        try:
            running = [c["Id"] for c in watcher.api.containers(quiet=True)]
        except Exception as e:  # noqa: BLE001 - the next round tries again
            watcher.log.warning("reconciliation failed (%s)", _brief(e))
            continue
        missed = unjudged(running)
        for cid in missed:
            handler(cid)
        watcher.metrics.reconciled.inc(len(missed))
        if missed:
            watcher.log.info("reconciliation: %d running containers not judged since they started",
                             len(missed))


def _brief(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:200]
