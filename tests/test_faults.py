"""What an operator fears: an engine restart, events that never arrive, the daemon stopping itself."""

from __future__ import annotations

import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from harness import (
    COMPLIANT,
    IMAGE,
    REPO,
    SocketProxy,
    host_python_mounts,
    is_running,
    run_container,
    unique,
    wait_until,
)


def test_engine_killed_and_restarted_nothing_slips_through(dockerd, client, covenant_factory, journal):
    """Violators whose start events die with the engine and that come back at engine
    start (--restart=always), and violators started as soon as it is back: all stopped."""
    cov = covenant_factory("debug: no\n")
    prefix = unique("restart")
    cov.signal(signal.SIGSTOP)  # it can read no event while these start
    early = [run_container(client, f"{prefix}-early-{i}", restart_policy={"Name": "always"})
             for i in range(3)]
    dockerd.kill(signal.SIGKILL)  # the undelivered start events die with the engine
    cov.signal(signal.SIGCONT)
    dockerd.start()
    fresh = dockerd.client()
    late = [run_container(fresh, f"{prefix}-late-{i}") for i in range(3)]
    for c in early + late:
        journal.wait_for(cov.ident, f"{c.name}: stopping container", timeout=30)
    for c in early + late:
        wait_until(lambda c=c: not is_running(fresh.containers.get(c.id)), 10, what=f"{c.name} to die")
    assert cov.alive()
    messages = journal.messages(cov.ident)
    assert any("cannot follow Docker events" in m or "events stream ended" in m for m in messages)
    fresh.close()


def test_engine_restarted_twice_while_following(dockerd, client, covenant_factory, journal):
    """The stream ends under the daemon (engine stopped cleanly, then killed): it
    reconnects each time and keeps enforcing."""
    cov = covenant_factory("debug: no\n")
    for sig in (signal.SIGTERM, signal.SIGKILL):
        dockerd.restart(sig)
        fresh = dockerd.client()
        name = unique("after-restart")
        c = run_container(fresh, name)
        journal.wait_for(cov.ident, f"{name}: stopping container", timeout=30)
        wait_until(lambda c=c: not is_running(c), 10)
        fresh.close()
    assert cov.alive()


def test_daemon_started_before_the_engine_waits_for_it(dockerd, covenant_factory, journal):
    dockerd.kill(signal.SIGTERM)
    cov = covenant_factory("debug: no\n", wait_ready=False)
    journal.wait_for(cov.ident, "cannot reach Docker", timeout=20)
    dockerd.start()
    cov.wait_note("READY=1", timeout=30)
    fresh = dockerd.client()
    name = unique("late-engine")
    run_container(fresh, name)
    journal.wait_for(cov.ident, f"{name}: stopping container", timeout=30)
    fresh.close()


def test_never_stops_its_own_container_whatever_its_name(dockerd, client, journal, tmp_path):
    """docker-covenant in a container that breaks the default policy (no --cap-drop, no
    --security-opt), named like nothing in the policy: it sweeps itself, leaves itself
    running, and still stops others."""
    ident = unique("covself")
    policy = tmp_path / "policy.yml"
    policy.write_text(f"syslog_ident: {ident}\ndebug: no\n")
    name = unique("anything")
    mounts = host_python_mounts(str(tmp_path), str(dockerd.socket.parent), "/run/systemd/journal")
    me = client.containers.run(
        IMAGE, [sys.executable, "-m", "covenant", "--config", str(policy)], name=name, detach=True,
        network_mode="none", volumes=mounts, working_dir=str(tmp_path),
        environment={"DOCKER_HOST": dockerd.host, "PYTHONPATH": str(REPO)})
    entry = journal.wait_for(ident, "never stopped", timeout=30)
    assert entry["MESSAGE"] == f"{name}: this is docker-covenant's own container; never stopped"
    other = run_container(client, unique("other"))
    journal.wait_for(ident, f"{other.name}: stopping container")
    good = run_container(client, unique("fine"), **COMPLIANT)
    journal.wait_for(ident, f"{good.name}: allowed")
    assert is_running(me), me.logs().decode()
    assert f"{name}: stopping container" not in journal.messages(ident)


def test_events_stream_cut_without_the_engine_dying(dockerd, client, covenant_factory, journal, tmp_path):
    """The socket closed under the daemon, and refused for a while: starts during the gap
    are caught on reconnection (replay from the last event, then the sweep)."""
    proxy = SocketProxy(tmp_path / "proxy.sock", dockerd.socket)
    try:
        cov = covenant_factory("debug: no\n", env={"DOCKER_HOST": f"unix://{proxy.path}"})
        before = run_container(client, unique("before-cut"))
        journal.wait_for(cov.ident, f"{before.name}: stopping container")
        proxy.accepting.clear()
        proxy.cut()
        journal.wait_for(cov.ident, "cannot follow Docker events", timeout=10)
        during = [run_container(client, unique("during-cut")) for _ in range(3)]
        proxy.accepting.set()
        for c in during:
            journal.wait_for(cov.ident, f"{c.name}: stopping container", timeout=15)
        proxy.cut()  # a cut alone: the stream ends, it reconnects at once
        after = run_container(client, unique("after-cut"))
        journal.wait_for(cov.ident, f"{after.name}: stopping container", timeout=15)
        assert journal.messages(cov.ident).count(f"{before.name}: stopping container") == 1
    finally:
        proxy.close()


def test_renamed_or_already_dead_before_evaluation(client, covenant_factory, journal):
    """Between the event and the inspect the container was renamed (it is judged by the
    name it has now) or had already exited (the outcome is logged; nothing crashes)."""
    cov = covenant_factory("debug: no\ndocker-bench-security:\n  privileged: yes\n"
                           "  cap_drop_required: no\n  security_opt_required: no\n")
    cov.signal(signal.SIGSTOP)
    try:
        renamed = run_container(client, unique("renamed"))
        renamed.rename(unique("renamed-again"))
        exempt = run_container(client, unique("to-exempt"))
        exempt.rename("docker-bench-security")
        dead = run_container(client, unique("dead"), command=["true"])
        wait_until(lambda: not is_running(dead), 5)
    finally:
        cov.signal(signal.SIGCONT)
    renamed.reload()
    journal.wait_for(cov.ident, f"{renamed.name}: stopping container")
    journal.wait_for(cov.ident, "docker-bench-security: allowed")
    entry = journal.wait_for(cov.ident, f"{dead.name}: already not running")
    assert entry["COVENANT_ACTION"] == "gone"
    assert is_running(exempt) and cov.alive()


def test_a_known_violator_that_ends_before_its_early_kill_is_logged_gone(client, covenant_factory, journal):
    """Known as a violator from its create, it has exited when the kill sent at its start
    event arrives: the decision's `killed` entry is followed by `already not running`
    (`gone`), as when a kill after the inspect finds it ended."""
    cov = covenant_factory("debug: no\n")
    c = client.containers.create(IMAGE, ["true"], name=unique("ends-first"), network_mode="none")
    journal.wait_for(cov.ident, f"{c.name}: violates as it is")
    cov.signal(signal.SIGSTOP)  # its start event waits until it has exited
    try:
        c.start()
        wait_until(lambda: not is_running(c), 5)
    finally:
        cov.signal(signal.SIGCONT)
    gone = journal.wait_for(cov.ident, f"{c.name}: already not running")
    assert gone["COVENANT_ACTION"] == "gone"
    messages = journal.messages(cov.ident)
    assert messages.index(f"{c.name}: stopping container") < messages.index(f"{c.name}: already not running")
    assert journal.entries(cov.ident, CONTAINER_NAME=c.name, COVENANT_ACTION="killed")


def test_daemon_killed_and_restarted_sweeps_what_started_meanwhile(client, covenant_factory, journal):
    first = covenant_factory("debug: no\n")
    first.signal(signal.SIGKILL)
    first.proc.wait()
    missed = [run_container(client, unique("while-down")) for _ in range(3)]
    second = covenant_factory("debug: no\n")
    for c in missed:
        journal.wait_for(second.ident, f"{c.name}: stopping container")
        wait_until(lambda c=c: not is_running(c), 5)


FLOOD = int(os.environ.get("COVENANT_FLOOD", "1000"))


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_thousand_starts_with_the_journal_frozen(dockerd, client, tmp_path):
    """1,000 violators started while the daemon's own journald is frozen (SIGSTOP): every
    one is killed without waiting for the journal, the daemon's memory stays bounded, and
    once the journal thaws every decision is written (journal or stderr)."""
    from test_logging import journal_lines, own_journald

    try:
        with own_journald(tmp_path, dockerd) as (cov, journald, journal_dir):
            os.kill(journald, signal.SIGSTOP)
            names = [f"flood-{i}" for i in range(FLOOD)]
            with ThreadPoolExecutor(8) as pool:
                created = list(pool.map(lambda n: client.containers.create(
                    IMAGE, ["sleep", "300"], name=n, network_mode="none"), names))
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda c: c.start(), created))
            wait_until(lambda: not client.containers.list(filters={"name": "flood-"}), 120, 0.5,
                       what="every violator to be killed while the journal is frozen")
            status = Path(f"/proc/{cov.proc.pid}/status").read_text().splitlines()
            rss_mb = int(next(line.split()[1] for line in status if line.startswith("VmRSS:"))) / 1024
            assert rss_mb < 120, f"daemon RSS {rss_mb:.0f} MB"
            os.kill(journald, signal.SIGCONT)

            def written() -> int:
                """Stop lines in the journal (native entries, and syslog ones with the fields in
                the text) and on stderr (where the chain put what the journal did not take)."""
                in_journal = {m for m in journal_lines(journal_dir, cov.ident) if ": stopping container" in m}
                return len(in_journal) + cov.output().count(": stopping container")

            wait_until(lambda: written() >= FLOOD, 120, 1.0, what="all 1,000 decisions to be written")
    finally:
        dockerd.remove_all_containers()
