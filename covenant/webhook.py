"""Send decisions to the policy's webhook, off the kill path.

``offer`` only puts a document on a bounded queue (it never waits: a full queue drops the
document and counts it), and one sender thread POSTs them in order, each with the
policy's timeout and bounded retries with a doubling backoff. A receiver that hangs or
fails therefore costs that thread's time, never a kill's; what it costs is counted in
``covenant_webhooks_total{result}`` (sent, failed, dropped) and
``covenant_webhook_retries_total``, and logged.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from . import __version__
from .hooks import Webhook
from .logs import fields
from .metrics import Metrics

BACKOFF, MAX_BACKOFF = 0.5, 8.0  # seconds before the first retry, doubling up to this
DROP_LOG_EVERY = 10.0  # seconds between log lines about dropped documents


class Notifier:
    """One webhook's queue and sender thread; ``close`` stops it (documents still queued
    are dropped and counted)."""

    def __init__(self, hook: Webhook, log: logging.Logger, metrics: Metrics) -> None:
        self.hook, self.log, self.metrics = hook, log, metrics
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=hook.queue)
        self._closing = threading.Event()
        self._dropped_unlogged = 0
        self._last_drop_log = 0.0
        self._lock = threading.Lock()
        # the environment's proxies; no redirects (urllib would resend a POST as a bodiless GET)
        self._opener = urllib.request.build_opener(_NoRedirect)
        self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)
        self._thread.start()

    def offer(self, doc: dict[str, Any]) -> None:
        """Queue a document if its action is one the webhook wants; never blocks."""
        if doc["action"] not in self.hook.on or self._closing.is_set():
            return
        try:
            self._queue.put_nowait(doc)
        except queue.Full:
            self._dropped(1, "queue full")

    def close(self, timeout: float = 1.0) -> None:
        self._closing.set()
        self._thread.join(timeout)
        left = 0
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
            left += 1
        if left:
            self._dropped(left, "shutting down", force=True)

    def _dropped(self, n: int, why: str, force: bool = False) -> None:
        self.metrics.webhooks.labels("dropped").inc(n)
        now = time.monotonic()
        with self._lock:  # a burst of drops is one log line every DROP_LOG_EVERY seconds
            self._dropped_unlogged += n
            if not force and now - self._last_drop_log < DROP_LOG_EVERY:
                return
            count, self._dropped_unlogged, self._last_drop_log = self._dropped_unlogged, 0, now
        self.log.warning("webhook: %d document(s) dropped (%s, queue of %d)", count, why, self.hook.queue,
                         extra=fields(COVENANT_ACTION="webhook-dropped"))

    def _run(self) -> None:
        while not self._closing.is_set():
            try:
                doc = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self._deliver(doc)

    def _deliver(self, doc: dict[str, Any]) -> None:
        body = json.dumps(doc).encode()
        delay, error, attempt = BACKOFF, None, 0
        for attempt in range(self.hook.retries + 1):
            try:
                self._post(body)
            except Exception as e:  # noqa: BLE001 - any failure is retried, then counted
                error = e
            else:
                self.metrics.webhooks.labels("sent").inc()
                return
            if attempt == self.hook.retries or self._closing.wait(delay):
                break
            self.metrics.webhook_retries.inc()
            delay = min(delay * 2, MAX_BACKOFF)
        self.metrics.webhooks.labels("failed").inc()
        name = doc["container"]["name"]
        self.log.error("%s: webhook failed after %d attempt(s): %s", name, attempt + 1, _reason(error),
                       extra=fields(CONTAINER_ID=doc["container"]["id"], CONTAINER_NAME=name,
                                    COVENANT_ACTION="webhook-failed"))

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(self.hook.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": f"docker-covenant/{__version__}"})
        with self._opener.open(request, timeout=self.hook.timeout) as response:
            response.read()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A 3xx is a failure of the webhook, not a GET elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _reason(error: Exception | None) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
