"""Authorization-plugin mode against a real dockerd that asks it about every request.

The test dockerd runs in a private mount namespace whose /run/docker/plugins is a
folder of the test's, so the plugin is found by its plain name and the host's plugin
folder is untouched."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest
from harness import (
    AUTHZ_PLUGIN,
    COMPLIANT,
    IMAGE,
    Covenant,
    UnixHTTP,
    unique,
)

PLUGIN = AUTHZ_PLUGIN
DOCKER = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"


def docker(bed, *args):
    daemon, _, _ = bed
    return subprocess.run([DOCKER, "-H", daemon.host, *args], capture_output=True, text=True, timeout=60,
                          check=False)



def exists(bed, name: str) -> bool:
    return docker(bed, "inspect", name).returncode == 0


def test_privileged_run_is_refused_with_the_reason(bed, journal):
    name = unique("refused")
    result = docker(bed, "run", "-d", "--network", "none", "--privileged", "--name", name, IMAGE,
                    "sleep", "60")
    assert result.returncode != 0
    assert (f"authorization denied by plugin {PLUGIN}: [CV001] {name}: privileged set but not allowed; "
            f"[CV002] {name}: all capabilities not dropped; [CV003] {name}: no security options has been set"
            ) in result.stderr
    assert not exists(bed, name)
    entry = journal.wait_for(bed[1].ident, f"{name}: denied POST")
    assert entry["COVENANT_ACTION"] == "denied" and entry["COVENANT_CHECK"] == "CV001,CV002,CV003"


def test_compliant_run_and_docker_ps_go_through(bed):
    name = unique("welcome")
    result = docker(bed, "run", "-d", "--network", "none", "--cap-drop", "all", "--security-opt",
                    "no-new-privileges", "--name", name, IMAGE, "sleep", "60")
    assert result.returncode == 0, result.stderr
    ps = docker(bed, "ps", "--format", "{{.Names}}")
    assert ps.returncode == 0 and name in ps.stdout.split()
    docker(bed, "rm", "-f", name)


def test_compliant_work_keeps_working_through_the_cli(bed):
    """What a user does every day goes through the plugin: run (also --rm, which starts by
    the full id), exec (also as a user), restart, stop and start by a short id, rename,
    and compose's create-then-start by name."""
    safe = ["--network", "none", "--cap-drop", "all", "--security-opt", "no-new-privileges"]
    name = unique("daily")
    ok = docker(bed, "run", "-d", *safe, "--name", name, IMAGE, "sleep", "60")
    assert ok.returncode == 0, ok.stderr
    short = ok.stdout.strip()[:12]
    steps = [["exec", name, "true"], ["exec", "-u", "1000", name, "id", "-u"],
             ["restart", "-t", "0", name], ["stop", "-t", "0", short], ["start", short],
             ["rename", name, f"{name}-2"], ["rename", f"{name}-2", name],
             ["run", "--rm", *safe, IMAGE, "true"],
             ["create", *safe, "--name", f"{name}-c", IMAGE, "sleep", "60"], ["start", f"{name}-c"]]
    for args in steps:
        result = docker(bed, *args)
        assert result.returncode == 0, (args, result.stderr)
    assert docker(bed, "exec", "-u", "1000", name, "id", "-u").stdout.strip() == "1000"
    docker(bed, "rm", "-f", name, f"{name}-c")


@pytest.mark.parametrize(("flags", "expected"), [
    (["--cap-drop", "all", "--cap-add", "ALL", "--security-opt", "no-new-privileges"], "[CV004]"),
    (["--cap-drop", "net_raw", "--security-opt", "no-new-privileges"], "[CV002]"),
    (["--cap-drop", "all", "--security-opt", "seccomp=unconfined"], "[CV003]"),
])
def test_each_original_violation_is_refused(bed, flags, expected):
    name = unique("refused")
    result = docker(bed, "create", "--network", "none", *flags, "--name", name, IMAGE, "true")
    assert result.returncode != 0 and expected in result.stderr, result.stderr
    assert not exists(bed, name)


def test_catalogue_checks_apply_at_create(bed, plugin_policy):
    plugin_policy("debug: no\nprofile: strict\n")
    name = unique("strict")
    result = docker(bed, "create", "--network", "host", "--cap-drop", "all", "--security-opt",
                    "no-new-privileges", "--name", name, IMAGE, "true")
    assert result.returncode != 0
    for check in ("[CV010]", "[CV015]", "[CV025]", "[CV027]"):
        assert check in result.stderr


def create_raw(bed, body: dict | bytes | str, target: str | None = None, **kwargs) -> tuple[int, str, str]:
    _, _, http = bed
    name = unique("raw")
    data = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
    headers = kwargs.pop("headers", {"Content-Type": "application/json"})
    status, text = http.request("POST", (target or "/v1.41/containers/create?name={name}").format(name=name),
                                data, headers, **kwargs)
    return status, text, name


PRIVILEGED = {"Privileged": True, "CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges"]}


@pytest.mark.parametrize(("headers", "chunked", "why"), [
    ({"Content-Type": "application/json; charset=utf-8"}, False,
     "a Content-Type dockerd accepts but older ones do not forward"),
    ({"Content-Type": "application/json"}, True, "a chunked body has no length, so it is not forwarded"),
])
def test_bodies_dockerd_may_not_forward_are_still_refused(bed, headers, chunked, why):
    """Older engines forward a body only with Content-Type exactly application/json and a
    known length; this one (Debian's 20.10.24, patched) forwards these: either way the
    privileged create is refused -- by its violations, or for want of a body."""
    body = {"Image": IMAGE, "HostConfig": {**PRIVILEGED, "NetworkMode": "none"}}
    status, text, name = create_raw(bed, body, headers=headers, chunked=chunked)
    assert status == 403, f"{why}: {status} {text}"
    assert "[CV001]" in text or "without a body the plugin can read" in text
    assert not exists(bed, name)


def test_legacy_start_with_a_host_config_is_refused(bed):
    name = unique("legacy")
    assert docker(bed, "create", "--network", "none", "--cap-drop", "all", "--security-opt",
                  "no-new-privileges", "--name", name, IMAGE, "sleep", "60").returncode == 0
    _, _, http = bed
    status, text = http.request("POST", f"/v1.23/containers/{name}/start", json.dumps(
        {"Privileged": True}).encode(), {"Content-Type": "application/json"})
    assert status == 403 and "a start request with a body" in text, text
    started = docker(bed, "inspect", "-f", "{{.State.StartedAt}} {{.HostConfig.Privileged}}", name).stdout
    assert started.split() == ["0001-01-01T00:00:00Z", "false"]  # it never ran, and was not widened
    status, text = http.request("POST", f"/v1.23/containers/{name}/start")
    assert status == 403 and "before 1.24" in text, text  # a chunked body would not be forwarded
    assert docker(bed, "start", name).returncode == 0  # a current client starts it
    docker(bed, "rm", "-f", name)


def test_privileged_exec_is_refused_unless_the_section_allows_privileged(bed):
    name = unique("target")
    assert docker(bed, "run", "-d", "--network", "none", "--cap-drop", "all", "--security-opt",
                  "no-new-privileges", "--name", name, IMAGE, "sleep", "60").returncode == 0
    denied = docker(bed, "exec", "--privileged", name, "true")
    assert denied.returncode != 0 and f"[CV001] {name}: privileged exec not allowed" in denied.stderr
    assert docker(bed, "exec", name, "true").returncode == 0
    allowed = "allowed-priv"
    docker(bed, "rm", "-f", allowed)
    assert docker(bed, "run", "-d", "--network", "none", "--privileged", "--name", allowed, IMAGE,
                  "sleep", "60").returncode == 0
    container_id = docker(bed, "inspect", "-f", "{{.Id}}", allowed).stdout.strip()
    by_id = docker(bed, "exec", "--privileged", container_id[:12], "true")  # by id too
    assert by_id.returncode == 0, by_id.stdout + by_id.stderr
    docker(bed, "rm", "-f", name, allowed)


def test_warn_mode_allows_and_logs(bed, plugin_policy, journal):
    plugin_policy("debug: no\nmode: warn\n")
    name = unique("warned")
    result = docker(bed, "create", "--network", "none", "--privileged", "--name", name, IMAGE, "true")
    assert result.returncode == 0, result.stderr
    entry = journal.wait_for(bed[1].ident, f"{name}: would deny POST")
    assert entry["COVENANT_ACTION"] == "warned"
    docker(bed, "rm", "-f", name)


@pytest.mark.parametrize("fail", ["closed", "open"])
def test_malformed_bodies_follow_the_fail_setting(bed, plugin_policy, journal, fail):
    plugin_policy(f"debug: no\nfail: {fail}\n")
    status, text, _ = create_raw(bed, b'{"Image": "x", "HostConfig": {')
    if fail == "closed":
        assert status == 403 and "container create: not JSON" in text, text
    else:
        assert status != 403 and "authorization denied" not in text, text  # dockerd's own JSON error
    action = "denied" if fail == "closed" else "allowed"
    journal.wait_for(bed[1].ident, "container create: not JSON", COVENANT_ACTION=action)


def test_log_requests(bed, plugin_policy, journal):
    plugin_policy("debug: no\nlog_requests: yes\n")
    assert docker(bed, "ps").returncode == 0
    journal.wait_for(bed[1].ident, "GET /v1.41/containers/json allowed")


def test_plugin_and_watcher_in_one_process(tmp_path, dockerd, client, journal):
    """`authz --watch`: refuse at create where dockerd asks it, and still sweep and follow
    events (here on an engine that does not ask it, as after a plugin outage)."""
    running = client.containers.run(IMAGE, ["sleep", "300"], name=unique("before"), detach=True,
                                    network_mode="none")
    plugin_dir = tmp_path / "plugins"
    cov = Covenant(tmp_path, dockerd.host, "debug: no\n")
    cov.argv += ["authz", "--name", "covwatch", "--socket-dir", str(plugin_dir), "--watch"]
    try:
        cov.start()
        assert (plugin_dir / "covwatch.sock").exists()
        journal.wait_for(cov.ident, f"{running.name}: stopping container")
        later = client.containers.run(IMAGE, ["sleep", "300"], name=unique("later"), detach=True,
                                      network_mode="none", **{})
        journal.wait_for(cov.ident, f"{later.name}: stopping container")
        assert cov.stop() == 0
        assert not (plugin_dir / "covwatch.sock").exists()
    finally:
        cov.close()


def test_compliant_create_via_raw_http(bed):
    status, text, name = create_raw(bed, {"Image": IMAGE, "Cmd": ["true"], "HostConfig": {
        "CapDrop": COMPLIANT["cap_drop"], "SecurityOpt": COMPLIANT["security_opt"], "NetworkMode": "none"}})
    assert status == 201, text
    docker(bed, "rm", "-f", name)


def test_socket_activation_as_the_socket_unit_does_it(tmp_path, journal):
    """systemd-socket-activate holds the socket and starts the plugin on the first
    connection, passing the socket (sd_listen_fds): the plugin answers on it."""
    sock = tmp_path / "covsa.sock"
    cov = Covenant(tmp_path, "unix:///nonexistent.sock", "debug: no\n")
    cov.argv = ["systemd-socket-activate", "-l", str(sock), *cov.argv, "authz", "--name", "covsa",
                "--socket-dir", str(tmp_path / "unused")]
    try:
        cov.start(wait_ready=False)
        from harness import wait_until
        wait_until(sock.exists, 10, what="the activation socket")
        http = UnixHTTP(sock)
        status, text = http.request("POST", "/Plugin.Activate", b"{}", {"Content-Type": "application/json"})
        assert (status, json.loads(text)) == (200, {"Implements": ["authz"]})
        body = json.dumps({"Image": IMAGE, "HostConfig": {"Privileged": True}}).encode()
        request = {"RequestMethod": "POST", "RequestUri": "/v1.41/containers/create?name=activated",
                   "RequestBody": base64.b64encode(body).decode(), "User": ""}
        status, text = http.request("POST", "/AuthZPlugin.AuthZReq", json.dumps(request).encode(),
                                    {"Content-Type": "application/json"})
        answer = json.loads(text)
        assert answer["Allow"] is False and answer["Msg"].startswith("[CV001] activated: privileged")
        assert not (tmp_path / "unused").exists()  # it bound nothing itself
    finally:
        cov.close()


def test_plugin_alone_reports_ready_and_healthy(tmp_path):
    from test_operate import free_port, get

    port = free_port()
    cov = Covenant(tmp_path, "unix:///nonexistent.sock", f"debug: no\nmetrics_address: ':{port}'\n")
    cov.argv += ["authz", "--name", "covhealth", "--socket-dir", str(tmp_path)]
    try:
        cov.start()
        assert any(n.startswith("STATUS=serving the authorization plugin") for n in cov.read_notes())
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    finally:
        cov.close()


# -- decided from what dockerd stored, each with its control on a dockerd without the plugin --

DEEP = "[" * 3000 + "]" * 3000  # Go decodes it (depth limit 10,000); our reader refuses it
PRIVILEGED_CREATE = ('{"Image": "' + IMAGE + '", "Cmd": ["sleep", "300"], "X": ' + DEEP + ', "HostConfig": '
                     '{"Privileged": true, "NetworkMode": "none"}}').encode()
NEVER = "0001-01-01T00:00:00Z"


def raw_run(http: UnixHTTP, body: bytes) -> tuple[str, int]:
    """Create (raw body) and start; returns (name, start status)."""
    name = unique("stored")
    status, text = http.request("POST", f"/v1.41/containers/create?name={name}", body,
                                {"Content-Type": "application/json"})
    assert status == 201, text
    status, _ = http.request("POST", f"/v1.41/containers/{name}/start")
    return name, status


def test_a_create_the_plugin_cannot_read_never_starts_a_violator(bed, plugin_policy, dockerd):
    plugin_policy("debug: no\nfail: open\n")  # the unreadable create itself gets through
    name, status = raw_run(bed[2], PRIVILEGED_CREATE)
    assert status == 403
    fmt = "{{.State.StartedAt}} {{.HostConfig.Privileged}}"
    state = docker(bed, "inspect", "-f", fmt, name).stdout.split()
    assert state == [NEVER, "true"]  # stored privileged, never ran
    # control: the same requests to a dockerd without the plugin run it privileged
    control = UnixHTTP(dockerd.socket)
    name, status = raw_run(control, PRIVILEGED_CREATE)
    assert status == 204
    client = dockerd.client()
    try:
        stored = client.api.inspect_container(name)
        assert stored["State"]["Running"] and stored["HostConfig"]["Privileged"]
    finally:
        client.api.remove_container(name, force=True)
        client.close()


def cap_eff(pid: int) -> int:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("CapEff:"))
    return int(line.split()[1], 16)


def exec_privileged(http: UnixHTTP, target: str) -> tuple[str, int]:
    """Exec create with a body only Go reads, then exec start; (exec id, start status)."""
    body = ('{"Cmd": ["sleep", "30"], "X": ' + DEEP + ', "Privileged": true}').encode()
    status, text = http.request("POST", f"/v1.41/containers/{target}/exec", body,
                                {"Content-Type": "application/json"})
    assert status == 201, text
    exec_id = json.loads(text)["Id"]
    status, _ = http.request("POST", f"/v1.41/exec/{exec_id}/start", b'{"Detach": true}',
                             {"Content-Type": "application/json"})
    return exec_id, status


def test_an_exec_the_plugin_cannot_read_never_runs_privileged(bed, plugin_policy, dockerd):
    plugin_policy("debug: no\nfail: open\n")
    target = unique("target")
    run = ["run", "-d", "--network", "none", "--cap-drop", "all", "--security-opt", "no-new-privileges",
           "--name", target, IMAGE, "sleep", "300"]
    assert docker(bed, *run).returncode == 0
    exec_id, status = exec_privileged(bed[2], target)
    assert status == 403
    stored = json.loads(bed[2].request("GET", f"/v1.41/exec/{exec_id}/json")[1])
    assert stored["ProcessConfig"]["privileged"] and stored["Pid"] == 0 and not stored["Running"]
    docker(bed, "rm", "-f", target)
    # control: without the plugin it runs with every capability
    client = dockerd.client()
    try:
        client.containers.run(IMAGE, ["sleep", "300"], name=target, detach=True, network_mode="none",
                              cap_drop=["ALL"], security_opt=["no-new-privileges"])
        control = UnixHTTP(dockerd.socket)
        exec_id, status = exec_privileged(control, target)
        assert status == 200
        pid = client.api.exec_inspect(exec_id)["Pid"]
        assert pid > 0 and cap_eff(pid) & (1 << 21)  # CAP_SYS_ADMIN
    finally:
        client.api.remove_container(target, force=True)
        client.close()
