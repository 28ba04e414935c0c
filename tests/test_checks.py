"""The pure policy core, fed with what a real engine's `docker inspect` returned."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from covenant.checks import CATALOGUE, DEFAULTS, evaluate
from covenant.checks.reading import host_port_range
from covenant.policy import Policy, parse_policy

RECORDED = json.loads((Path(__file__).parent / "data" / "inspect.json").read_text())
SAMPLE = (Path(__file__).parent.parent / "docker-covenant.yml").read_bytes()


def ids(container, settings=DEFAULTS):
    return [v.check for v in evaluate(container, settings)[0]]


@pytest.mark.parametrize(("case", "expected"), [
    ("compliant", []),
    ("default", ["CV002", "CV003"]),
    ("privileged", ["CV001", "CV002", "CV003"]),  # the engine adds label=disable itself
    ("cap-drop-some", ["CV002"]),  # dropping some is not dropping all
    ("cap-drop-lowercase", []),  # "all" in any case counts
    ("cap-add-all", ["CV004"]),
    ("seccomp-unconfined", ["CV003"]),
    ("disabling-only", ["CV003"]),
    ("old-colon-syntax", ["CV003"]),  # seccomp:unconfined is seccomp=unconfined
])
def test_default_policy_on_recorded_containers(case, expected):
    assert ids(RECORDED[case]) == expected


def test_messages_keep_the_original_texts():
    messages = [v.message for v in evaluate(RECORDED["privileged"], DEFAULTS)[0]]
    assert messages == ["privileged: privileged set but not allowed",
                        "privileged: all capabilities not dropped",
                        "privileged: no security options has been set"]
    assert [v.message for v in evaluate(RECORDED["cap-add-all"], DEFAULTS)[0]] == [
        "cap-add-all: capability ALL has been set"]


@pytest.mark.parametrize("value", [["ALL"], ["all"], ["CAP_ALL"], ["cap_all"], "ALL", [" All "]])
def test_capability_names_in_any_spelling(value):
    container = copy.deepcopy(RECORDED["compliant"])
    container["HostConfig"]["CapDrop"] = value
    assert ids(container) == []
    container["HostConfig"]["CapAdd"] = value
    assert ids(container) == ["CV004"]


def test_systempaths_unconfined_is_not_a_security_option():
    container = copy.deepcopy(RECORDED["compliant"])
    container["HostConfig"]["SecurityOpt"] = ["systempaths=unconfined", "no-new-privileges=false"]
    assert ids(container) == ["CV003"]
    container["HostConfig"]["SecurityOpt"].append("seccomp=/etc/docker/strict.json")
    assert ids(container) == []


def test_privileged_section_allows_privileged_and_cap_add_all():
    settings = {**DEFAULTS, "privileged": True, "cap_drop_required": False}
    assert ids(RECORDED["privileged"], settings) == ["CV003"]
    assert ids(RECORDED["cap-add-all"], settings) == []


def test_every_check_has_a_stable_unique_id_and_title():
    assert len({c.id for c in CATALOGUE}) == len(CATALOGUE)
    assert all(c.id.startswith("CV") and c.title and c.key in DEFAULTS for c in CATALOGUE)


def test_sample_policy_resolves_sections_by_exact_name():
    policy = parse_policy(SAMPLE, "docker-covenant.yml")
    privoxy = dict(RECORDED["cap-drop-lowercase"], Name="/privoxy")
    privoxy["HostConfig"] = dict(privoxy["HostConfig"], SecurityOpt=None)
    assert policy.decide(privoxy).allowed
    bench = dict(RECORDED["privileged"], Name="/docker-bench-security")
    assert [v.check for v in policy.decide(bench).violations] == ["CV003"]
    other = dict(RECORDED["privileged"], Name="/docker-bench-security-2")
    assert [v.check for v in policy.decide(other).violations] == ["CV001", "CV002", "CV003"]


def test_decision_carries_what_the_log_needs():
    decision = Policy().decide(RECORDED["default"])
    assert decision.name == "default"
    assert decision.container_id == RECORDED["default"]["Id"]
    assert decision.image == "covenant-test/busybox:1"
    assert not decision.allowed


def test_host_ports_are_read_as_dockerd_reads_them():
    """go-connections: nat.NewPort(nat.SplitProtoPort(HostPort)), ParseUint(_, 10, 16)."""
    cases = {"": (0, 0), "80": (80, 80), "0080": (80, 80), "80/udp": (80, 80), "/80": (0, 0),
             "80-90": (80, 90), "80-90-100": (80, 90), "90-80": None, "+80": None, "\uff18\uff10": None,
             "65536": None, "1024-65535": (1024, 65535), "0": (0, 0), "x": None}
    assert {k: host_port_range(k) for k in cases} == cases
    settings = {**DEFAULTS, "privileged_ports_forbidden": True}
    for host_port, bad in (("80-90", True), ("1000-2000", True), ("0-100", True), ("1024-2000", False),
                           ("0", False), ("", False), ("80/udp", True), ("+80", False)):
        c = {"Name": "/p", "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": host_port}]}}}
        found = [v.check for v in evaluate(c, settings)[0] if v.check == "CV008"]
        assert found == (["CV008"] if bad else []), host_port
