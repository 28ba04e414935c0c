"""Operating it: journal fields, metrics/health/status, sd_notify and the watchdog, reload, re-audit."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from harness import COMPLIANT, SocketProxy, is_running, run_container, unique, wait_until
from prometheus_client.parser import text_string_to_metric_families


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


NODE_LABELS = ("node", "swarm_node_id")  # on every series (test_every_series_names_the_node)


def samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The series by name and labels, the node's labels left out."""
    status, body = get(url + "/metrics")
    assert status == 200
    return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k not in NODE_LABELS))): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


def test_every_series_names_the_node(dockerd, client, covenant_factory):
    port = free_port()
    covenant_factory(f"debug: no\nmetrics_address: ':{port}'\n")
    name = client.info()["Name"]
    status, body = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    series = [s for family in text_string_to_metric_families(body.decode()) for s in family.samples]
    assert len(series) > 20
    assert all(s.labels.get("node") == name for s in series), [s for s in series if "node" not in s.labels]
    assert not any("swarm_node_id" in s.labels for s in series)  # not a Swarm node


def test_journal_entries_carry_fields_and_stops_are_queryable(client, covenant_factory, journal):
    cov = covenant_factory("debug: no\naction: stop\nstop_timeout: 0\n")
    bad = [run_container(client, unique("stopme")) for _ in range(2)]
    good = run_container(client, unique("keepme"), **COMPLIANT)
    for c in bad:
        journal.wait_for(cov.ident, f"{c.name}: stopping container")
    journal.wait_for(cov.ident, f"{good.name}: allowed")
    stops = journal.entries(cov.ident, COVENANT_ACTION="stopped")
    assert sorted(e["CONTAINER_NAME"] for e in stops) == sorted(c.name for c in bad)
    for entry in stops:
        container = next(c for c in bad if c.name == entry["CONTAINER_NAME"])
        assert entry["MESSAGE"] == f"{container.name}: stopping container"
        assert entry["CONTAINER_ID"] == container.id
        assert entry["CONTAINER_IMAGE"] == "covenant-test/busybox:1"
        assert entry["COVENANT_CHECK"] == "CV002,CV003"
        assert entry["COVENANT_MODE"] == "enforce"
        assert entry["PRIORITY"] == "4"
    violation = journal.entries(cov.ident, CONTAINER_NAME=bad[0].name, COVENANT_CHECK="CV002")
    assert [e["MESSAGE"] for e in violation] == [f"{bad[0].name}: all capabilities not dropped"]
    allowed = journal.entries(cov.ident, COVENANT_ACTION="allowed")
    assert [e["CONTAINER_NAME"] for e in allowed] == [good.name]
    assert allowed[0]["PRIORITY"] == "7"


def test_metrics_health_and_status(dockerd, client, covenant_factory, journal):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cov = covenant_factory(f"debug: no\nmetrics_address: ':{port}'\n")
    bad = run_container(client, unique("metered"))
    good = run_container(client, unique("fine"), **COMPLIANT)
    journal.wait_for(cov.ident, f"{bad.name}: stopping container")
    journal.wait_for(cov.ident, f"{good.name}: allowed")
    wait_until(lambda: samples(url).get(("covenant_enforcement_seconds_count", ())) == 1, 5)
    m = samples(url)
    assert m[("covenant_containers_evaluated_total", ())] == 2
    assert m[("covenant_violations_total", (("check", "CV002"),))] == 1
    assert m[("covenant_violations_total", (("check", "CV003"),))] == 1
    assert m[("covenant_actions_total", (("action", "killed"),))] == 1
    assert m[("covenant_actions_total", (("action", "allowed"),))] == 1
    assert m[("covenant_evaluation_seconds_count", ())] == 2
    assert m[("covenant_events_connected", ())] == 1
    assert get(url + "/healthz")[0] == 200

    status = json.loads(get(url + "/status")[1])
    assert status["policy"]["file"] == str(cov.config)
    assert status["policy"]["sha256"] == hashlib.sha256(cov.config.read_bytes()).hexdigest()
    assert status["mode"] == "enforce" and status["uptime_seconds"] > 0
    assert [(d["name"], d["action"]) for d in status["last_decisions"]][-2:] in (
        [(bad.name, "killed"), (good.name, "allowed")], [(good.name, "allowed"), (bad.name, "killed")])

    dockerd.kill(signal.SIGTERM)
    wait_until(lambda: get(url + "/healthz")[0] == 503, 15, what="/healthz to turn 503")
    dockerd.start()
    wait_until(lambda: get(url + "/healthz")[0] == 200, 30, what="/healthz to recover")
    assert samples(url)[("covenant_events_reconnects_total", ())] >= 1
    assert get(url + "/nothing")[0] == 404


def test_metrics_listener_is_off_by_default(covenant_factory, journal):
    cov = covenant_factory("debug: no\n")
    assert not [m for m in journal.messages(cov.ident) if "/metrics" in m]
    assert not [line for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
                if line.split()[3] == "0A" and _owned_by(cov.proc.pid, line.split()[9])]


def _owned_by(pid: int, inode: str) -> bool:
    fd_dir = f"/proc/{pid}/fd"
    return any(os.readlink(f"{fd_dir}/{fd}") == f"socket:[{inode}]" for fd in os.listdir(fd_dir))


def test_sd_notify_ready_status_watchdog_stopping(covenant_factory):
    cov = covenant_factory("debug: no\n", env={"WATCHDOG_USEC": "400000"})
    notes = cov.read_notes()
    assert any(n.startswith("STATUS=following Docker events; mode enforce") for n in notes)
    cov.notes.clear()
    time.sleep(1.1)
    assert cov.read_notes().count("WATCHDOG=1") >= 3  # every 0.2 s
    assert cov.stop() == 0
    assert "STOPPING=1" in cov.read_notes()


def test_watchdog_is_withheld_while_the_daemon_is_stuck(dockerd, client, covenant_factory, journal):
    """Every evaluation thread blocked (the engine frozen mid-inspect): no keep-alive, so
    systemd would restart it; once the engine answers again the keep-alives resume."""
    cov = covenant_factory("debug: no\n", env={"WATCHDOG_USEC": "400000"})
    cov.signal(signal.SIGSTOP)
    try:
        for _ in range(12):
            run_container(client, unique("stuck"), **COMPLIANT)
        time.sleep(0.3)  # the start events are in the daemon's socket buffer
        dockerd.proc.send_signal(signal.SIGSTOP)
        cov.signal(signal.SIGCONT)
        journal.wait_for(cov.ident, "withholding the watchdog", timeout=10)
        cov.read_notes()
        cov.notes.clear()
        time.sleep(1.0)
        assert "WATCHDOG=1" not in cov.read_notes()
    finally:
        dockerd.proc.send_signal(signal.SIGCONT)
        cov.signal(signal.SIGCONT)
    wait_until(lambda: "WATCHDOG=1" in cov.read_notes(), 10, what="keep-alives to resume")


def test_sighup_applies_a_good_policy_and_refuses_a_bad_one(client, covenant_factory, journal):
    cov = covenant_factory("debug: no\nmode: warn\n")
    early = run_container(client, unique("tolerated"))
    journal.wait_for(cov.ident, f"{early.name}: not stopping container (warn mode)")
    assert is_running(early)

    cov.config.write_text(f"syslog_ident: {cov.ident}\ndebug: no\nmode: enforce\n")
    cov.signal(signal.SIGHUP)
    journal.wait_for(cov.ident, "policy reloaded")
    journal.wait_for(cov.ident, f"{early.name}: stopping container")  # re-evaluated at once
    wait_until(lambda: not is_running(early), 5)
    assert "RELOADING=1" in cov.read_notes()

    cov.config.write_text(f"syslog_ident: {cov.ident}\nmode: enforce\nweb:\n  privileged: maybe\n")
    cov.signal(signal.SIGHUP)
    entry = journal.wait_for(cov.ident, "policy reload failed")
    assert f"{cov.config}:4: web.privileged: expected yes or no, got 'maybe'" in entry["MESSAGE"]
    assert "keeping the previous policy" in entry["MESSAGE"] and entry["PRIORITY"] == "3"
    late = run_container(client, unique("still-enforced"))
    journal.wait_for(cov.ident, f"{late.name}: stopping container")
    assert cov.alive()


def test_reaudit_evaluates_running_containers_again(client, covenant_factory, journal):
    cov = covenant_factory("debug: no\nmode: warn\nreaudit_interval: 0.3\n")
    c = run_container(client, unique("reaudited"))
    wait_until(lambda: journal.messages(cov.ident).count(f"{c.name}: not stopping container (warn mode)")
               >= 3, 10, what="three evaluations")


def test_no_reaudit_by_default(client, covenant_factory, journal):
    cov = covenant_factory("debug: no\n")
    c = run_container(client, unique("once"), **COMPLIANT)
    journal.wait_for(cov.ident, f"{c.name}: allowed")
    time.sleep(1.5)
    assert journal.messages(cov.ident).count(f"{c.name}: allowed") == 1


def test_a_failed_stop_is_an_error(client, covenant_factory, journal, dockerd, tmp_path):
    """The engine's connection drops on every kill request: after its retries the daemon
    logs the failure at error priority with COVENANT_ACTION=failed, and carries on."""
    proxy = SocketProxy(tmp_path / "nokill.sock", dockerd.socket, refuse=b"/kill")
    try:
        cov = covenant_factory("debug: no\n", env={"DOCKER_HOST": f"unix://{proxy.path}"})
        bad = run_container(client, unique("unkillable"))
        entry = journal.wait_for(cov.ident, f"{bad.name}: failed to stop container", timeout=20)
        assert (entry["PRIORITY"], entry["COVENANT_ACTION"]) == ("3", "failed")
        assert is_running(bad) and cov.alive()
        assert [e["MESSAGE"] for e in journal.entries(cov.ident, COVENANT_ACTION="killed")] == [
            f"{bad.name}: stopping container"]
    finally:
        proxy.close()


def test_reaudit_catches_a_container_changed_by_docker_update(client, covenant_factory, journal, dockerd):
    cov = covenant_factory("debug: no\nreaudit_interval: 0.5\nlimited-*:\n  pids_limit_required: yes\n")
    c = run_container(client, unique("limited"), pids_limit=50, **COMPLIANT)
    journal.wait_for(cov.ident, f"{c.name}: allowed")
    docker_cli = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
    subprocess.run([docker_cli, "-H", dockerd.host, "update", "--pids-limit", "-1", c.name], check=True,
                   capture_output=True)  # lifts the limit: no start event
    journal.wait_for(cov.ident, f"{c.name}: no PIDs limit", timeout=10)
    journal.wait_for(cov.ident, f"{c.name}: stopping container")
    wait_until(lambda: not is_running(c), 5)
