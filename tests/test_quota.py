"""Quotas (covenant/rules/quota.py, pure) and the plugin's count of pending starts."""

from __future__ import annotations

import json
import threading

import pytest

from covenant.authz.handlers import Request
from covenant.authz.quota import QuotaKeeper
from covenant.authz.route import route
from covenant.engine import EngineNotFoundError
from covenant.policy import PolicyError, parse_policy
from covenant.rules.quota import (
    Running,
    breach_at_start,
    breach_when_running,
    later_beyond,
    needs_start_times,
    started_key,
    starter_breach,
)

POLICY = parse_policy("quotas:\n  - name: per-team\n    max_running: 2\n    per: label=team\n"
                      "  - name: host\n    max_running: 5\n")
TEAM_A = {"team": "a"}


def test_quotas_parse():
    assert [(q.name, q.max_running, q.per, q.line) for q in POLICY.quotas] == [
        ("per-team", 2, "label=team", 2), ("host", 5, "host", 5)]


@pytest.mark.parametrize(("text", "line", "words"), [
    ("quotas: 3\n", 1, "quotas: expected a list of quotas"),
    ("quotas:\n  - name: q\n    max_running: yes\n", 3, "quotas[0] (q).max_running: expected a whole number"),
    ("quotas:\n  - name: q\n    max_running: -1\n", 3, "expected a whole number, 0 or more"),
    ("quotas:\n  - name: q\n    max_running: 1\n    per: team\n", 4, "per: expected host, user or label=KEY"),
    ("quotas:\n  - name: q\n    max_running: 1\n    per: label=a=b\n", 4,
     "per: expected host, user or label=KEY"),
    ("quotas:\n  - name: q\n    max: 1\n", 3, "unknown key 'max'"),
    ("quotas:\n  - name: q\n    max_running: 1\n  - name: q\n    max_running: 2\n", 4,
     "quotas[1].name: expected a name of its own"),
])
def test_quota_errors_name_the_line_and_the_key(text, line, words):
    with pytest.raises(PolicyError) as err:
        parse_policy(text, "p.yml")
    assert str(err.value).startswith(f"p.yml:{line}: "), str(err.value)
    assert words in str(err.value)


def test_a_start_beyond_a_label_quota_is_refused_and_others_are_not_counted():
    running = [Running("1", TEAM_A), Running("2", TEAM_A), Running("3", {"team": "b"}), Running("4", {})]
    breach = breach_at_start(POLICY.quotas, "new", "web", TEAM_A, running, [])
    assert breach is not None and breach.quota == "per-team"
    assert breach.message == "web: 2 containers with team=a already running, at most 2 (quota per-team)"
    assert breach_at_start(POLICY.quotas, "new", "web", {"team": "c"}, running, []) is None
    # the container itself (a restart) is never its own peer
    assert breach_at_start(POLICY.quotas, "1", "web", TEAM_A, running[1:], [Running("1", TEAM_A)]) is None


def test_pending_starts_count_and_the_host_quota_counts_everyone():
    running = [Running("1", TEAM_A)]
    assert breach_at_start(POLICY.quotas, "n", "web", TEAM_A, running, [Running("p", TEAM_A)]) is not None
    five = [Running(str(i), {}) for i in range(5)]
    breach = breach_at_start(POLICY.quotas, "n", "web", {}, five, [])
    assert breach is not None
    assert breach.message == "web: 5 containers on this host already running, at most 5 (quota host)"


def test_after_a_start_only_the_ones_that_started_last_are_beyond():
    """Whichever container of a group is judged first, the same ones are stopped."""
    started = ["2026-12-03T10:00:00.1Z", "2026-12-03T10:00:00.12Z", "2026-12-03T10:00:00.123456789Z",
               "2026-12-03T10:00:01Z"]
    group = [Running(f"c{i}", TEAM_A, t) for i, t in enumerate(started)]
    beyond = [r.id for r in group
              if breach_when_running(POLICY.quotas, r, r.id, [g for g in group if g is not r]) is not None]
    assert beyond == ["c2", "c3"]
    assert needs_start_times(POLICY.quotas, "c0", TEAM_A, group)
    assert not needs_start_times(POLICY.quotas, "c0", TEAM_A, group[:2])


def test_start_times_sort_as_times_not_as_text():
    # Go trims trailing zeros: ".1Z" is earlier than ".12Z" although it sorts after it as text
    assert started_key("2026-12-03T10:00:00.1Z", "b") < started_key("2026-12-03T10:00:00.12Z", "a")
    assert started_key("2026-12-03T10:00:00Z", "b") < started_key("2026-12-03T10:00:00.000000001Z", "a")


class ListingEngine:
    """Running containers as dockerd lists them, and their inspect."""

    def __init__(self, stored: dict[str, dict], running: list[dict]) -> None:
        self.stored, self.running = stored, running
        self.lists = 0

    def container(self, ref):
        if ref not in self.stored:
            raise EngineNotFoundError(ref)
        return self.stored[ref]

    def running_list(self):
        self.lists += 1
        return list(self.running)


def start(ref: str) -> Request:
    uri = f"/v1.41/containers/{ref}/start"
    return Request("POST", route(uri), None, {}, "", uri)


def stored(cid: str, running: bool = False) -> dict:
    return {"Id": cid, "Name": f"/{cid}", "State": {"Running": running}, "Config": {"Labels": TEAM_A}}


def test_the_keeper_counts_allowed_starts_until_dockerd_reports_them_done():
    engine = ListingEngine({c: stored(c) for c in ("x", "y", "z")}, [{"Id": "r1", "Labels": TEAM_A}])
    keeper = QuotaKeeper()
    assert keeper.check(POLICY, start("x"), engine) is None  # 1 running: room for one more
    refused = keeper.check(POLICY, start("y"), engine)  # x is pending, not yet listed
    assert refused is not None and refused.quota == "per-team"
    assert refused.msg == ("[quota per-team] y: 2 containers with team=a already running, at most 2 "
                           "(quota per-team)")
    keeper.done("POST", "/v1.41/containers/x/start")  # x failed to start: not listed, not pending
    assert keeper.pending() == 0
    assert keeper.check(POLICY, start("z"), engine) is None


def test_the_keeper_lets_one_of_two_concurrent_starts_through():
    engine = ListingEngine({f"c{i}": stored(f"c{i}") for i in range(8)}, [{"Id": "r1", "Labels": TEAM_A}])
    keeper = QuotaKeeper()
    results: list[object] = []
    barrier = threading.Barrier(8)

    def go(i: int) -> None:
        barrier.wait()
        results.append(keeper.check(POLICY, start(f"c{i}"), engine))

    threads = [threading.Thread(target=go, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(None) == 1 and keeper.pending() == 1


def test_the_keeper_expires_a_start_dockerd_never_reported():
    now = [0.0]
    engine = ListingEngine({c: stored(c) for c in ("x", "y")}, [{"Id": "r1", "Labels": TEAM_A}])
    keeper = QuotaKeeper(ttl=60, clock=lambda: now[0])
    assert keeper.check(POLICY, start("x"), engine) is None
    assert keeper.check(POLICY, start("y"), engine) is not None
    now[0] = 61.0
    assert keeper.check(POLICY, start("y"), engine) is None


def test_running_containers_and_other_requests_are_not_counted():
    engine = ListingEngine({"x": stored("x", running=True)}, [{"Id": "r1", "Labels": TEAM_A},
                                                              {"Id": "r2", "Labels": TEAM_A}])
    keeper = QuotaKeeper()
    assert keeper.check(POLICY, start("x"), engine) is None  # already running: nothing starts
    assert engine.lists == 0
    assert keeper.pending() == 1  # but it keeps its place until dockerd reports it done
    keeper.done("POST", "/v1.41/containers/x/start")
    assert keeper.pending() == 0
    create = Request("POST", route("/containers/create"), b"{}", {}, "", "/containers/create")
    assert keeper.check(POLICY, create, engine) is None


def test_a_start_reported_done_during_the_list_neither_blocks_nor_is_missed():
    """dockerd reports the plugin's own list request done to the plugin before answering
    it: that report must not wait for the keeper. And a start reported done meanwhile,
    not yet in the list, still counts."""
    keeper = QuotaKeeper()
    stored_all = {c: stored(c) for c in ("x", "y")}
    listed = [{"Id": "r1", "Labels": TEAM_A}]
    assert keeper.check(POLICY, start("x"), ListingEngine(stored_all, listed)) is None

    class Reporting(ListingEngine):
        def running_list(self):
            t = threading.Thread(target=keeper.done, args=("POST", "/v1.41/containers/x/start"))
            t.start()
            t.join(5)
            assert not t.is_alive(), "the report waited for the keeper"
            return super().running_list()  # x is not listed yet

    refused = keeper.check(POLICY, start("y"), Reporting(stored_all, listed))
    assert refused is not None and refused.quota == "per-team"


PER_USER = parse_policy("quotas:\n  - name: per-user\n    max_running: 1\n    per: user\n")
OWNED_BY = "docker-covenant.user"


def test_per_user_quotas_count_by_the_owner_label():
    alice = {OWNED_BY: "alice"}
    running = [Running("1", alice), Running("2", {OWNED_BY: "bob"}), Running("3", {})]
    breach = breach_at_start(PER_USER.quotas, "n", "web", alice, running, [])
    assert breach is not None
    assert breach.message == "web: 1 containers of user alice already running, at most 1 (quota per-user)"
    assert breach_at_start(PER_USER.quotas, "n", "web", {OWNED_BY: "carol"}, running, []) is None
    # a container with no owner cannot be counted for anyone: refused at start
    unowned = breach_at_start(PER_USER.quotas, "n", "web", {}, running, [])
    assert unowned is not None and "no docker-covenant.user label" in unowned.message


def test_a_create_under_a_per_user_quota_must_name_its_user():
    def create(labels: dict, user: str):
        body = json.dumps({"Image": "x", "Labels": labels}).encode()
        uri = "/v1.41/containers/create?name=web"
        request = Request("POST", route(uri), body, {"content-type": "application/json"}, user, uri)
        return QuotaKeeper().check(PER_USER, request, ListingEngine({}, []))

    assert create({OWNED_BY: "alice"}, "alice") is None
    wrong = create({OWNED_BY: "alice"}, "bob")
    assert wrong is not None
    assert wrong.msg == ("[quota per-user] web: a container created by bob must carry the label "
                         "docker-covenant.user=bob (quota per-user)")
    assert create({}, "bob") is not None
    nobody = create({OWNED_BY: "alice"}, "")
    assert nobody is not None and "no authenticated user" in nobody.msg
    # without a per-user quota, no label is asked for
    plain = Request("POST", route("/containers/create"), b"{}", {}, "", "/containers/create")
    assert QuotaKeeper().check(POLICY, plain, ListingEngine({}, [])) is None


def test_a_container_judged_before_an_earlier_one_was_listed_is_found_beyond_later():
    """dockerd sets StartedAt a moment before it lists a container as running: c2 (second
    to start) was not listed yet when c3 was judged, so c3 was allowed. When c2 is judged
    it sees c3 beyond the quota, and names it to be judged again."""
    c1, c2, c3 = (Running(f"c{i}", TEAM_A, f"2026-12-03T10:00:0{i}Z") for i in (1, 2, 3))
    assert breach_when_running(POLICY.quotas, c3, "c3", [c1]) is None  # what c3's judgement saw
    assert breach_when_running(POLICY.quotas, c2, "c2", [c1, c3]) is None
    assert later_beyond(POLICY.quotas, c2, [c1, c3]) == {"c3"}
    assert breach_when_running(POLICY.quotas, c3, "c3", [c1, c2]) is not None  # judged again: stopped
    assert later_beyond(POLICY.quotas, c1, [c2]) == set()


def test_only_its_owner_starts_a_container_under_a_per_user_quota():
    quotas = parse_policy("quotas:\n  - name: mine\n    max_running: 1\n    per: user\n").quotas
    owned = {"docker-covenant.user": "alice"}
    assert starter_breach(quotas, "c", owned, "alice") is None
    assert starter_breach(quotas, "c", owned, "") is None  # no user: the count decides
    assert starter_breach(quotas, "c", {}, "bob") is None  # no owner: breach_at_start refuses it
    found = starter_breach(quotas, "c", owned, "bob")
    assert found is not None and found.message == ("c: a container of alice (docker-covenant.user=alice) is "
                                                   "started by alice only, not bob (quota mine)")
    assert starter_breach(parse_policy("quotas:\n  - name: h\n    max_running: 1\n").quotas, "c", owned,
                          "bob") is None


def test_a_running_container_restarted_keeps_its_place_while_it_is_not_listed():
    """dockerd stops a restarted container before it starts it again (and a start of a
    running container starts it if it exited meanwhile): a start judged while it is not
    listed still counts it."""
    engine = ListingEngine({"x": stored("x", running=True), "y": stored("y")},
                           [{"Id": "r1", "Labels": TEAM_A}])
    keeper = QuotaKeeper()
    uri = "/v1.41/containers/x/restart"
    assert keeper.check(POLICY, Request("POST", route(uri), None, {}, "", uri), engine) is None
    refused = keeper.check(POLICY, start("y"), engine)  # x is between its stop and its start
    assert refused is not None and refused.quota == "per-team"
    keeper.done("POST", uri)
    engine.running.append({"Id": "x", "Labels": TEAM_A})
    assert keeper.check(POLICY, start("y"), engine) is not None  # x runs again: still full
