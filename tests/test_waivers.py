"""Waivers with a reason and an end (issue 15): the two forms of ``waive``, their errors
with the file's line, and the evaluator judging a waiver at the time it is given."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from covenant.policy import PolicyError, parse_policy
from covenant.waivers import WaiverCollector, expiry_timer

REPO = Path(__file__).resolve().parent.parent


def at(text: str) -> float:
    """An ISO instant with its zone as seconds since the epoch."""
    return datetime.fromisoformat(text).timestamp()


# no --cap-drop=all (CV002), no security option (CV003): the original profile's findings
BARE = {"Id": "c" * 64, "Name": "/web", "Config": {"Image": "busybox"}, "HostConfig": {}}

LONG = """web:
  waive:
    - checks: [CV002]
      reason: needs its capabilities for the VPN client
      ticket: OPS-123
      owner: alice
      until: 2026-12-31
"""


def checks(violations) -> list[str]:
    return [v.check for v in violations]


def test_the_short_form_is_unchanged_a_waiver_without_reason_or_end():
    policy = parse_policy("web:\n  waive: [CV002, cv003]\n")
    [waiver] = policy.waivers()
    assert (waiver.checks, waiver.reason, waiver.until, waiver.expires) == (
        frozenset({"CV002", "CV003"}), "", "", None)
    decision = policy.decide(BARE, now=at("2999-01-01T00:00:00+00:00"))  # never ends
    assert decision.allowed and checks(decision.waived) == ["CV002", "CV003"]
    assert policy.sections[0].waive == frozenset({"CV002", "CV003"})
    assert parse_policy("web:\n  waive: CV002\n").sections[0].waive == frozenset({"CV002"})


def test_the_long_form_reads_every_key():
    [waiver] = parse_policy(LONG).waivers()
    assert (waiver.checks, waiver.reason, waiver.ticket, waiver.owner, waiver.until) == (
        frozenset({"CV002"}), "needs its capabilities for the VPN client", "OPS-123", "alice", "2026-12-31")
    assert (waiver.section, waiver.line) == ("web", 3)
    assert waiver.expires == at("2027-01-01T00:00:00+00:00")  # through the end of that day, UTC


def test_both_forms_in_one_list_and_a_single_mapping():
    policy = parse_policy("web:\n  waive:\n    - CV003\n    - {checks: CV002, reason: r, ticket: 42}\n"
                          "api:\n  waive: {checks: [CV002], reason: s}\n")
    assert [(sorted(w.checks), w.reason, w.ticket) for w in policy.waivers()] == [
        (["CV003"], "", ""), (["CV002"], "r", "42"), (["CV002"], "s", "")]


def test_reason_without_until_is_a_waiver_that_never_ends():
    [waiver] = parse_policy("web:\n  waive:\n    - checks: [CV002]\n      reason: forever\n").waivers()
    assert waiver.expires is None and waiver.applies(at("2999-01-01T00:00:00+00:00"))


@pytest.mark.parametrize(("until", "written", "expires"), [
    ("2026-12-31", "2026-12-31", "2027-01-01T00:00:00+00:00"),  # a date: the whole day, UTC
    ("'2026-12-31'", "2026-12-31", "2027-01-01T00:00:00+00:00"),  # quoted: read the same
    ("2026-12-31T18:30:00Z", "2026-12-31T18:30:00Z", "2026-12-31T18:30:00+00:00"),
    ("2026-12-31T18:30:00+02:00", "2026-12-31T18:30:00+02:00", "2026-12-31T16:30:00+00:00"),
    ("'2026-12-31T18:30:00-05:00'", "2026-12-31T18:30:00-05:00", "2026-12-31T23:30:00+00:00"),
    ("2026-12-31 18:30:00Z", "2026-12-31T18:30:00Z", "2026-12-31T18:30:00+00:00"),  # YAML's space
])
def test_until_a_date_is_through_that_day_utc_a_timestamp_is_the_instant(until, written, expires):
    [waiver] = parse_policy(f"web:\n  waive:\n    - checks: [CV002]\n      reason: r\n"
                            f"      until: {until}\n").waivers()
    assert waiver.until == written and waiver.expires == at(expires)


def test_evaluation_before_and_after_until():
    policy = parse_policy(LONG)
    before = policy.decide(BARE, now=at("2026-12-31T23:59:59+00:00"))  # the last second of that day
    assert checks(before.violations) == ["CV003"] and checks(before.waived) == ["CV002"]
    assert before.waivers["CV002"].ticket == "OPS-123" and not before.expired
    after = policy.decide(BARE, now=at("2027-01-01T00:00:00+00:00"))  # the first instant after it
    assert checks(after.violations) == ["CV002", "CV003"] and not after.waived
    assert after.expired["CV002"].reason == "needs its capabilities for the VPN client"
    assert after.violations[0].message == (
        "web: all capabilities not dropped (waiver expired 2027-01-01T00:00:00Z: needs its capabilities "
        "for the VPN client [OPS-123, alice, until 2026-12-31])")
    assert after.violations[1].message == "web: no security options has been set"  # never waived
    assert policy.waivers_of(BARE, now=at("2026-12-01T00:00:00+00:00"))["CV002"].owner == "alice"
    assert not policy.waivers_of(BARE, now=at("2027-06-01T00:00:00+00:00"))
    assert policy.resolve(BARE, now=at("2026-12-01T00:00:00+00:00"))[1] == frozenset({"CV002"})
    assert policy.resolve(BARE, now=at("2027-06-01T00:00:00+00:00"))[1] == frozenset()


def test_a_timestamp_ends_at_its_instant_whatever_its_zone():
    policy = parse_policy("web:\n  waive:\n    - checks: [CV002, CV003]\n      reason: r\n"
                          "      until: 2026-12-03T20:00:00+02:00\n")
    assert policy.decide(BARE, now=at("2026-12-03T17:59:59+00:00")).allowed
    assert checks(policy.decide(BARE, now=at("2026-12-03T18:00:00+00:00")).violations) == ["CV002", "CV003"]


def test_an_ended_waiver_does_not_hide_one_that_applies():
    """Two sections waive the same check: the one still running covers it."""
    policy = parse_policy("'w*':\n  waive:\n    - {checks: [CV002], reason: old, until: 2026-01-01}\n"
                          "web:\n  waive:\n    - {checks: [CV002], reason: renewed, until: 2027-01-01}\n")
    decision = policy.decide(BARE, now=at("2026-06-01T00:00:00+00:00"))
    assert checks(decision.waived) == ["CV002"] and decision.waivers["CV002"].reason == "renewed"
    assert not decision.expired


def test_next_expiry_and_the_expired_ones():
    policy = parse_policy("web:\n  waive:\n    - CV003\n"
                          "    - {checks: [CV002], reason: a, until: 2026-01-01}\n"
                          "    - {checks: [CV005], reason: b, until: 2026-12-03T18:00:00Z}\n"
                          "    - {checks: [CV006], reason: c, until: 2027-03-01}\n")
    now = at("2026-12-01T00:00:00+00:00")
    assert policy.next_expiry(now) == at("2026-12-03T18:00:00+00:00")
    assert policy.next_expiry(at("2027-03-02T00:00:00+00:00")) is None
    assert [w.reason for w in policy.expired_waivers(now)] == ["a"]


R = "    - checks: [CV002]\n      reason: r\n"


@pytest.mark.parametrize(("body", "line", "words"), [
    ("    - checks: [CV002]\n      until: 2026-12-31\n", 3, "web.waive: a waiver needs a reason"),
    ("    - checks: [CV002]\n      reason: ''\n", 4, "web.waive: a waiver needs a reason"),
    (R + "      expires: 2026-12-31\n", 5, "web.waive: unknown key 'expires' "
     "(known: checks, reason, ticket, owner, until)"),
    (R + "      until: 2026-13-01\n", 5, "web.waive.until: expected a date"),  # no such day
    (R + "      until: 2026-02-30\n", 5, "web.waive.until: expected a date"),
    (R + "      until: next week\n", 5, "web.waive.until: expected a date"),
    (R + "      until: 2026-12-31T18:00:00\n", 5, "web.waive.until: a timestamp needs its zone"),
    (R + "      until: 20261231\n", 5, "web.waive.until: expected a date"),
    ("    - reason: r\n      checks: [CV999]\n", 4, "web.waive.checks: unknown check id 'CV999'"),
    ("    - reason: r\n", 3, "web.waive.checks: expected a list of check ids"),
    ("    - checks: []\n      reason: r\n", 3, "web.waive.checks: expected a list of check ids"),
    (R + "      owner: [a, b]\n", 5, "web.waive.owner: expected a string"),
    ("    - CV999\n", 2, "web.waive: unknown check id 'CV999'"),
    ("    - [CV002]\n", 2, "web.waive: expected a list of check ids"),
])
def test_errors_name_the_line(body, line, words):
    with pytest.raises(PolicyError) as err:
        parse_policy(f"web:\n  waive:\n{body}", "p.yml")
    assert str(err.value).startswith(f"p.yml:{line}: ") and words in str(err.value), str(err.value)


def test_check_config_lists_waivers_and_warns_of_an_ended_one(tmp_path):
    path = tmp_path / "p.yml"
    path.write_text(LONG + "    - checks: [CV003]\n      reason: gone\n      until: 2020-01-01\n")
    out = subprocess.run([sys.executable, "-m", "covenant", "--config", str(path), "--check-config"],
                         capture_output=True, text=True, cwd=REPO, check=False)
    assert out.returncode == 0, out.stderr  # a warning, not an error
    waivers = json.loads(out.stdout)["sections"]["web"]["waivers"]
    assert waivers[0] == {"checks": ["CV002"], "reason": "needs its capabilities for the VPN client",
                          "ticket": "OPS-123", "owner": "alice", "until": "2026-12-31",
                          "expires": "2027-01-01T00:00:00Z",
                          "expired": datetime.now(timezone.utc) >= datetime(2027, 1, 1, tzinfo=timezone.utc)}
    assert waivers[1]["expired"] is True
    assert out.stderr == (f"docker-covenant: warning: {path}:8: web: waiver of CV003 expired at "
                          "2020-01-02T00:00:00Z (gone [until 2020-01-01]); it no longer applies\n")


def test_metrics_give_each_dated_waivers_end_and_how_many_end_within_a_week():
    policy = parse_policy(LONG + "    - {checks: [CV003, CV005], reason: b, until: 2026-12-05T00:00:00Z}\n"
                          "    - {checks: [CV006], reason: c, until: 2026-01-01}\n    - CV007\n")
    registry = CollectorRegistry()
    registry.register(WaiverCollector(lambda: policy, clock=lambda: at("2026-12-01T00:00:00+00:00")))
    found = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for f in text_string_to_metric_families(generate_latest(registry).decode()) for s in f.samples}
    assert found == {
        ("covenant_waiver_expiry_timestamp_seconds",
         (("checks", "CV002"), ("owner", "alice"), ("section", "web"), ("ticket", "OPS-123"),
          ("until", "2026-12-31"))):
            at("2027-01-01T00:00:00+00:00"),
        ("covenant_waiver_expiry_timestamp_seconds",
         (("checks", "CV003,CV005"), ("owner", ""), ("section", "web"), ("ticket", ""),
          ("until", "2026-12-05T00:00:00Z"))):
            at("2026-12-05T00:00:00+00:00"),
        ("covenant_waiver_expiry_timestamp_seconds",
         (("checks", "CV006"), ("owner", ""), ("section", "web"), ("ticket", ""),
          ("until", "2026-01-01"))):
            at("2026-01-02T00:00:00+00:00"),
        ("covenant_waivers_expiring", (("within", "7d"),)): 1.0,
        ("covenant_waivers_expired", ()): 1.0,
    }


def test_the_timer_hands_on_a_waiver_at_its_end_and_rearms_on_a_new_policy():
    """A fake clock the timer's waits drive: each wait moves it on by what was waited."""
    clock = [at("2026-12-03T17:59:00+00:00")]
    policies = [parse_policy("web:\n  waive:\n    - {checks: [CV002], reason: a, "
                             "until: 2026-12-03T18:00:00Z}\n")]
    ended: list[tuple[float, list[str]]] = []
    stopping = threading.Event()

    class Rearm(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            if len(ended) == 1 and len(policies) == 1:  # a reload: a new waiver, later
                policies.append(parse_policy("web:\n  waive:\n    - {checks: [CV003], reason: b, "
                                             "until: 2026-12-03T18:05:00Z}\n"))
                return True
            if len(ended) == 2:
                stopping.set()
            clock[0] += timeout or 0
            return False

    expiry_timer(lambda: policies[-1], Rearm(), stopping,
                 lambda ws: ended.append((clock[0], [c for w in ws for c in sorted(w.checks)])),
                 lambda: logging.getLogger("test"), clock=lambda: clock[0], longest=60)
    assert ended == [(at("2026-12-03T18:00:00+00:00"), ["CV002"]),
                     (at("2026-12-03T18:05:00+00:00"), ["CV003"])]
