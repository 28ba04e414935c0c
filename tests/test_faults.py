"""What an operator fears: an engine restart, events that never arrive, the daemon stopping itself."""

from __future__ import annotations

import signal
import sys

from harness import COMPLIANT, IMAGE, REPO, host_python_mounts, is_running, run_container, unique, wait_until


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
