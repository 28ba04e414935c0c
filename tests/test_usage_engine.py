"""Usage limits end to end: the daemon samples the engine's stats and stops a container
that stays above its section's limit, on both engines; the others are left alone."""

from __future__ import annotations

import time

from harness import COMPLIANT, is_running, run_container, unique, wait_until
from test_operate import free_port, samples

SHM_48M = ["sh", "-c", "dd if=/dev/zero of=/dev/shm/fill bs=1M count=48 && sleep 300"]
BUSY = ["sh", "-c", "while :; do :; done"]
PROCS_12 = ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10 11; do sleep 300 & done; wait"]


def test_containers_above_a_limit_for_usage_for_are_stopped(dockerd, client, covenant_factory, journal):
    port = free_port()
    cov = covenant_factory(f"debug: yes\nusage_interval: 1\nmetrics_address: ':{port}'\n"
                           "hog-*:\n  memory_usage_max: 32MiB\n  usage_for: 2s\n"
                           # a busy loop gets a share of a loaded 2-core machine, an idle one none
                           "busy-*:\n  cpu_usage_max: 0.05\n  usage_for: 2\n"
                           "procs-*:\n  pids_usage_max: 5\n  usage_for: 0\n")
    hog = run_container(client, unique("hog"), SHM_48M, **COMPLIANT)
    calm = run_container(client, unique("hog"), **COMPLIANT)  # same section, within the limit
    busy = run_container(client, unique("busy"), BUSY, **COMPLIANT)
    idle = run_container(client, unique("busy"), **COMPLIANT)  # same section, asleep
    procs = run_container(client, unique("procs"), PROCS_12, **COMPLIANT)
    other = run_container(client, unique("free"), SHM_48M, **COMPLIANT)  # no limit applies
    for c, check in ((hog, "CV201"), (busy, "CV202"), (procs, "CV203")):
        entry = journal.wait_for(cov.ident, f"{c.name}: stopping container", timeout=30)
        assert entry["COVENANT_CHECK"] == check and entry["COVENANT_ACTION"] == "killed"
        wait_until(lambda c=c: not is_running(c), 10, what=f"{c.name} to be stopped")
    [memory] = [m for m in journal.messages(cov.ident) if m.startswith(f"{hog.name}: ")
                and "in use" in m]
    assert "MiB in use, above the limit of 32.0 MiB for" in memory
    assert int(memory.split(" for ")[1].split()[0]) >= 2  # usage_for: 2s
    assert is_running(calm) and is_running(idle) and is_running(other)
    m = samples(f"http://127.0.0.1:{port}")
    assert m[("covenant_usage_rounds_total", (("result", "ok"),))] >= 2
    assert m[("covenant_violations_total", (("check", "CV201"),))] == 1


def test_warn_mode_logs_a_run_once_and_stops_nothing(dockerd, client, covenant_factory, journal):
    cov = covenant_factory("debug: yes\nmode: warn\nusage_interval: 1\n"
                           "hog-*:\n  memory_usage_max: 32MiB\n  usage_for: 0\n")
    hog = run_container(client, unique("hog"), SHM_48M, **COMPLIANT)
    journal.wait_for(cov.ident, f"{hog.name}: not stopping container (warn mode)", timeout=30)
    time.sleep(3)  # three more rounds above the limit: still one line for this run
    lines = [m for m in journal.messages(cov.ident) if m.startswith(f"{hog.name}: ") and "in use" in m]
    assert len(lines) == 1, lines
    assert is_running(hog)


def test_a_waived_limit_is_logged_and_stops_nothing(dockerd, client, covenant_factory, journal):
    cov = covenant_factory("debug: yes\nusage_interval: 1\n"
                           "hog-*:\n  memory_usage_max: 32MiB\n  usage_for: 0\n  waive: [CV201]\n")
    hog = run_container(client, unique("hog"), SHM_48M, **COMPLIANT)
    entry = journal.wait_for(cov.ident, f"{hog.name}: CV201 waived", timeout=30)
    assert entry["COVENANT_ACTION"] == "waived"
    assert is_running(hog)


def test_no_usage_interval_no_sampling(dockerd, client, covenant_factory, journal):
    port = free_port()
    cov = covenant_factory(f"debug: yes\nmetrics_address: ':{port}'\n"
                           "hog-*:\n  memory_usage_max: 32MiB\n  usage_for: 0\n")
    hog = run_container(client, unique("hog"), SHM_48M, **COMPLIANT)
    journal.wait_for(cov.ident, f"{hog.name}: allowed")
    time.sleep(3)
    assert is_running(hog)
    assert not [k for k in samples(f"http://127.0.0.1:{port}") if k[0] == "covenant_usage_rounds_total"]
