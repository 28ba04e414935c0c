"""The daemon end to end: a real engine, a real journal, the daemon as its own process."""

from __future__ import annotations

import signal
import time

import pytest
from harness import COMPLIANT, REPO, is_running, run_container, unique, wait_until

VIOLATIONS = {
    "privileged": ({"privileged": True, "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"]},
                   ["privileged set but not allowed"]),
    "no-cap-drop": ({"security_opt": ["no-new-privileges"]}, ["all capabilities not dropped"]),
    "some-caps-dropped": ({"cap_drop": ["NET_RAW", "MKNOD"], "security_opt": ["no-new-privileges"]},
                          ["all capabilities not dropped"]),
    "no-security-opt": ({"cap_drop": ["ALL"]}, ["no security options has been set"]),
    "only-disabling-opts": ({"cap_drop": ["ALL"], "security_opt": ["seccomp=unconfined", "label=disable"]},
                            ["no security options has been set"]),
    "cap-add-all": ({"cap_drop": ["ALL"], "cap_add": ["ALL"], "security_opt": ["no-new-privileges"]},
                    ["capability ALL has been set"]),
    "nothing-at-all": ({}, ["all capabilities not dropped", "no security options has been set"]),
}


@pytest.mark.parametrize("case", sorted(VIOLATIONS))
def test_violator_is_stopped_and_every_violation_logged(case, client, covenant_factory, journal):
    options, expected = VIOLATIONS[case]
    cov = covenant_factory("debug: no\n")
    name = unique(case)
    container = run_container(client, name, **options)
    entry = journal.wait_for(cov.ident, f"{name}: stopping container")
    wait_until(lambda: not is_running(container), 5, what=f"{name} to die")
    messages = journal.messages(cov.ident)
    for text in expected:
        assert f"{name}: {text}" in messages
    assert entry["PRIORITY"] == "4"  # warning
    assert entry["CONTAINER_NAME"] == name and entry["CONTAINER_ID"] == container.id


def test_compliant_container_keeps_running(client, covenant_factory, journal):
    cov = covenant_factory()
    name = unique("good")
    container = run_container(client, name, **COMPLIANT)
    journal.wait_for(cov.ident, f"{name}: allowed")
    time.sleep(0.5)
    assert is_running(container)
    assert not [m for m in journal.messages(cov.ident) if m.startswith(f"{name}: ") and "allowed" not in m]


def test_sample_policy_sections_grant_their_exceptions(client, covenant_factory, journal):
    """The sections of the shipped docker-covenant.yml, by exact container name."""
    policy = "\n".join(line for line in (REPO / "docker-covenant.yml").read_text().splitlines()
                       if not line.startswith(("syslog_ident", "---", "...")))
    cov = covenant_factory(policy + "\n")
    bench = run_container(client, "docker-bench-security", privileged=True, cap_add=["ALL"],
                          security_opt=["apparmor=docker-default"])
    privoxy = run_container(client, "privoxy", cap_drop=["all"])
    strict = run_container(client, "docker-covenant", cap_drop=["ALL"])  # its section keeps defaults
    journal.wait_for(cov.ident, "docker-bench-security: allowed")
    journal.wait_for(cov.ident, "privoxy: allowed")
    journal.wait_for(cov.ident, "docker-covenant: stopping container")
    wait_until(lambda: not is_running(strict), 5)
    assert is_running(bench) and is_running(privoxy)


def test_empty_section_means_defaults(client, covenant_factory, journal):
    name = unique("empty")
    cov = covenant_factory(f"{name}:\n")
    container = run_container(client, name)
    journal.wait_for(cov.ident, f"{name}: stopping container")
    wait_until(lambda: not is_running(container), 5)


def test_warn_mode_logs_and_stops_nothing(client, covenant_factory, journal):
    cov = covenant_factory("mode: warn\n")
    name = unique("warned")
    container = run_container(client, name, privileged=True)
    entry = journal.wait_for(cov.ident, f"{name}: not stopping container (warn mode)")
    assert entry["COVENANT_ACTION"] == "warned"
    assert f"{name}: privileged set but not allowed" in journal.messages(cov.ident)
    time.sleep(0.5)
    assert is_running(container)
    assert f"{name}: stopping container" not in journal.messages(cov.ident)


def test_stop_action_uses_the_grace_period(client, covenant_factory, journal):
    """action: stop sends the stop signal first; busybox sleep ignores it, so the
    engine kills it when the grace period ends."""
    cov = covenant_factory("action: stop\nstop_timeout: 1\n")
    name = unique("graceful")
    container = run_container(client, name)
    entry = journal.wait_for(cov.ident, f"{name}: stopping container")
    assert entry["COVENANT_ACTION"] == "stopped"
    started = time.monotonic()
    wait_until(lambda: not is_running(container), 10)
    assert time.monotonic() - started > 0.5  # it waited for the grace period
    assert container.attrs["State"]["ExitCode"] == 137


def test_containers_running_before_the_daemon_are_caught(client, covenant_factory, journal):
    bad = [run_container(client, unique("early")) for _ in range(3)]
    good = run_container(client, unique("early-good"), **COMPLIANT)
    cov = covenant_factory()
    for c in bad:
        journal.wait_for(cov.ident, f"{c.name}: stopping container")
        wait_until(lambda c=c: not is_running(c), 5)
    journal.wait_for(cov.ident, f"{good.name}: allowed")
    assert is_running(good)


def test_exec_into_a_container_is_not_a_start(client, covenant_factory, journal):
    cov = covenant_factory()
    container = run_container(client, unique("exec"), **COMPLIANT)
    journal.wait_for(cov.ident, f"{container.name}: allowed")
    assert container.exec_run(["true"]).exit_code == 0
    marker = run_container(client, unique("marker"), **COMPLIANT)  # a later start, as a barrier
    journal.wait_for(cov.ident, f"{marker.name}: allowed")
    assert journal.messages(cov.ident).count(f"{container.name}: allowed") == 1


def test_container_gone_before_inspection_is_logged_not_fatal(client, covenant_factory, journal):
    """Freeze the daemon, start and remove a container, thaw it: the start event now names
    a container that no longer exists."""
    cov = covenant_factory()
    cov.signal(signal.SIGSTOP)
    try:
        ghost = run_container(client, unique("ghost"))
        ghost_id = ghost.id
        ghost.remove(force=True)
    finally:
        cov.signal(signal.SIGCONT)
    entry = journal.wait_for(cov.ident, f"{ghost_id[:12]}: gone before it could be inspected")
    assert entry["PRIORITY"] == "7"  # debug
    later = run_container(client, unique("after-ghost"))
    journal.wait_for(cov.ident, f"{later.name}: stopping container")
    assert cov.alive()


def test_sigterm_and_sigint_exit_zero(covenant_factory, journal):
    for sig in (signal.SIGTERM, signal.SIGINT):
        cov = covenant_factory()
        cov.signal(sig)
        assert cov.proc.wait(timeout=10) == 0
        assert "STOPPING=1" in cov.read_notes()
        journal.wait_for(cov.ident, "docker-covenant stopped")


def test_debug_writes_decisions_to_the_console_too(client, covenant_factory, journal):
    loud = covenant_factory("debug: yes\n")
    quiet = covenant_factory("debug: no\n")
    name = unique("console")
    run_container(client, name)
    for cov in (loud, quiet):
        journal.wait_for(cov.ident, f"{name}: stopping container")
    assert f"{name}: stopping container" in loud.output()
    assert f"{name}: stopping container" not in quiet.output()

