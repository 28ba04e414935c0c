"""Waivers that end, end to end on the private engines: the running daemon stops a
container at the moment its waiver ends (and one whose waiver runs on is left alone), the
timer is re-armed by a reload, the plugin refuses once the waiver has ended (and allowed
before), ``audit`` reports the finding, ``/metrics`` shows the waivers' ends, and the
journal carries a waived finding's reason."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

from harness import IMAGE, REPO, is_running, run_container, unique, wait_until
from test_authz import docker
from test_operate import free_port, samples

ONLY_CV002 = {"security_opt": ["no-new-privileges"]}  # all capabilities kept: CV002 alone


def stamp(when: float) -> str:
    """An ``until`` timestamp, to the second, in UTC."""
    return datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def waiver(checks: str, reason: str, until: float, extra: str = "") -> str:
    return (f"  waive:\n    - checks: [{checks}]\n      reason: {reason}\n{extra}"
            f"      until: {stamp(until)}\n")


def realtime(entry: dict) -> float:
    return int(entry["__REALTIME_TIMESTAMP"]) / 1e6


def test_the_running_daemon_stops_a_container_when_its_waiver_ends(dockerd, client, covenant_factory,
                                                                   journal):
    ending = run_container(client, unique("ending"), **ONLY_CV002)
    kept = run_container(client, unique("kept"), **ONLY_CV002)
    port = free_port()
    ends = int(time.time()) + 10  # a few seconds after the daemon starts (the start-up sweep judges both)
    policy = (f"debug: yes\nmetrics_address: ':{port}'\n"
              f"{ending.name}:\n" + waiver("CV002", "VPN client until the image is fixed", ends,
                                            "      ticket: OPS-123\n      owner: alice\n")
              + f"{kept.name}:\n" + waiver("CV002", "a longer exception", ends + 3600))
    cov = covenant_factory(policy)

    # before the end: both waived, the finding logged with its waiver
    entry = journal.wait_for(cov.ident, f"{ending.name}: CV002 waived", COVENANT_ACTION="waived")
    assert realtime(entry) < ends, "the machine was too slow to judge the container before its waiver ended"
    assert entry["MESSAGE"] == (f"{ending.name}: CV002 waived ({ending.name}: all capabilities not dropped): "
                                f"VPN client until the image is fixed [OPS-123, alice, until {stamp(ends)}]")
    assert (entry["COVENANT_CHECK"], entry["COVENANT_WAIVER_REASON"], entry["COVENANT_WAIVER_TICKET"],
            entry["COVENANT_WAIVER_OWNER"], entry["COVENANT_WAIVER_UNTIL"], entry["COVENANT_WAIVER_EXPIRES"],
            entry["COVENANT_WAIVER_SECTION"]) == (
        "CV002", "VPN client until the image is fixed", "OPS-123", "alice", stamp(ends), stamp(ends),
        ending.name)
    journal.wait_for(cov.ident, f"{kept.name}: CV002 waived", COVENANT_ACTION="waived")
    m = samples(f"http://127.0.0.1:{port}")
    assert m[("covenant_waiver_expiry_timestamp_seconds", (("checks", "CV002"), ("owner", "alice"),
              ("section", ending.name), ("ticket", "OPS-123"), ("until", stamp(ends))))] == ends
    assert m[("covenant_waiver_expiry_timestamp_seconds", (("checks", "CV002"), ("owner", ""),
              ("section", kept.name), ("ticket", ""), ("until", stamp(ends + 3600))))] == ends + 3600
    assert m[("covenant_waivers_expiring", (("within", "7d"),))] == 2
    assert m[("covenant_waivers_expired", ())] == 0
    assert is_running(ending) and is_running(kept)

    # at the end: the daemon says so, judges again, and stops the one no longer covered
    expired = journal.wait_for(cov.ident, f"{ending.name}: waiver of CV002 expired at {stamp(ends)}",
                               timeout=30, COVENANT_ACTION="waiver-expired")
    assert "re-evaluating running containers" in expired["MESSAGE"]
    stop = journal.wait_for(cov.ident, f"{ending.name}: stopping container (waiver of CV002 expired)",
                            timeout=30, COVENANT_ACTION="killed")
    assert stop["COVENANT_WAIVER_EXPIRED"] == "CV002"
    assert ends <= realtime(stop) < ends + 5  # at the end, not at some later sweep
    found = journal.wait_for(cov.ident, f"{ending.name}: all capabilities not dropped (waiver expired",
                             COVENANT_CHECK="CV002")
    assert found["COVENANT_WAIVER_TICKET"] == "OPS-123"
    wait_until(lambda: not is_running(ending), 10, what=f"{ending.name} to be stopped")
    ending.reload()
    assert ending.attrs["State"]["Running"] is False
    assert is_running(kept)  # its waiver runs on
    assert not [e for e in journal.entries(cov.ident, COVENANT_ACTION="killed") if kept.name in e["MESSAGE"]]
    m = samples(f"http://127.0.0.1:{port}")
    assert m[("covenant_waivers_expiring", (("within", "7d"),))] == 1
    assert m[("covenant_waivers_expired", ())] == 1

    # a reload re-arms the timer: the kept container's waiver now ends in a few seconds
    soon = int(time.time()) + 4
    cov.config.write_text(f"syslog_ident: {cov.ident}\n" + policy.replace(stamp(ends + 3600), stamp(soon)))
    cov.signal(signal.SIGHUP)
    reloaded = journal.wait_for(cov.ident, "policy reloaded", COVENANT_ACTION="reloaded")
    assert realtime(reloaded) < soon, "the machine was too slow to reload before the waiver ended"
    stop = journal.wait_for(cov.ident, f"{kept.name}: stopping container (waiver of CV002 expired)",
                            timeout=30)
    assert soon <= realtime(stop) < soon + 5
    wait_until(lambda: not is_running(kept), 10, what=f"{kept.name} to be stopped")
    # the first container's waiver, ended before the reload, is a warning of the reload
    assert journal.wait_for(cov.ident, f"{ending.name}: waiver of CV002 expired at {stamp(ends)}"
                            " (VPN client until the image is fixed [OPS-123, alice, until "
                            f"{stamp(ends)}]); it no longer applies")


def test_the_plugin_refuses_once_the_waiver_has_ended(bed, plugin_policy):
    name = unique("vpn")
    ends = int(time.time()) + 7  # room for the reload and the create on a loaded machine
    plugin_policy("debug: no\n'vpn-*':\n" + waiver("CV002", "VPN client", ends))
    created = docker(bed, "create", "--network", "none", "--security-opt", "no-new-privileges", "--name",
                     name, IMAGE, "sleep", "60")
    assert created.returncode == 0, created.stderr  # the control: allowed while the waiver runs
    assert time.time() < ends, "the machine was too slow to create before the waiver ended"
    wait_until(lambda: time.time() >= ends, 10, what="the waiver to end")
    started = docker(bed, "start", name)
    assert started.returncode != 0
    assert f"[CV002] {name}: all capabilities not dropped (waiver expired {stamp(ends)}: VPN client " \
           f"[until {stamp(ends)}])" in started.stderr, started.stderr
    other = unique("vpn")
    refused = docker(bed, "create", "--network", "none", "--security-opt", "no-new-privileges", "--name",
                     other, IMAGE, "true")
    assert refused.returncode != 0 and "[CV002]" in refused.stderr and "waiver expired" in refused.stderr
    docker(bed, "rm", "-f", name)


def test_audit_reports_a_finding_whose_waiver_has_ended(tmp_path, dockerd, client):
    box = run_container(client, unique("audited"), **ONLY_CV002)
    env = {**os.environ, "DOCKER_HOST": dockerd.host, "PYTHONPATH": str(REPO)}

    def audit(until: str) -> tuple[subprocess.CompletedProcess[str], dict]:
        config = tmp_path / "audit.yml"
        config.write_text(f"debug: no\n{box.name}:\n  waive:\n    - checks: [CV002]\n      reason: VPN\n"
                          f"      until: {until}\n")
        result = subprocess.run([sys.executable, "-m", "covenant", "audit", "--config", str(config),
                                 "--format", "json"], capture_output=True, text=True, env=env, timeout=120,
                                check=False)
        return result, {c["name"]: c for c in json.loads(result.stdout)}[box.name]

    running, row = audit("2999-12-31")  # the control: waived while it runs
    assert running.returncode == 0, running.stderr
    assert [v["check"] for v in row["waived"]] == ["CV002"] and not row["violations"]
    ended, row = audit("2020-01-01")
    assert ended.returncode == 1
    assert [v["message"] for v in row["violations"]] == [
        f"{box.name}: all capabilities not dropped (waiver expired 2020-01-02T00:00:00Z: VPN "
        "[until 2020-01-01])"]
    assert "waiver of CV002 expired at 2020-01-02T00:00:00Z (VPN [until 2020-01-01]); it no longer applies" \
        in ended.stderr
