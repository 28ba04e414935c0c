"""Quotas on a real engine: the plugin refuses a start beyond a quota, the events daemon
stops one; each with its control (the same starts where nothing enforces run them all)."""

from __future__ import annotations

import threading
import time

from harness import COMPLIANT, IMAGE, UnixHTTP, is_running, run_container, unique, wait_until
from test_authz_rules import SAFE, cli
from test_operate import free_port, samples

from covenant.rules.quota import started_key


def quota(team_max: int = 2) -> str:
    return f"debug: no\nquotas:\n  - name: per-team\n    max_running: {team_max}\n    per: label=team\n"


def state(host: str, name: str) -> tuple[str, str]:
    out = cli(host, "inspect", "-f", "{{.State.Running}} {{.State.StartedAt}}", name).stdout.split()
    return out[0], out[1]


def running_with(host: str, label: str) -> list[str]:
    out = cli(host, "ps", "-q", "--no-trunc", "--filter", f"label={label}").stdout.split()
    return sorted(out)


def count(url: str, outcome: str) -> float:
    key = ("covenant_quota_decisions_total", (("outcome", outcome), ("quota", "per-team")))
    return samples(url).get(key, 0.0)


def test_the_plugin_refuses_a_start_beyond_a_label_quota(bed, plugin_policy, dockerd, journal):
    plugin_policy(quota())
    guarded, team = bed[0].host, unique("team")
    names = [unique("q") for _ in range(3)]
    for name in names[:2]:
        assert cli(guarded, "run", "-d", *SAFE, "--label", f"team={team}", "--name", name, IMAGE,
                   "sleep", "300").returncode == 0
    before = count(bed[1].metrics_url, "denied")
    third = cli(guarded, "run", "-d", *SAFE, "--label", f"team={team}", "--name", names[2], IMAGE,
                "sleep", "300")
    assert third.returncode != 0
    assert (f"[quota per-team] {names[2]}: 2 containers with team={team} already running, at most 2 "
            "(quota per-team)") in third.stderr, third.stderr
    assert state(guarded, names[2]) == ("false", "0001-01-01T00:00:00Z")  # created, never started
    entry = journal.wait_for(bed[1].ident, f"{names[2]}: denied POST")
    assert entry["COVENANT_CHECK"] == "quota:per-team"
    assert count(bed[1].metrics_url, "denied") == before + 1
    # another team, and a container without the label, are not counted
    for labels in (["--label", f"team={team}-b"], []):
        other = unique("q")
        ran = cli(guarded, "run", "-d", *SAFE, *labels, "--name", other, IMAGE, "sleep", "300")
        assert ran.returncode == 0, ran.stderr
        cli(guarded, "rm", "-f", other)
    # room again once one of the team stops
    assert cli(guarded, "rm", "-f", names[0]).returncode == 0
    assert cli(guarded, "start", names[2]).returncode == 0
    assert state(guarded, names[2])[0] == "true"
    cli(guarded, "rm", "-f", *names[1:])
    # control: without the plugin all three run
    for name in names:
        assert cli(dockerd.host, "run", "-d", *SAFE, "--label", f"team={team}", "--name", name, IMAGE,
                   "sleep", "300").returncode == 0
    assert len(running_with(dockerd.host, f"team={team}")) == 3
    cli(dockerd.host, "rm", "-f", *names)


def start_all_at_once(http: UnixHTTP, names: list[str]) -> list[int]:
    statuses: list[int] = []
    barrier = threading.Barrier(len(names))

    def go(name: str) -> None:
        barrier.wait()
        statuses.append(http.request("POST", f"/v1.41/containers/{name}/start")[0])

    threads = [threading.Thread(target=go, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def test_concurrent_starts_never_exceed_the_quota_in_the_plugin(bed, plugin_policy, dockerd):
    plugin_policy(quota())
    team = unique("team")
    names = [unique("c") for _ in range(6)]
    for host, http, expected in ((bed[0].host, bed[2], 2), (dockerd.host, UnixHTTP(dockerd.socket), 6)):
        for name in names:
            assert cli(host, "create", *SAFE, "--label", f"team={team}", "--name", name, IMAGE,
                       "sleep", "300").returncode == 0
        statuses = start_all_at_once(http, names)
        assert sorted(statuses) == sorted([204] * expected + [403] * (6 - expected)), statuses
        assert len(running_with(host, f"team={team}")) == expected
        cli(host, "rm", "-f", *names)


def test_the_daemon_stops_a_container_started_beyond_its_quota(client, covenant_factory, journal):
    team = unique("team")
    # control: with nothing enforcing, three of a team run
    control = [run_container(client, unique("ctl"), labels={"team": team}, **COMPLIANT) for _ in range(3)]
    time.sleep(1)
    assert all(is_running(c) for c in control)
    for c in control:
        c.remove(force=True)
    port = free_port()
    cov = covenant_factory(quota() + f"metrics_address: ':{port}'\n")
    first = [run_container(client, unique("q"), labels={"team": team}, **COMPLIANT) for _ in range(2)]
    for c in first:
        journal.wait_for(cov.ident, f"{c.name}: allowed")
    third = run_container(client, unique("q"), labels={"team": team}, **COMPLIANT)
    entry = journal.wait_for(cov.ident, f"{third.name}: stopping container")
    assert entry["COVENANT_CHECK"] == "quota:per-team"
    assert (f"{third.name}: 2 containers with team={team} already running, at most 2 (quota per-team)"
            in journal.messages(cov.ident))
    wait_until(lambda: not is_running(third), 5, what="the third to stop")
    assert all(is_running(c) for c in first)
    assert count(f"http://127.0.0.1:{port}", "stopped") == 1


def test_the_daemon_keeps_the_first_started_of_a_group_over_its_quota(client, covenant_factory, journal):
    """Started while nothing enforced (or all at once), the group is cut back to the ones
    that started first, whichever the daemon judges first."""
    team = unique("team")
    started = []
    for _ in range(4):
        started.append(run_container(client, unique("s"), labels={"team": team}, **COMPLIANT))
        time.sleep(0.05)
    assert all(is_running(c) for c in started)  # the control: they all ran
    cov = covenant_factory(quota())
    for c in started[2:]:
        journal.wait_for(cov.ident, f"{c.name}: stopping container")
    wait_until(lambda: not any(is_running(c) for c in started[2:]), 5, what="the last two to stop")
    time.sleep(0.5)
    assert all(is_running(c) for c in started[:2])
    # and five at once, with the daemon running: the two that started first remain
    for c in started:
        c.remove(force=True)
    created = [client.containers.create(IMAGE, ["sleep", "300"], name=unique("a"), labels={"team": team},
                                        network_mode="none", **COMPLIANT) for _ in range(5)]
    threads = [threading.Thread(target=c.start) for c in created]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_until(lambda: sum(is_running(c) for c in created) == 2, 10, what="the group cut to two")
    time.sleep(1)
    alive = [c for c in created if is_running(c)]
    assert len(alive) == 2
    # a stopped container keeps its StartedAt: the two kept are the two that started first
    by_start = sorted(created, key=lambda c: started_key(
        client.api.inspect_container(c.id)["State"]["StartedAt"], c.id))
    assert {c.id for c in alive} == {c.id for c in by_start[:2]}
    for c in created:
        journal.wait_for(cov.ident, f"{c.name}: {'allowed' if c in alive else 'stopping container'}")
