"""Session fixtures: one private dockerd, one busybox image, one journal; a fresh daemon per test."""

from __future__ import annotations

import shutil
import signal
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from engines import ENGINES, EngineBinaries, engine_binaries
from harness import (
    AUTHZ_BASE_POLICY,
    AUTHZ_PLUGIN,
    Covenant,
    JournalBed,
    PrivateDockerd,
    UnixHTTP,
    busybox_image,
    private_plugin_dir_wrapper,
    wait_until,
)


@pytest.fixture(scope="session")
def journal() -> Iterator[JournalBed]:
    bed = JournalBed()
    bed.start()
    yield bed
    bed.stop()


@pytest.fixture(scope="session", params=ENGINES, ids=[f"dockerd-{v}" for v in ENGINES])
def engine(request: pytest.FixtureRequest) -> EngineBinaries:
    """Every end-to-end test runs on each engine: the machine's docker.io (20.10) and
    Debian trixie's (26), fetched and unpacked by the harness (``engines.py``)."""
    return engine_binaries(request.param)


@pytest.fixture(scope="session")
def dockerd(engine: EngineBinaries) -> Iterator[PrivateDockerd]:
    daemon = PrivateDockerd(engine=engine)
    try:
        daemon.start()
        client = daemon.client()
        busybox_image(client)
        client.close()
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def client(dockerd: PrivateDockerd) -> Iterator[docker.DockerClient]:
    """A client of the private engine; every container a test made is removed after it."""
    if not dockerd.ping():
        dockerd.start()
    c = dockerd.client()
    yield c
    c.close()
    dockerd.remove_all_containers()


@pytest.fixture
def covenant_factory(tmp_path: Path, dockerd: PrivateDockerd, journal: JournalBed) -> Iterator[Any]:
    """start(policy_yaml) -> a running docker-covenant (READY=1 received) on the private engine."""
    started: list[Covenant] = []

    def start(policy: str = "", wait_ready: bool = True, **kwargs: Any) -> Covenant:
        cov = Covenant(tmp_path, dockerd.host, policy, **kwargs)
        started.append(cov)
        return cov.start(wait_ready=wait_ready)

    yield start
    for cov in started:
        cov.close()


@pytest.fixture(scope="session")
def bed(journal: JournalBed, engine: EngineBinaries) -> Iterator[tuple[PrivateDockerd, Covenant, UnixHTTP]]:
    """(dockerd with --authorization-plugin, the plugin process, raw HTTP to the engine).

    dockerd runs in a private mount namespace whose /run/docker/plugins is a folder of
    the test's, so the plugin is found by its plain name and the host's folder is untouched."""
    work = Path(tempfile.mkdtemp(prefix="covauthz-"))
    plugin_dir = work / "plugins"
    plugin_dir.mkdir()
    daemon = PrivateDockerd(extra_args=(f"--authorization-plugin={AUTHZ_PLUGIN}",),
                            wrap=private_plugin_dir_wrapper(plugin_dir), engine=engine)
    # the plugin looks containers and execs up on the engine it guards
    plugin = Covenant(work, daemon.host, AUTHZ_BASE_POLICY)
    with socket.socket() as s:  # /metrics on a free loopback port (read at start only)
        s.bind(("127.0.0.1", 0))
        plugin.metrics_url = f"http://127.0.0.1:{s.getsockname()[1]}"
    plugin.argv += ["--metrics-address", plugin.metrics_url.removeprefix("http://"), "authz", "--name",
                    AUTHZ_PLUGIN, "--socket-dir", str(plugin_dir)]
    plugin.start()
    try:
        daemon.start()
        client = daemon.client()
        busybox_image(client)
        client.close()
        yield daemon, plugin, UnixHTTP(daemon.socket)
    finally:
        daemon.stop()
        plugin.close()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def plugin_policy(bed: tuple[PrivateDockerd, Covenant, UnixHTTP], journal: JournalBed) -> Iterator[Any]:
    """Set the plugin's policy for one test (SIGHUP), and put the base one back after."""
    _, plugin, _ = bed

    def apply(text: str) -> None:
        before = len(journal.messages(plugin.ident, COVENANT_ACTION="reloaded"))
        plugin.config.write_text(f"syslog_ident: {plugin.ident}\n{text}")
        plugin.signal(signal.SIGHUP)
        wait_until(lambda: len(journal.messages(plugin.ident, COVENANT_ACTION="reloaded")) > before, 10,
                   what="the plugin to reload")

    yield apply
    apply(AUTHZ_BASE_POLICY)
