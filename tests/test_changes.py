"""A container is judged again when it changes after its start, and running containers
the events stream never told about are found by reconciliation."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import docker
from harness import COMPLIANT, IMAGE, is_running, run_container, unique, wait_until

PRIV = "'priv-*':\n  privileged: yes\n  cap_drop_required: no\n  security_opt_required: no\n"
LIM = "'lim-*':\n  restart_policy_limited: yes\n"


def test_a_running_container_renamed_out_of_its_section_is_stopped(client, covenant_factory, journal):
    """Anyone may take an exempt name, start privileged and rename: the new name's section
    judges it. A stopped container renamed is left for its next start."""
    cov = covenant_factory("debug: yes\n" + PRIV)
    name = unique("priv")
    container = run_container(client, name, privileged=True)
    journal.wait_for(cov.ident, f"{name}: allowed")
    assert is_running(container)  # allowed under its exempt name: the rename is what kills it
    evil = name.replace("priv-", "evil-")
    container.rename(evil)
    entry = journal.wait_for(cov.ident, f"{evil}: stopping container")
    assert entry["COVENANT_CHECK"].startswith("CV001")
    wait_until(lambda: not is_running(container), 5, what=f"{evil} to die")
    calm = run_container(client, unique("calm"), **COMPLIANT)
    journal.wait_for(cov.ident, f"{calm.name}: allowed")
    calm.rename(f"{calm.name}-2")
    journal.wait_for(cov.ident, f"{calm.name}-2: allowed")
    assert is_running(calm)
    stopped = client.containers.create(IMAGE, ["sleep", "300"], name=unique("priv"), privileged=True,
                                       network_mode="none")
    stopped.rename(stopped.name.replace("priv-", "idle-"))
    time.sleep(1)
    assert not [m for m in journal.messages(cov.ident) if "idle-" in m and "stopping" in m]


def test_a_running_container_updated_into_a_violation_is_stopped(client, covenant_factory, journal):
    cov = covenant_factory("debug: yes\n'lim-*':\n  restart_policy_limited: yes\n")
    container = run_container(client, unique("lim"), **COMPLIANT)
    journal.wait_for(cov.ident, f"{container.name}: allowed")
    container.update(restart_policy={"Name": "always"})
    entry = journal.wait_for(cov.ident, f"{container.name}: stopping container")
    assert entry["COVENANT_CHECK"] == "CV018"


ROUNDS, CONTAINERS = 16, 100  # 1,600 starts: more start events than dockerd buffers (1,024)
BULKY = {f"covenant.test.pad{i}": "x" * 200 for i in range(40)}  # ~8 KB per event: little fits in
# the socket between dockerd and the frozen daemon, so the overflow is dockerd's buffer's


def test_starts_the_daemon_never_heard_of_are_reconciled(client, covenant_factory, journal, dockerd):
    """The daemon is frozen (SIGSTOP) while short-lived containers start 1,600 times and
    then a few long-running violators start: dockerd drops the events it cannot deliver
    (the violators' among them). Thawed, the daemon finds them by listing what runs."""
    cov = covenant_factory("debug: no\nreconcile_interval: 2\n")
    api = docker.APIClient(base_url=dockerd.host, version="auto", timeout=300)
    short = [api.create_container(IMAGE, ["true"], labels=BULKY, host_config=api.create_host_config(
        network_mode="none", cap_drop=["ALL"], security_opt=["no-new-privileges"]))["Id"]
        for _ in range(CONTAINERS)]
    os.kill(cov.proc.pid, signal.SIGSTOP)
    violators = []
    try:
        with ThreadPoolExecutor(8) as pool:
            for _ in range(ROUNDS):
                list(pool.map(lambda cid: (api.start(cid), api.wait(cid)), short))
        violators = [run_container(client, unique("missed")) for _ in range(3)]
        time.sleep(0.5)
        assert all(is_running(v) for v in violators)
    finally:
        os.kill(cov.proc.pid, signal.SIGCONT)
        api.close()
    wait_until(lambda: not any(is_running(v) for v in violators), 120, 0.5,
               what="every violator started while the daemon was frozen to die")
    def logged() -> list[str] | None:
        """The daemon's lines, once every violator's stop is among them (a thawed daemon
        logs a burst: what the journal does not take at once goes to stderr)."""
        lines = [*journal.messages(cov.ident), *cov.output().splitlines()]
        done = all(any(f"{v.name}: stopping container" in line for line in lines) for v in violators)
        return lines if done else None

    lines = wait_until(logged, 30, 0.5, what="every violator's stop to be logged")
    # reconciliation found them, not a late event (dockerd dropped those)
    found = [int(m.split("reconciliation: ")[1].split()[0]) for m in lines if "reconciliation: " in m]
    assert sum(found) >= len(violators), found


def test_a_violator_judged_when_created_is_stopped_the_moment_it_starts(client, covenant_factory, journal):
    """Its verdict is known before the start: the stop comes first, the inspect confirms."""
    cov = covenant_factory("debug: yes\n")
    container = client.containers.create(IMAGE, ["sleep", "300"], name=unique("early"), privileged=True,
                                         network_mode="none")
    journal.wait_for(cov.ident, f"{container.name}: violates as it is (CV001")
    container.start()
    entry = journal.wait_for(cov.ident, f"{container.name}: stopping container")
    assert "CV001" in entry["COVENANT_CHECK"] and entry["COVENANT_ACTION"] == "killed"
    wait_until(lambda: not is_running(container), 5, what=f"{container.name} to die")
    container.start()  # started again by hand: still known, stopped again
    wait_until(lambda: journal.messages(cov.ident).count(f"{container.name}: stopping container") == 2, 10,
               what="the second stop")
    wait_until(lambda: not is_running(container), 5, what=f"{container.name} to die again")


def test_a_rename_update_or_reload_between_create_and_start_is_judged_as_it_starts(
        client, covenant_factory, journal):
    """What was known at create is discarded by a rename (the policy is per name), an update
    and a new policy: each container below violated when created and complies at start."""
    cov = covenant_factory("debug: yes\n" + PRIV + LIM)
    renamed = client.containers.create(IMAGE, ["sleep", "300"], name=unique("evil"), privileged=True,
                                       network_mode="none")
    updated = client.containers.create(IMAGE, ["sleep", "300"], name=unique("lim"),
                                       restart_policy={"Name": "always"}, **COMPLIANT)
    for c in (renamed, updated):
        journal.wait_for(cov.ident, f"{c.name}: violates as it is")
    new_name = renamed.name.replace("evil-", "priv-")
    renamed.rename(new_name)
    updated.update(restart_policy={"Name": "on-failure", "MaximumRetryCount": 3})
    time.sleep(0.5)  # the daemon reads the rename and update events before the starts
    renamed.start()
    updated.start()
    journal.wait_for(cov.ident, f"{new_name}: allowed")
    journal.wait_for(cov.ident, f"{updated.name}: allowed")
    reloaded = client.containers.create(IMAGE, ["sleep", "300"], name=unique("reloaded"), privileged=True,
                                        network_mode="none")
    journal.wait_for(cov.ident, f"{reloaded.name}: violates as it is")
    cov.config.write_text(f"syslog_ident: {cov.ident}\ndebug: yes\n" + PRIV + LIM
                          + PRIV.replace("priv-*", "reloaded-*"))
    cov.signal(signal.SIGHUP)
    journal.wait_for(cov.ident, "policy reloaded")
    reloaded.start()
    journal.wait_for(cov.ident, f"{reloaded.name}: allowed")
    time.sleep(0.5)
    for c in (renamed, updated, reloaded):
        assert is_running(c), c.name
    assert not [m for m in journal.messages(cov.ident) if "stopping container" in m]
