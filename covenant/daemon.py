"""Process life: connect, wire the watcher to the enforcer, tell systemd, stop cleanly."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import docker

from . import identity, logs
from .enforce import Enforcer
from .events import Watcher, reaudit
from .policy import Policy


def notify(state: str) -> None:
    """sd_notify(3) when systemd (or anything else) gave us a NOTIFY_SOCKET; else nothing."""
    try:
        from systemd import daemon as sd
    except ImportError:
        return
    sd.notify(state)


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


def run(policy: Policy) -> int:
    """The daemon. Returns the exit status: 0 after SIGTERM/SIGINT."""
    log = logs.setup(policy.syslog_ident, policy.debug)
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    own_id = identity.own_container_id()
    log.info("docker-covenant starting: policy %s (sha256 %s), mode %s, action %s%s",
             policy.source, policy.digest[:12], policy.mode, policy.action,
             f", own container {own_id[:12]}" if own_id else "")
    api = connect(stopping, log)
    if api is None:
        return _stopped(log)
    enforcer = Enforcer(api, policy, log, own_id)
    ready = threading.Event()

    def on_connected() -> None:
        if not ready.is_set():
            ready.set()
            notify("READY=1\nSTATUS=following Docker events, mode " + policy.mode)

    watcher = Watcher(api, enforcer.submit, log, on_connected=on_connected)
    thread = threading.Thread(target=watcher.run, args=(stopping,), name="events", daemon=True)
    thread.start()
    if policy.reaudit_interval:
        threading.Thread(target=reaudit, args=(watcher, enforcer.submit_again, policy.reaudit_interval,
                                               stopping), name="reaudit", daemon=True).start()
    stopping.wait()  # a signal handler sets it; nothing polls while idle
    notify("STOPPING=1")
    watcher.close()
    thread.join(timeout=5)
    enforcer.shutdown()
    return _stopped(log)


def _stopped(log: logging.Logger) -> int:
    log.info("docker-covenant stopped")
    return 0
