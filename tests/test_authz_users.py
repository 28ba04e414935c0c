"""Per-user rules on a real dockerd with TLS client authentication: the plugin is told
who asks (the client certificate's common name) and the policy selects by it.

The engine listens on a loopback TCP port with --tlsverify; the test calls it as alice
(in the group ops) and as bob, and over the unix socket, where there is no user. Each
refusal has its control: the same call on a dockerd without the plugin does it."""

from __future__ import annotations

import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from harness import (
    AUTHZ_PLUGIN,
    COMPLIANT,
    IMAGE,
    Covenant,
    PrivateDockerd,
    busybox_image,
    private_plugin_dir_wrapper,
    unique,
    wait_until,
)
from tlsbed import Certs, client_as, free_port, make_certs, tls_args

POLICY = """debug: no
groups:
  ops: [alice]
user=@ops:
  privileged: yes
api_rules:
  - name: bob-starts-only-his-team
    deny: POST /containers/{container}/start
    users: [bob]
    except_containers: ['label=team=bob']
"""
NEVER = "0001-01-01T00:00:00Z"
CAP_SYS_ADMIN = 1 << 21


@pytest.fixture(scope="module")
def tls_bed(journal, engine) -> Iterator[tuple[PrivateDockerd, Covenant, Certs, int]]:
    work = Path(tempfile.mkdtemp(prefix="covtls-"))
    plugin_dir = work / "plugins"
    plugin_dir.mkdir()
    certs = make_certs(work / "tls", ("alice", "bob"))
    port = free_port()
    daemon = PrivateDockerd(extra_args=(f"--authorization-plugin={AUTHZ_PLUGIN}", *tls_args(certs, port)),
                            wrap=private_plugin_dir_wrapper(plugin_dir), engine=engine)
    plugin = Covenant(work, daemon.host, POLICY)  # it looks things up over the unix socket
    plugin.argv += ["authz", "--name", AUTHZ_PLUGIN, "--socket-dir", str(plugin_dir)]
    plugin.start()
    try:
        daemon.start()
        client = daemon.client()
        busybox_image(client)
        client.close()
        yield daemon, plugin, certs, port
    finally:
        daemon.stop()
        plugin.close()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def users(tls_bed) -> Iterator[dict[str, docker.DockerClient]]:
    daemon, _, certs, port = tls_bed
    clients = {u: client_as(certs, u, port) for u in ("alice", "bob")}
    clients[""] = daemon.client()  # the unix socket: no user
    yield clients
    for c in clients.values():
        c.close()
    daemon.remove_all_containers()


def cap_eff(status: bytes) -> int:
    line = next(x for x in status.decode().splitlines() if x.startswith("CapEff:"))
    return int(line.split()[1], 16)


def exec_ids(client: docker.DockerClient, name: str) -> list[str]:
    return client.api.inspect_container(name).get("ExecIDs") or []


def test_only_ops_may_exec_privileged(tls_bed, users, dockerd, client):
    name = unique("target")
    users["alice"].containers.run(IMAGE, ["sleep", "300"], name=name, detach=True, network_mode="none",
                                  **COMPLIANT)
    ran = users["alice"].containers.get(name).exec_run(["cat", "/proc/self/status"], privileged=True)
    assert ran.exit_code == 0 and cap_eff(ran.output) & CAP_SYS_ADMIN  # it ran privileged, as alice
    for who in ("bob", ""):
        before = exec_ids(users[""], name)
        with pytest.raises(docker.errors.APIError) as refused:
            users[who].containers.get(name).exec_run(["cat", "/proc/self/status"], privileged=True)
        assert refused.value.status_code == 403
        assert f"[CV001] {name}: privileged exec not allowed" in str(refused.value)
        assert exec_ids(users[""], name) == before  # no exec was even created
        # an ordinary exec goes through for them
        assert users[who].containers.get(name).exec_run(["true"]).exit_code == 0
    # control: a dockerd without the plugin runs bob's privileged exec
    target = client.containers.run(IMAGE, ["sleep", "300"], name=name, detach=True, network_mode="none",
                                   **COMPLIANT)
    ran = target.exec_run(["cat", "/proc/self/status"], privileged=True)
    assert ran.exit_code == 0 and cap_eff(ran.output) & CAP_SYS_ADMIN


def test_bob_starts_only_containers_of_his_team(tls_bed, users, journal, client):
    _, plugin, _, _ = tls_bed

    def create(who: str, team: str) -> str:
        name = unique(f"{team}")
        users[who].containers.create(IMAGE, ["sleep", "300"], name=name, labels={"team": team},
                                     network_mode="none", **COMPLIANT)
        return name

    theirs = create("bob", "alice")  # a create is not a start: allowed
    with pytest.raises(docker.errors.APIError) as refused:
        users["bob"].api.start(theirs)
    assert refused.value.status_code == 403
    assert (f"[rule bob-starts-only-his-team] POST /containers/{theirs}/start is not allowed on container "
            f"{theirs} (user bob)") in str(refused.value)
    assert users[""].api.inspect_container(theirs)["State"]["StartedAt"] == NEVER
    journal.wait_for(plugin.ident, f"{theirs}: denied POST", COVENANT_CHECK="rule:bob-starts-only-his-team")
    his = create("bob", "bob")
    users["bob"].api.start(his)
    assert users[""].api.inspect_container(his)["State"]["Running"]
    users["alice"].api.start(theirs)  # the rule binds bob only
    assert users[""].api.inspect_container(theirs)["State"]["Running"]
    # without TLS (the unix socket) there is no user: the rule binds, fail closed
    unknown = create("", "alice")
    with pytest.raises(docker.errors.APIError) as refused:
        users[""].api.start(unknown)
    assert "no authenticated user" in str(refused.value)
    assert users[""].api.inspect_container(unknown)["State"]["StartedAt"] == NEVER
    # control: a dockerd without the plugin starts a team=alice container for anyone
    control = client.containers.create(IMAGE, ["sleep", "300"], name=unique("alice"),
                                       labels={"team": "alice"}, network_mode="none", **COMPLIANT)
    control.start()
    control.reload()
    assert control.attrs["State"]["Running"]


PER_USER = "debug: no\nquotas:\n  - name: per-user\n    max_running: 1\n    per: user\n"
OWNER = "docker-covenant.user"


def reload(tls_bed, journal, text: str) -> None:
    """Give the plugin another policy (SIGHUP) and wait until it has it."""
    _, plugin, _, _ = tls_bed
    before = len(journal.messages(plugin.ident, COVENANT_ACTION="reloaded"))
    plugin.config.write_text(f"syslog_ident: {plugin.ident}\n{text}")
    plugin.signal(signal.SIGHUP)
    wait_until(lambda: len(journal.messages(plugin.ident, COVENANT_ACTION="reloaded")) > before, 10,
               what="the plugin to reload")


def test_a_per_user_quota_counts_what_each_user_runs(tls_bed, users, journal, client):
    reload(tls_bed, journal, PER_USER)
    try:
        def run(who: str, owner: str | None) -> str:
            name = unique(who or "nobody")
            labels = {OWNER: owner} if owner else {}
            users[who].containers.run(IMAGE, ["sleep", "300"], name=name, labels=labels, detach=True,
                                      network_mode="none", **COMPLIANT)
            return name

        first = run("alice", "alice")
        assert users[""].api.inspect_container(first)["State"]["Running"]
        with pytest.raises(docker.errors.APIError) as refused:
            run("alice", "alice")
        assert (": 1 containers of user alice already running, at most 1 (quota per-user)"
                in str(refused.value)), refused.value
        # the second never ran
        assert len(users[""].containers.list(filters={"label": f"{OWNER}=alice"})) == 1
        # bob has his own count, and cannot spend alice's or run unlabelled
        assert users[""].api.inspect_container(run("bob", "bob"))["State"]["Running"]
        for owner in ("alice", None):
            with pytest.raises(docker.errors.APIError) as refused:
                run("bob", owner)
            assert f"must carry the label {OWNER}=bob (quota per-user)" in str(refused.value)
        # without TLS there is no user to count for: refused
        with pytest.raises(docker.errors.APIError) as refused:
            run("", "alice")
        assert "no authenticated user to count it for" in str(refused.value)
        assert len(users[""].containers.list(filters={"label": OWNER})) == 2
    finally:
        reload(tls_bed, journal, POLICY)
    # control: a dockerd without the plugin runs two of alice's
    for _ in range(2):
        client.containers.run(IMAGE, ["sleep", "300"], name=unique("alice"), labels={OWNER: "alice"},
                              detach=True, network_mode="none", **COMPLIANT)
    assert len(client.containers.list(filters={"label": f"{OWNER}=alice"})) == 2
