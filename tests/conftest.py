"""Session fixtures: one private dockerd, one busybox image, one journal; a fresh daemon per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from harness import Covenant, JournalBed, PrivateDockerd, busybox_image


@pytest.fixture(scope="session")
def journal() -> Iterator[JournalBed]:
    bed = JournalBed()
    bed.start()
    yield bed
    bed.stop()


@pytest.fixture(scope="session")
def dockerd() -> Iterator[PrivateDockerd]:
    daemon = PrivateDockerd()
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
