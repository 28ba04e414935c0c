"""Managed plugins behind the authorization plugin. A managed plugin is a process dockerd
runs with the capabilities, namespaces and mounts its own config.json asks for, never
checked against any container policy; so plugins are judged by reference
(``allowed_plugins``) and one made from a local rootfs (``plugins/create``) is refused.
Pulls and upgrades come from a registry of the test's own (``LocalRegistry``), which the
control fills with ``plugins/create`` and ``push``.

The control is a dockerd without the plugin in a mount namespace of its own (managed
plugins put their sockets under /run/docker/plugins, which must stay the host's)."""

from __future__ import annotations

import base64
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
from engines import EngineBinaries
from harness import LocalRegistry, PrivateDockerd, UnixHTTP, busybox_tar, private_plugin_dir_wrapper, unique
from test_authz_walkarounds import CAP_SYS_ADMIN, cap_eff


@pytest.fixture(scope="module")
def control(engine: EngineBinaries) -> Iterator[UnixHTTP]:
    work = Path(tempfile.mkdtemp(prefix="covplug-"))
    daemon = PrivateDockerd(wrap=private_plugin_dir_wrapper(work), engine=engine)
    try:
        daemon.start()
        yield UnixHTTP(daemon.socket)
    finally:
        daemon.stop()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def registry() -> Iterator[LocalRegistry]:
    with LocalRegistry() as reg:
        yield reg


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
    status, text, seen = enable_and_watch_all(http, name, (marker,))
    return status, text, seen[marker]


def enable_and_watch_all(http: UnixHTTP, name: str,
                         markers: tuple[str, ...]) -> tuple[int, str, dict[str, int]]:
    """enable_and_watch for a plugin that may run any of ``markers``: the CapEff seen for
    each while the enable ran (0 for a marker whose process never ran)."""
    seen = dict.fromkeys(markers, 0)
    done = threading.Event()

    def watch() -> None:
        while not done.is_set() and not all(seen.values()):
            for marker in markers:
                for pid in processes_of(marker):
                    with contextlib.suppress(OSError):
                        seen[marker] |= cap_eff(pid) or 1 << 63  # it ran, even if it just exited
            done.wait(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        status, text = http.request("POST", f"/v1.41/plugins/{name}/enable?timeout=1", b"{}",
                                    {"Content-Type": "application/json"})
    finally:
        done.set()
        watcher.join()
    return status, text, seen


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


# -- pulls and upgrades from a registry ------------------------------------------------------------

NO_AUTH = {"X-Registry-Auth": base64.urlsafe_b64encode(b"{}").decode()}
JSON = {"Content-Type": "application/json"}
GOOD_ONLY = "debug: no\nallowed_plugins: ['127.0.0.1:*/covtest/good:*']\n"


def dechunked(text: str) -> str:
    """The body of a streamed answer (UnixHTTP returns it as sent: chunked)."""
    data, out = text.encode(), b""
    while True:
        size_line, sep, rest = data.partition(b"\r\n")
        try:
            size = int(size_line, 16)
        except ValueError:
            return text  # not chunked (a refusal has a Content-Length)
        if not sep or size == 0:
            return out.decode(errors="replace")
        out, data = out + rest[:size], rest[size + 2:]


def stream_errors(text: str) -> list[str]:
    """The errors in a progress stream (dockerd answers 200 and reports failures in it)."""
    errors = []
    for line in dechunked(text).splitlines():
        with contextlib.suppress(ValueError):
            message = json.loads(line)
            if isinstance(message, dict) and message.get("error"):
                errors.append(str(message["error"]))
    return errors


def publish(control: UnixHTTP, registry: LocalRegistry, repo: str, marker: str) -> str:
    """Push a plugin running ``sleep MARKER`` as REGISTRY/covtest/REPO:MARKER; the control
    keeps no copy. Returns the reference."""
    ref = f"{registry.host}/covtest/{repo}:{marker}"
    status, text = create(control, ref, marker)
    assert status == 204, text
    try:
        status, text = control.request("POST", f"/v1.41/plugins/{ref}/push", None, NO_AUTH)
        assert status == 200 and not stream_errors(text), text
    finally:
        control.request("DELETE", f"/v1.41/plugins/{ref}?force=1")
    return ref


def privileges(http: UnixHTTP, ref: str) -> bytes:
    """What the plugin at ``ref`` asks for, as the body granting it (what ``docker plugin
    install`` asks the user to accept)."""
    status, text = http.request("GET", f"/v1.41/plugins/privileges?remote={ref}", None, NO_AUTH)
    assert status == 200, text
    return text.encode()


def pull(http: UnixHTTP, ref: str, name: str) -> tuple[int, str]:
    return http.request("POST", f"/v1.41/plugins/pull?remote={ref}&name={name}", privileges(http, ref),
                        {**JSON, **NO_AUTH})


def upgrade(http: UnixHTTP, name: str, ref: str) -> tuple[int, str]:
    return http.request("POST", f"/v1.41/plugins/{name}/upgrade?remote={ref}", privileges(http, ref),
                        {**JSON, **NO_AUTH})


def installed(http: UnixHTTP) -> list[str]:
    return sorted(p["Name"] for p in json.loads(http.request("GET", "/v1.41/plugins")[1]))


def reference_of(http: UnixHTTP, name: str) -> str:
    status, text = http.request("GET", f"/v1.41/plugins/{name}/json")
    assert status == 200, text
    return str(json.loads(text)["PluginReference"])


def remove(http: UnixHTTP, name: str) -> None:
    http.request("DELETE", f"/v1.41/plugins/{name}?force=1")


def test_pulling_a_plugin_the_policy_does_not_allow_is_refused(bed, plugin_policy, control, registry):
    marker, name = new_marker(), unique("plug")
    evil = publish(control, registry, "evil", marker)
    plugin_policy(GOOD_ONLY)
    before = installed(bed[2])
    try:
        status, text = pull(bed[2], evil, name)
        assert status == 403 and "[CV030]" in text and evil in text, text
        assert installed(bed[2]) == before
        status, text, caps = enable_and_watch(bed[2], name, marker)
        assert status != 200 and caps == 0 and not processes_of(marker), text
    finally:
        remove(bed[2], name)
    # control: the same pull installs it, and enabling it runs its process with CAP_SYS_ADMIN
    try:
        status, text = pull(control, evil, name)
        assert status == 200 and not stream_errors(text), text
        assert f"{name}:latest" in installed(control)
        assert reference_of(control, name) == evil
        _, _, caps = enable_and_watch(control, name, marker)
    finally:
        remove(control, name)
    assert caps & CAP_SYS_ADMIN, "the control's plugin did not run with CAP_SYS_ADMIN: it proves nothing"


def test_pulling_an_allowed_plugin_works(bed, plugin_policy, control, registry):
    """Compliant work keeps working: an allowed reference is pulled, and its process runs
    as its config asks (CAP_SYS_ADMIN: allowing a plugin trusts it)."""
    marker, name = new_marker(), unique("plug")
    good = publish(control, registry, "good", marker)
    plugin_policy(GOOD_ONLY)
    try:
        status, text = pull(bed[2], good, name)
        assert status == 200 and not stream_errors(text), text
        assert reference_of(bed[2], name) == good
        _, text, caps = enable_and_watch(bed[2], name, marker)
        assert caps & CAP_SYS_ADMIN, text
    finally:
        remove(bed[2], name)
    assert f"{name}:latest" not in installed(bed[2])


def test_upgrading_a_plugin_to_a_reference_not_allowed_is_refused(bed, plugin_policy, control, registry):
    """An allowed plugin cannot be upgraded to a reference that is not: it stays the old
    plugin, and enabling it runs the old one's process."""
    good_marker, evil_marker, name = new_marker(), new_marker(), unique("plug")
    good = publish(control, registry, "good", good_marker)
    evil = publish(control, registry, "evil", evil_marker)
    markers = (good_marker, evil_marker)
    plugin_policy(GOOD_ONLY)
    try:
        status, text = pull(bed[2], good, name)
        assert status == 200 and not stream_errors(text), text
        status, text = upgrade(bed[2], name, evil)
        assert status == 403 and "[CV030]" in text and evil in text, text
        assert reference_of(bed[2], name) == good
        _, text, seen = enable_and_watch_all(bed[2], name, markers)
        assert seen[good_marker] & CAP_SYS_ADMIN, text
        assert seen[evil_marker] == 0 and not processes_of(evil_marker)
    finally:
        remove(bed[2], name)
    # control: the upgrade goes through, and enabling runs the new plugin's process
    try:
        status, text = pull(control, good, name)
        assert status == 200 and not stream_errors(text), text
        status, text = upgrade(control, name, evil)
        assert status == 200 and not stream_errors(text), text
        assert reference_of(control, name) == evil
        _, _, seen = enable_and_watch_all(control, name, markers)
    finally:
        remove(control, name)
    assert seen[evil_marker] & CAP_SYS_ADMIN and seen[good_marker] == 0, seen
