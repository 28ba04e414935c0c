"""What an operator reads without reading logs: Prometheus metrics, health and status over HTTP.

The listener is off by default; when on it binds to loopback unless told otherwise,
because ``/status`` names containers. Metrics live in a registry of this daemon's
own (no module-level state), so tests and embedders can run several side by side.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import Metric

NODE_TTL = 30.0  # seconds the node's labels are kept before the engine is asked again
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.evaluated = Counter("covenant_containers_evaluated", "Containers evaluated", registry=r)
        self.violations = Counter("covenant_violations", "Violations found, by check id", ["check"],
                                  registry=r)
        self.actions = Counter("covenant_actions", "Decisions taken, by action", ["action"], registry=r)
        self.service_actions = Counter("covenant_service_actions", "Decisions on Swarm tasks, by service "
                                       "and action", ["service", "action"], registry=r)
        self.evaluation_seconds = Histogram(
            "covenant_evaluation_seconds", "Inspect and evaluate one container", registry=r,
            buckets=LATENCY_BUCKETS)
        self.enforcement_seconds = Histogram(
            "covenant_enforcement_seconds", "From reading a start event until the kill or stop "
            "request returned", registry=r, buckets=LATENCY_BUCKETS)
        self.reconnects = Counter("covenant_events_reconnects", "Events stream reconnections", registry=r)
        self.reconciled = Counter("covenant_reconciled", "Running containers found by reconciliation that "
                                  "no event had brought (events dropped by dockerd)", registry=r)
        self.connected = Gauge("covenant_events_connected", "1 while the events stream is open", registry=r)
        self.usage_rounds = Counter("covenant_usage_rounds", "Usage sampling rounds, by result",
                                    ["result"], registry=r)
        self.usage_sampled = Gauge("covenant_usage_sampled", "Containers whose stats the last usage "
                                   "round read (those a usage limit applies to)", registry=r)
        self.usage_round_seconds = Histogram("covenant_usage_round_seconds", "One usage round: list, "
                                             "stats of each limited container, judge", registry=r,
                                             buckets=LATENCY_BUCKETS)
        self.api_rules = Counter("covenant_api_rule_decisions", "API requests a request rule (api_rules) "
                                 "refused, or would have in warn mode, by rule and outcome (denied, warned)",
                                 ["rule", "outcome"], registry=r)
        self.quotas = Counter("covenant_quota_decisions", "Starts beyond a quota: refused by the plugin "
                              "(denied), stopped by the events daemon (stopped), or let through in warn "
                              "mode (warned)",
                              ["quota", "outcome"], registry=r)
        self.reloads = Counter("covenant_policy_reloads", "Policy reloads, by result", ["result"], registry=r)
        self.webhooks = Counter("covenant_webhooks", "Webhook documents, by result: sent, failed (after "
                                "its retries), dropped (queue full or shutting down)", ["result"], registry=r)
        self.shadow_decisions = Counter("covenant_shadow_decisions", "Verdicts of the shadow policy (never "
                                        "acted on), by its verdict and the enforced policy's on the same "
                                        "container (allowed, violates)", ["verdict", "enforced"], registry=r)
        self.shadow_violations = Counter("covenant_shadow_violations", "Checks the shadow policy flagged, "
                                         "by check id", ["check"], registry=r)
        self.shadow_loaded = Gauge("covenant_shadow_loaded", "1 while a shadow policy is loaded", registry=r)
        self.webhook_retries = Counter("covenant_webhook_retries", "Webhook attempts that were retries",
                                       registry=r)

        # What identifies this node to a central Prometheus, added to every series at
        # exposition (``node``, ``swarm_node_id``): asked of the engine by ``identify``, again
        # when older than NODE_TTL (a node may join a swarm while docker-covenant runs).
        self.node: dict[str, str] = {}
        self.identify: Callable[[], dict[str, str]] | None = None
        self._identified = -NODE_TTL

    def exposition(self) -> bytes:
        if self.identify is not None and time.monotonic() - self._identified >= NODE_TTL:
            try:
                self.node = self.identify()
                self._identified = time.monotonic()
            except Exception:  # noqa: BLE001 - keep the last labels; asked again next scrape
                pass
        return generate_latest(_NodeLabelled(self.registry, dict(self.node)))


class _NodeLabelled:
    """A registry's series with the node's labels added to each: a collector Prometheus'
    exposition reads like a registry. Samples that already carry a label of that name keep
    their own."""

    def __init__(self, registry: CollectorRegistry, labels: dict[str, str]) -> None:
        self.registry, self.labels = registry, labels

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            if not self.labels:
                yield family
                continue
            out = Metric(family.name, family.documentation, family.type, family.unit)
            for s in family.samples:
                out.add_sample(s.name, {**self.labels, **s.labels}, s.value, s.timestamp, s.exemplar)
            yield out


def node_labels(info: dict[str, Any]) -> dict[str, str]:
    """From the engine's ``/info``: its host name (``Name``, what ``docker info`` shows)
    and, on a Swarm node, the node's id."""
    labels = {"node": str(info.get("Name") or "")}
    swarm_node = str((info.get("Swarm") or {}).get("NodeID") or "")
    if swarm_node:
        labels["swarm_node_id"] = swarm_node
    return labels


def serve(address: tuple[str, int], metrics: Metrics, healthy: Callable[[], bool],
          status: Callable[[], dict[str, Any]]) -> ThreadingHTTPServer:
    """Start the listener on a daemon thread; returns the server (``shutdown()`` stops it)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, metrics.exposition())
            elif path == "/healthz":
                ok = healthy()
                self._send(200 if ok else 503, "text/plain", b"ok\n" if ok else b"unhealthy\n")
            elif path == "/status":
                self._send(200, "application/json", json.dumps(status(), indent=1).encode() + b"\n")
            else:
                self._send(404, "text/plain", b"not found: /metrics, /healthz, /status\n")

        def _send(self, code: int, ctype: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # scrapes are not decisions

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET

    server = Server(address, Handler)
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
