"""Usage limits, the pure part: stats read as ``docker stats`` reads them (from readings
recorded on both engines, tests/record_stats.py), runs above a limit judged over time,
and the policy keys validated with file:line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from covenant.audit import catalogue
from covenant.checks import Sample, judge_usage, parse_duration, parse_size
from covenant.checks.usage import _cpu, sample
from covenant.policy import PolicyError, parse_policy

STATS = json.loads((Path(__file__).parent / "data" / "stats.json").read_text())
ENGINES = sorted(STATS)
MiB = 1024**2


def readings(engine: str, case: str) -> tuple[Sample, Sample]:
    first, second = STATS[engine][case]
    return sample(first["stats"], first["at"]), sample(second["stats"], second["at"])


@pytest.mark.parametrize("engine", ENGINES)
def test_recorded_stats_read_as_docker_stats_reads_them(engine):
    _, shm = readings(engine, "shm-48m")
    assert shm.memory is not None and 48 * MiB <= shm.memory < 56 * MiB  # /dev/shm counts
    _, idle = readings(engine, "idle")
    assert idle.memory is not None and idle.memory < 4 * MiB and idle.pids == 1
    assert readings(engine, "procs-12")[1].pids == 12
    before, after = readings(engine, "busy")
    assert before.read is not None and after.read is not None and after.read > before.read
    assert 0.9 < (_cpu(before, after) or 0) < 1.1  # one busy loop: one CPU
    assert (_cpu(*readings(engine, "idle")) or 0) < 0.05


def test_a_run_above_the_limit_counts_only_once_it_lasts_usage_for():
    settings = {"memory_usage_max": 32 * MiB, "usage_for": 10.0}
    at = [Sample(t, 40 * MiB, None, 1) for t in (0.0, 5.0, 10.0)]
    since, found = judge_usage("web", settings, {}, None, at[0])
    assert since == {"CV201": 0.0} and not found
    since, found = judge_usage("web", settings, since, at[0], at[1])
    assert since == {"CV201": 0.0} and not found
    since, found = judge_usage("web", settings, since, at[1], at[2])
    assert [v.check for v in found] == ["CV201"]
    assert found[0].message == "web: 40.0 MiB in use, above the limit of 32.0 MiB for 10 s (usage_for 10 s)"


def test_a_sample_at_or_below_the_limit_ends_the_run_and_an_unreadable_one_does_not():
    settings = {"memory_usage_max": 32 * MiB, "usage_for": 10.0}
    since, _ = judge_usage("web", settings, {}, None, Sample(0.0, 40 * MiB, None, 1))
    kept, found = judge_usage("web", settings, since, None, Sample(5.0, None, None, None))
    assert kept == since and not found
    ended, found = judge_usage("web", settings, kept, None, Sample(8.0, 32 * MiB, None, 1))
    assert ended == {} and not found
    again, found = judge_usage("web", settings, ended, None, Sample(12.0, 40 * MiB, None, 1))
    assert again == {"CV201": 12.0} and not found


def test_cpu_is_the_rate_between_two_samples_and_pids_the_count():
    settings = {"cpu_usage_max": 0.5, "pids_usage_max": 5, "usage_for": 0.0}
    prev, cur = Sample(0.0, None, 0, 3), Sample(2.0, None, int(1.5e9), 6)
    since, found = judge_usage("job", settings, {}, prev, cur)
    assert since == {"CV202": 0.0, "CV203": 2.0}
    assert [v.message for v in found] == [
        "job: 0.75 CPUs in use, above the limit of 0.50 CPUs for 2 s (usage_for 0 s)",
        "job: 6 processes in use, above the limit of 5 processes for 0 s (usage_for 0 s)"]
    since, found = judge_usage("job", settings, {}, None, cur)  # no previous sample: no CPU rate yet
    assert "CV202" not in since


def test_no_limit_set_judges_nothing():
    assert judge_usage("x", {"usage_for": 0.0}, {}, None, Sample(0.0, 10**12, 10**15, 10**6)) == ({}, ())


@pytest.mark.parametrize(("text", "size"), [("2GiB", 2 * 1024**3), ("512m", 512 * MiB),
                                            ("1.5g", 3 * 1024**3 // 2), (1048576, MiB), ("64 MiB", 64 * MiB)])
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "-1", 0, True, "2 parsecs", None, 1.5])
def test_not_sizes(text):
    assert parse_size(text) is None


def test_durations():
    assert [parse_duration(v) for v in (90, "30s", "5m", "1h", "2.5m", 0)] == [90, 30, 300, 3600, 150, 0]
    assert [parse_duration(v) for v in ("soon", -1, True, "5d")] == [None, None, None, None]


def test_policy_keys_validated_with_file_and_line():
    policy = parse_policy("usage_interval: 10\nweb-*:\n  memory_usage_max: 2GiB\n  cpu_usage_max: 1.5\n"
                          "  pids_usage_max: 200\n  usage_for: 5m\n  waive: [CV203]\n", "p.yml")
    settings, waived = policy.resolve({"Name": "/web-1"})
    assert (settings["memory_usage_max"], settings["cpu_usage_max"], settings["pids_usage_max"],
            settings["usage_for"], policy.usage_interval) == (2 * 1024**3, 1.5, 200, 300.0, 10)
    assert waived == {"CV203"}
    assert policy.resolve({"Name": "/db"})[0]["memory_usage_max"] is None  # off unless set
    for text, message in [
            ("web:\n  memory_usage_max: lots\n", "p.yml:2: web.memory_usage_max: expected a size"),
            ("web:\n  cpu_usage_max: 0\n", "p.yml:2: web.cpu_usage_max: expected a number of CPUs above 0"),
            ("web:\n  pids_usage_max: yes\n", "p.yml:2: web.pids_usage_max: expected a whole number"),
            ("web:\n  usage_for: soon\n", "p.yml:2: web.usage_for: expected a duration"),
            ("usage_interval: 0.5\n", "p.yml:1: usage_interval: expected a number of seconds, 0 (off) or 1")]:
        with pytest.raises(PolicyError) as err:
            parse_policy(text, "p.yml")
        assert str(err.value).startswith(message), str(err.value)


def test_checks_lists_the_usage_limits():
    rows = {line.split()[0]: line for line in catalogue().splitlines()[1:] if line.strip()}
    assert "memory_usage_max" in rows["CV201"] and "cpu_usage_max" in rows["CV202"]
    assert "pids_usage_max" in rows["CV203"]
