"""Managed plugins behind the authorization plugin. A managed plugin is a process dockerd
runs with the capabilities, namespaces and mounts its own config.json asks for, never
checked against any container policy; so plugins are judged by reference
(``allowed_plugins``) and one made from a local rootfs (``plugins/create``) is refused.

The control is a dockerd without the plugin in a mount namespace of its own (managed
plugins put their sockets under /run/docker/plugins, which must stay the host's)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import PrivateDockerd, UnixHTTP, busybox_tar, private_plugin_dir_wrapper, unique
from test_authz_walkarounds import CAP_SYS_ADMIN, cap_eff


@pytest.fixture(scope="module")
def control() -> Iterator[UnixHTTP]:
    work = Path(tempfile.mkdtemp(prefix="covplug-"))
    daemon = PrivateDockerd(wrap=private_plugin_dir_wrapper(work))
    try:
        daemon.start()
        yield UnixHTTP(daemon.socket)
    finally:
        daemon.stop()
        shutil.rmtree(work, ignore_errors=True)


def plugin_context(marker: str) -> bytes:
    """A plugin whose process is ``sleep MARKER`` with CAP_SYS_ADMIN in the host network."""
    config = {"Description": "covenant test plugin", "Documentation": "https://example.invalid",
              "Interface": {"Types": ["docker.volumedriver/1.0"], "Socket": "covtest.sock"},
              "Entrypoint": ["/bin/sleep", marker], "Network": {"Type": "host"},
              "Linux": {"Capabilities": ["CAP_SYS_ADMIN"]}}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = json.dumps(config).encode()
        info = tarfile.TarInfo("config.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        busybox_tar(tar, under="rootfs/")
    return buf.getvalue()


def processes_of(marker: str) -> list[int]:
    """PIDs running ``sleep MARKER``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.endswith(b"sleep\0" + marker.encode() + b"\0"):
                found.append(int(entry))
    return found


def create(http: UnixHTTP, name: str, marker: str) -> tuple[int, str]:
    return http.request("POST", f"/v1.41/plugins/create?name={name}", plugin_context(marker),
                        {"Content-Type": "application/x-tar"})


def enable_and_watch(http: UnixHTTP, name: str, marker: str) -> tuple[int, str, int]:
    """Enable the plugin; (status, body, CapEff of its process while it ran, 0 if it never did).
    The test plugin never answers on its socket, so dockerd gives up after the timeout."""
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set() and not seen:
            for pid in processes_of(marker):
                with contextlib.suppress(OSError):
                    seen.append(cap_eff(pid))
            done.wait(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        status, text = http.request("POST", f"/v1.41/plugins/{name}/enable?timeout=1", b"{}",
                                    {"Content-Type": "application/json"})
    finally:
        done.set()
        watcher.join()
    return status, text, seen[0] if seen else 0


def new_marker() -> str:
    return str(random.randrange(10**8, 10**9))


def test_a_plugin_from_a_local_rootfs_is_refused(bed, control):
    name, marker = unique("plug"), new_marker()
    status, text = create(bed[2], name, marker)
    assert status == 403 and "[CV030]" in text and "docker plugin create" in text, text
    assert json.loads(bed[2].request("GET", "/v1.41/plugins")[1]) == []
    # control: created, and enabling it runs its process with CAP_SYS_ADMIN
    status, text = create(control, name, marker)
    assert status == 204, text
    _, _, caps = enable_and_watch(control, name, marker)
    control.request("DELETE", f"/v1.41/plugins/{name}?force=1")
    assert caps & CAP_SYS_ADMIN, "the control's plugin did not run with CAP_SYS_ADMIN: it proves nothing"


def test_enabling_a_plugin_the_policy_does_not_allow_is_refused(bed, plugin_policy, control):
    """A plugin already installed (here: created while the plugin only warned) cannot be
    enabled unless its reference is allowed."""
    name, marker = unique("plug"), new_marker()
    plugin_policy("debug: no\nmode: warn\n")
    assert create(bed[2], name, marker)[0] == 204
    plugin_policy("debug: no\nallowed_plugins: ['docker.io/library/other:*']\n")
    try:
        status, text, caps = enable_and_watch(bed[2], name, marker)
        assert status == 403 and "[CV030]" in text, text
        assert caps == 0 and not processes_of(marker)
    finally:
        bed[2].request("DELETE", f"/v1.41/plugins/{name}?force=1")
    assert create(control, name, marker)[0] == 204
    _, _, caps = enable_and_watch(control, name, marker)
    control.request("DELETE", f"/v1.41/plugins/{name}?force=1")
    assert caps & CAP_SYS_ADMIN
