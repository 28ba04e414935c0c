"""Process life: connect, wire the watcher to the enforcer, talk to systemd, reload, stop cleanly."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import docker

from . import identity, logs
from .authz import AuthzPlugin
from .enforce import Enforcer
from .engine import DockerEngine
from .events import Watcher, reaudit, reconcile
from .metrics import Metrics, node_labels, serve
from .policy import Policy, PolicyError, Waiver, load_policy, parse_address
from .sampler import TIMEOUT as SAMPLER_TIMEOUT
from .sampler import WORKERS as SAMPLER_WORKERS
from .sampler import Sampler
from .scanner import Scanner, scan_lookup
from .shadow import Shadow
from .waivers import WaiverCollector, expiry_timer, log_ended
from .webhook import Notifier

AUTHZ_SCAN_WAIT = 2.0  # seconds the plugin waits for a scan verdict (unscanned: wait); dockerd waits on it


def notify(state: str) -> None:
    """sd_notify(3) when systemd (or anything else) gave us a NOTIFY_SOCKET; else nothing.

    Sent on a non-blocking socket of our own: systemd-python's ``notify`` blocks, holding
    the interpreter lock, while the receiver's queue is full, which froze the whole daemon
    (and raised EINTR on the next signal). A notification that cannot be queued is dropped.
    """
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    address = "\0" + path[1:] if path.startswith("@") else path
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s, contextlib.suppress(OSError):
        s.sendto(state.encode(), socket.MSG_DONTWAIT, address)


def watchdog_interval() -> float | None:
    """Half of WATCHDOG_USEC when systemd asked this process for keep-alives (sd_watchdog_enabled)."""
    usec, pid = os.environ.get("WATCHDOG_USEC"), os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


def connect(stopping: threading.Event, log: logging.Logger,
            max_delay: float = 2.0) -> docker.APIClient | None:
    """A client configured like the Docker CLI (DOCKER_HOST, DOCKER_TLS_VERIFY,
    DOCKER_CERT_PATH); waits for an engine that is not up yet instead of failing."""
    delay = 0.05
    while not stopping.is_set():
        try:
            client = docker.from_env(version="auto", max_pool_size=32)
            return client.api
        except docker.errors.DockerException as e:
            log.warning("cannot reach Docker (%s); retrying in %.2f s", str(e).splitlines()[0][:200], delay)
        stopping.wait(delay)
        delay = min(delay * 2, max_delay)
    return None


class Daemon:
    """One running docker-covenant. Signals only set flags; the main thread acts on them."""

    def __init__(self, policy: Policy, metrics_address: str | None = None,
                 authz_socket: str | None = None, watch: bool = True, shadow: str | None = None) -> None:
        self.policy = policy
        self.authz_socket = authz_socket
        self.watch = watch
        self.authz: AuthzPlugin | None = None
        self.metrics_address = metrics_address or policy.metrics_address
        self.log = logs.setup(policy.syslog_ident, policy.debug)
        self.metrics = Metrics()
        # every series names the node: the engine's name and Swarm node id, asked when scraped
        self.metrics.identify = lambda: node_labels(DockerEngine().info())
        self.started = time.time()
        self.stopping = threading.Event()
        self._wake = threading.Event()
        self._reload = False
        self.enforcer: Enforcer | None = None
        self.watcher: Watcher | None = None
        self._reaudit: threading.Thread | None = None
        self._usage: threading.Thread | None = None
        self.scanner = Scanner(lambda: self.policy.image_scan, lambda: self.log, self._scanned)
        self._reconcile: threading.Thread | None = None
        self._events_thread: threading.Thread | None = None
        self.webhook: Notifier | None = None
        self.metrics.registry.register(WaiverCollector(lambda: self.policy))
        self._waivers_rearm = threading.Event()  # a reload: look again for the next waiver's end
        self.shadow = Shadow(self.log, self.metrics, shadow)  # loaded in run(), logged

    # -- signals -------------------------------------------------------------------------
    def _on_stop(self, _signum: int, _frame: FrameType | None) -> None:
        self.stopping.set()
        self._wake.set()

    def _on_hup(self, _signum: int, _frame: FrameType | None) -> None:
        self._reload = True
        self._wake.set()

    # -- life ----------------------------------------------------------------------------
    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        own_id = identity.own_container_id()
        p = self.policy
        self.log.info("docker-covenant starting: policy %s (sha256 %s), mode %s, action %s%s",
                      p.source, p.digest[:12], p.mode, p.action,
                      f", own container {own_id[:12]}" if own_id else "")
        log_ended(self.log, p.expired_waivers(time.time()), time.time())
        threading.Thread(target=expiry_timer, name="waivers", daemon=True,
                         args=(lambda: self.policy, self._waivers_rearm, self.stopping, self._waivers_ended,
                               lambda: self.log)).start()
        server = self._serve_http()
        self.shadow.load(p)
        # what start-up made lives as long as the process: frozen out of the collector's
        # way, no full collection walks it while dockerd waits on the plugin's answer
        gc.collect()
        gc.freeze()
        if self.authz_socket:
            engine = DockerEngine()
            # the plugin never waits long on a scan: dockerd waits on the plugin
            engine.scan_hook = scan_lookup(self.scanner, lambda: self.policy, engine.image, AUTHZ_SCAN_WAIT)
            self.authz = AuthzPlugin(self.policy, self.log, self.authz_socket, engine, metrics=self.metrics)
            self.authz.shadow = self.shadow
            self.authz.serve()
            self.log.info("serving the authorization plugin on %s", self.authz_socket)
            self._set_webhook()
        if self.watch:
            api = connect(self.stopping, self.log)
            if api is not None:
                self._follow(api, own_id)
        else:
            notify("READY=1\nSTATUS=" + self.status_line())
            self._main_loop()
        notify("STOPPING=1")
        if self.authz is not None:
            self.authz.close()
        if self.watcher is not None:
            self.watcher.close()
        if self._events_thread is not None:
            self._events_thread.join(timeout=5)
        if self.enforcer is not None:
            self.enforcer.shutdown()
        if self.webhook is not None:
            self.webhook.close()
        self.shadow.close()
        if server is not None:
            server.shutdown()
        self.log.info("docker-covenant stopped")
        logs.shutdown(self.log)
        return 0

    def _follow(self, api: docker.APIClient, own_id: str | None) -> None:
        self.enforcer = Enforcer(api, self.policy, self.log, own_id, self.metrics)
        self.enforcer.shadow = self.shadow
        engine = self.enforcer.engine
        if isinstance(engine, DockerEngine):  # an evaluation thread may wait out the scan
            engine.scan_hook = scan_lookup(self.scanner, lambda: self.policy, engine.image, float("inf"))
        if self.authz is None:
            self._set_webhook()
        else:  # the plugin's sender, started with it
            self.enforcer.webhook = self.webhook
        self.watcher = Watcher(api, self.enforcer.submit, self.log, on_connected=self._on_connected,
                               metrics=self.metrics, on_change=self.enforcer.submit_change,
                               on_create=self.enforcer.submit_create, on_destroy=self.enforcer.forget)
        self._events_thread = threading.Thread(target=self.watcher.run, args=(self.stopping,),
                                               name="events", daemon=True)
        self._events_thread.start()
        self._start_timers()
        beat = watchdog_interval()
        if beat:
            threading.Thread(target=self._watchdog, args=(beat,), name="watchdog", daemon=True).start()
        self._main_loop()

    def _main_loop(self) -> None:
        while not self.stopping.is_set():
            self._wake.wait()  # nothing polls while idle
            self._wake.clear()
            if self._reload and not self.stopping.is_set():
                self._reload = False
                self.reload()

    def _on_connected(self) -> None:
        notify("READY=1\nSTATUS=" + self.status_line())

    def _scanned(self, image_id: str) -> None:
        """A scan ended: judge the running containers again (one allowed while its image had
        no verdict is stopped now if the verdict rejects it)."""
        if self.watcher is not None and self.enforcer is not None and self.watcher.connected.is_set():
            self.watcher.sweep(self.enforcer.submit_again)

    def _waivers_ended(self, ended: list[Waiver]) -> None:
        """Waivers ended just now: say so, and judge the running containers again (those they
        no longer cover are stopped). The plugin judges each request at its own time."""
        sweeping = self.watcher is not None and self.enforcer is not None and self.watcher.connected.is_set()
        log_ended(self.log, ended, time.time(), sweeping)
        if sweeping:
            assert self.watcher is not None and self.enforcer is not None
            self.watcher.sweep(self.enforcer.submit_again)

    def _start_reconcile(self) -> None:
        if self.policy.reconcile_interval and not (self._reconcile and self._reconcile.is_alive()):
            assert self.watcher is not None and self.enforcer is not None
            self._reconcile = threading.Thread(
                target=reconcile, args=(self.watcher, self.enforcer.unjudged, self.enforcer.submit_again,
                                        lambda: self.policy.reconcile_interval, self.stopping),
                name="reconcile", daemon=True)
            self._reconcile.start()

    def _start_timers(self) -> None:
        """Reconciliation, re-audit and usage threads, if their interval is set (a reload may
        set it)."""
        self._start_reconcile()
        if self.policy.usage_interval and not (self._usage and self._usage.is_alive()):
            assert self.enforcer is not None
            engine = DockerEngine(timeout=SAMPLER_TIMEOUT, pool=SAMPLER_WORKERS)
            sampler = Sampler(engine, lambda: self.policy, self.enforcer.act, lambda: self.log, self.metrics,
                              self.enforcer.own_id)
            self._usage = threading.Thread(target=sampler.run, args=(self.stopping,), name="usage",
                                           daemon=True)
            self._usage.start()
        if self.policy.reaudit_interval and not (self._reaudit and self._reaudit.is_alive()):
            assert self.watcher is not None and self.enforcer is not None
            self._reaudit = threading.Thread(
                target=reaudit, args=(self.watcher, self.enforcer.submit_again,
                                      lambda: self.policy.reaudit_interval, self.stopping),
                name="reaudit", daemon=True)
            self._reaudit.start()

    def _watchdog(self, interval: float) -> None:
        """Keep-alive only while the events thread lives and the evaluation pool answers:
        a stuck daemon must be restarted by systemd, not vouched for by a timer."""
        assert self.enforcer is not None and self._events_thread is not None
        while not self.stopping.wait(interval):
            if self._events_thread.is_alive() and self.enforcer.responsive(interval):
                notify("WATCHDOG=1\nSTATUS=" + self.status_line())
            else:
                self.log.error("events loop or evaluation pool not responding; withholding the watchdog")

    # -- reload --------------------------------------------------------------------------
    def reload(self) -> bool:
        """Re-read the policy file (SIGHUP). A bad file is refused and the old policy stays."""
        old = self.policy
        notify("RELOADING=1")
        try:
            new = load_policy(Path(old.source))
        except PolicyError as e:
            self.metrics.reloads.labels("failed").inc()
            self.log.error("policy reload failed: %s; keeping the previous policy (sha256 %s)",
                           e, old.digest[:12], extra=logs.fields(COVENANT_ACTION="reload-failed"))
            notify("READY=1\nSTATUS=" + self.status_line())
            return False
        self.policy = new
        if (new.syslog_ident, new.debug) != (old.syslog_ident, old.debug):
            self.log = logs.setup(new.syslog_ident, new.debug)
        if self.authz is not None:
            self.authz.policy, self.authz.log = new, self.log
        if self.enforcer is not None:
            self.enforcer.policy, self.enforcer.log = new, self.log
        self.shadow.log = self.log
        self.shadow.load(new)  # a shadow file that cannot be used is logged; enforcement goes on
        if new.webhook != old.webhook:  # before the reload is announced: what follows uses it
            self._set_webhook()
        elif self.webhook is not None:
            self.webhook.log = self.log
        self.metrics.reloads.labels("ok").inc()
        self._waivers_rearm.set()
        self.log.info("policy reloaded: %s (sha256 %s), mode %s, action %s%s", new.source, new.digest[:12],
                      new.mode, new.action, "; re-evaluating running containers" if self.watcher else "",
                      extra=logs.fields(COVENANT_ACTION="reloaded"))
        log_ended(self.log, new.expired_waivers(time.time()), time.time())
        if self.enforcer is None or self.watcher is None:
            notify("READY=1\nSTATUS=" + self.status_line())
            return True
        self.watcher.log = self.log
        self._start_timers()
        try:
            self.watcher.sweep(self.enforcer.submit_again)
        except Exception as e:  # noqa: BLE001 - the reconnection sweep will cover it
            self.log.warning("could not list containers after reload (%s)", e)
        notify("READY=1\nSTATUS=" + self.status_line())
        return True

    def _set_webhook(self) -> None:
        """(Re)start the webhook's sender for the current policy, or stop it if it has none;
        a sender replaced by a reload drops (and counts) what it still had queued."""
        old, hook = self.webhook, self.policy.webhook
        self.webhook = Notifier(hook, self.log, self.metrics) if hook is not None else None
        if self.enforcer is not None:
            self.enforcer.webhook = self.webhook
        if self.authz is not None:
            self.authz.webhook = self.webhook
        if old is not None:
            old.close()
        if hook is not None:
            # scheme and host only: a webhook URL often carries its secret in the path
            where = urlsplit(hook.url)
            self.log.info("webhook: posting %s decisions to %s://%s/...", ",".join(hook.on), where.scheme,
                          where.netloc.rpartition("@")[2])

    # -- what operators read -------------------------------------------------------------
    def healthy(self) -> bool:
        """Following events (events mode), or serving the plugin socket (authz only)."""
        if not self.watch:
            return self.authz is not None and self.authz.server is not None
        return self.watcher is not None and self.watcher.connected.is_set()

    def status_line(self) -> str:
        evaluated = self.metrics.registry.get_sample_value("covenant_containers_evaluated_total") or 0
        doing = ("following Docker events" if self.watch else "serving the authorization plugin") \
            if self.healthy() else "waiting for Docker"
        return (f"{doing}; "
                f"mode {self.policy.mode}; {int(evaluated)} evaluated; "
                f"policy sha256 {self.policy.digest[:12]}")

    def status(self) -> dict[str, Any]:
        p, sp = self.policy, self.shadow.policy
        return {"policy": {"file": p.source, "sha256": p.digest}, "mode": p.mode, "action": p.action,
                "uptime_seconds": round(time.time() - self.started, 3),
                "events_connected": self.healthy(),
                "shadow": None if sp is None else {"file": sp.source, "sha256": sp.digest},
                "last_decisions": list(self.enforcer.decisions) if self.enforcer else []}

    def _serve_http(self) -> Any:
        if not self.metrics_address:
            return None
        address = parse_address(self.metrics_address)
        server = serve(address, self.metrics, self.healthy, self.status)
        self.log.info("serving /metrics, /healthz and /status on %s:%d", *address)
        return server


def run(policy: Policy, metrics_address: str | None = None, authz_socket: str | None = None,
        watch: bool = True, shadow: str | None = None) -> int:
    """The daemon. Returns the exit status: 0 after SIGTERM/SIGINT. ``shadow``: a shadow
    policy file (``--shadow``), in place of the policy's ``shadow`` key."""
    return Daemon(policy, metrics_address, authz_socket, watch, shadow).run()
