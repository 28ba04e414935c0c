"""How the plugin asks dockerd what it stored: over the unix socket with the standard
library, over anything else with docker-py; every failure is an EngineLookupError (a deny),
and every lookup is bounded in time."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import SocketProxy, run_container

from covenant.engine import DockerEngine, EngineLookupError, UnixConnection


@contextlib.contextmanager
def tcp_relay(upstream: Path) -> Iterator[str]:
    """tcp://127.0.0.1:PORT relaying to dockerd's unix socket (docker-py's transport)."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except OSError:
                return
            up = socket.socket(socket.AF_UNIX)
            up.connect(str(upstream))
            for a, b in ((client, up), (up, client)):
                threading.Thread(target=pump, args=(a, b), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        server.close()


def test_lookups_over_the_unix_socket_and_over_docker_py(dockerd, client):
    c = run_container(client, command=["sleep", "60"])
    exec_id = client.api.exec_create(c.id, ["true"], user="1000")["Id"]
    with tcp_relay(dockerd.socket) as tcp:
        for engine in (DockerEngine(host=dockerd.host), DockerEngine(host=tcp)):
            assert engine.container(c.name)["Id"] == c.id
            assert engine.container(c.id[:12])["Id"] == c.id
            stored = engine.exec(exec_id)
            assert stored["ContainerID"] == c.id and stored["ProcessConfig"]["user"] == "1000"
            with pytest.raises(EngineLookupError, match=r"404|No such container"):
                engine.container("no-such-container")
            assert engine.api_version() == client.version()["ApiVersion"]


def test_a_connection_dockerd_closed_is_replaced(dockerd, client, tmp_path):
    c = run_container(client, command=["sleep", "60"])
    proxy = SocketProxy(tmp_path / "relay.sock", dockerd.socket)
    try:
        engine = DockerEngine(host=f"unix://{tmp_path / 'relay.sock'}")
        assert engine.container(c.id)["Id"] == c.id
        proxy.cut()  # the pooled connection is dead now
        assert engine.container(c.id)["Id"] == c.id
    finally:
        proxy.close()


def test_two_pooled_connections_dockerd_closed_are_not_a_failed_lookup(dockerd, client, tmp_path):
    """After a stale pooled connection the lookup takes a new one, not the next pooled one
    (dockerd may have closed that too): a quota's list failed with BrokenPipeError so."""
    c = run_container(client, command=["sleep", "60"])
    proxy = SocketProxy(tmp_path / "relay.sock", dockerd.socket)
    try:
        engine = DockerEngine(host=f"unix://{tmp_path / 'relay.sock'}")
        assert engine.container(c.id)["Id"] == c.id
        second = UnixConnection(str(tmp_path / "relay.sock"), 3.0)
        second.request("GET", "/_ping")  # relayed, then kept alive like a pooled one
        assert second.getresponse().read() == b"OK"
        engine.idle.put(second)
        assert engine.idle.qsize() == 2
        proxy.cut()  # both pooled connections are dead now
        assert engine.container(c.id)["Id"] == c.id
    finally:
        proxy.close()


def test_a_dockerd_that_never_answers_is_a_failed_lookup(tmp_path):
    silent = socket.socket(socket.AF_UNIX)
    silent.bind(str(tmp_path / "silent.sock"))
    silent.listen(1)  # connections queue, nothing ever answers
    try:
        engine = DockerEngine(timeout=0.5, host=f"unix://{tmp_path / 'silent.sock'}")
        start = time.monotonic()
        with pytest.raises(EngineLookupError, match="timed out"):
            engine.container("x")
        assert time.monotonic() - start < 5
        with pytest.raises(EngineLookupError):
            DockerEngine(host=f"unix://{tmp_path / 'nothing-here.sock'}").container("x")
    finally:
        silent.close()
