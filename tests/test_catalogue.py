"""The catalogue, profiles, selectors, precedence and waivers, on recorded `docker inspect` JSON."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from covenant.checks import CATALOGUE, DEFAULTS, PROFILES, evaluate
from covenant.policy import PolicyError, parse_policy

RECORDED = json.loads((Path(__file__).parent / "data" / "inspect.json").read_text())


def ids(case_or_container, policy_text: str = "") -> list[str]:
    c = RECORDED[case_or_container] if isinstance(case_or_container, str) else case_or_container
    return [v.check for v in parse_policy(policy_text).decide(c).violations]


CIS_LOOSE = ["CV003", "CV005", "CV006", "CV007", "CV011", "CV012", "CV013", "CV014", "CV015", "CV016",
             "CV017", "CV018", "CV019", "CV020", "CV021", "CV022", "CV023", "CV024", "CV025", "CV026"]


@pytest.mark.parametrize(("case", "profile", "expected"), [
    ("hardened", "original", []),
    ("hardened", "cis", ["CV005"]),  # this host has no AppArmor: inspect says ""
    ("hardened", "strict", []),
    ("loose", "original", ["CV003"]),  # three options, all of them switching protection off
    ("loose", "cis", CIS_LOOSE),
    ("loose", "strict", ["CV003", "CV006", "CV007", "CV011", "CV012", "CV013", "CV014", "CV015", "CV019",
                         "CV020", "CV021", "CV022", "CV023", "CV025", "CV026", "CV027"]),
    ("host-network", "cis", ["CV005", "CV010", "CV015", "CV016", "CV017", "CV018", "CV024", "CV025"]),
    ("host-network", "strict", ["CV010", "CV015", "CV025", "CV027"]),
    ("ports-wide", "cis", ["CV005", "CV008", "CV009", "CV015", "CV016", "CV017", "CV024", "CV025"]),
    ("ports-loopback", "cis", ["CV005", "CV015", "CV016", "CV017", "CV024", "CV025"]),
])
def test_profiles_on_recorded_containers(case, profile, expected):
    assert ids(case, f"profile: {profile}\n") == expected


def test_messages_name_what_violates():
    policy = parse_policy("profile: cis\n")
    messages = {v.check: v.message for v in policy.decide(RECORDED["loose"]).violations}
    assert messages["CV006"] == "loose: capabilities added: NET_ADMIN, SYS_PTRACE"
    assert messages["CV007"] == ("loose: sensitive host directory mounted read-write: /etc, "
                                 "/var/run/docker.sock")
    assert messages["CV018"] == "loose: restart policy not limited (always)"
    assert messages["CV019"] == "loose: host devices exposed: /dev/null"
    assert messages["CV020"] == "loose: shared mount propagation: /shared"
    assert messages["CV026"] == "loose: Docker socket mounted: /var/run/docker.sock"
    ports = {v.check: v.message for v in policy.decide(RECORDED["ports-wide"]).violations}
    assert ports["CV008"] == "ports-wide: privileged host port published: 80"
    assert ports["CV009"] == "ports-wide: port published on all host interfaces: 443/tcp, 53/udp, 80/tcp"
    strict_policy = parse_policy("profile: strict\n")
    strict = {v.check: v.message for v in strict_policy.decide(RECORDED["loose"]).violations}
    assert strict["CV027"] == "loose: runs as root (0)"


def test_new_checks_are_off_unless_turned_on():
    """An existing docker-covenant.yml means exactly what it meant before."""
    for case in RECORDED:
        assert set(ids(case)) <= {"CV001", "CV002", "CV003", "CV004"}
    assert set(PROFILES["original"]) == set()


def test_allow_lists():
    hardened = RECORDED["hardened"]
    assert ids(hardened, "hardened:\n  bind_mount_prefixes: [/srv, /etc]\n") == []
    assert ids(hardened, "hardened:\n  bind_mount_prefixes: [/srv/data/]\n") == ["CV028"]
    assert ids(hardened, "hardened:\n  bind_mount_prefixes: [/srv/dat]\n") == ["CV028"]  # not a prefix path
    assert ids(hardened, "hardened:\n  allowed_images: ['covenant-test/*']\n") == []
    assert ids(hardened, "hardened:\n  allowed_images: ['registry.example.com/*']\n") == ["CV029"]
    assert ids(hardened, "hardened:\n  digests_only: yes\n") == ["CV029"]
    pinned = copy.deepcopy(hardened)
    pinned["Config"]["Image"] = "registry.example.com/app@sha256:" + "0" * 64
    assert ids(pinned, "hardened:\n  digests_only: yes\n  allowed_images: ['registry.example.com/*']\n") == []
    caps = "loose:\n  no_added_capabilities: yes\n  allowed_capabilities: [net_admin]\n"
    assert ids(RECORDED["loose"], caps) == ["CV003", "CV006"]


def labelled(case: str, name: str, **labels: str) -> dict:
    c = copy.deepcopy(RECORDED[case])
    c["Name"] = "/" + name
    c["Config"]["Labels"] = labels
    return c


PRECEDENCE = """\
label=com.docker.compose.project=shop:
  memory_limit_required: yes
  read_only_required: yes
image=covenant-test/*:
  memory_limit_required: no
  pids_limit_required: yes
web-*:
  pids_limit_required: no
  read_only_required: no
web-front-*:
  read_only_required: yes
web-front-1:
  read_only_required: no
"""


def test_precedence_exact_beats_glob_beats_image_and_label():
    policy = parse_policy(PRECEDENCE)
    front1 = labelled("compliant", "web-front-1", **{"com.docker.compose.project": "shop"})
    front2 = labelled("compliant", "web-front-2", **{"com.docker.compose.project": "shop"})
    other = labelled("compliant", "db", **{"com.docker.compose.project": "shop"})
    elsewhere = labelled("compliant", "db", **{"com.docker.compose.project": "blog"})
    # label and image tie on tier: the more literal pattern (the label's) wins memory
    assert [v.check for v in policy.decide(other).violations] == ["CV015", "CV017", "CV025"]
    assert [v.check for v in policy.decide(elsewhere).violations] == ["CV025"]
    assert [v.check for v in policy.decide(front2).violations] == ["CV015", "CV017"]
    assert [v.check for v in policy.decide(front1).violations] == ["CV015"]


def test_label_selector_by_presence_and_value_glob():
    policy = parse_policy("label=com.docker.swarm.service.name:\n  read_only_required: yes\n"
                          "label=tier=back*:\n  pids_limit_required: yes\n")
    swarm = labelled("compliant", "x", **{"com.docker.swarm.service.name": "api", "tier": "backend"})
    assert [v.check for v in policy.decide(swarm).violations] == ["CV017", "CV025"]
    assert policy.decide(labelled("compliant", "y", tier="front")).allowed


def test_waivers_apply_to_what_the_section_selects():
    policy = parse_policy("profile: cis\nloose:\n  waive: [CV005, cv016]\n")
    decision = policy.decide(RECORDED["loose"])
    assert [v.check for v in decision.waived] == ["CV005", "CV016"]
    assert "CV005" not in [v.check for v in decision.violations]
    assert [v.check for v in policy.decide(RECORDED["hardened"]).violations] == ["CV005"]


@pytest.mark.parametrize(("text", "line", "words"), [
    ("profile: paranoid\n", 1, "profile: expected one of: original, cis, strict"),
    ("web:\n  waive: [CV999]\n", 2, "web.waive: unknown check id 'CV999'"),
    ("web:\n  waive: 5\n", 2, "web.waive: expected a list of check ids"),
    ("web:\n  allowed_images: nginx\n", 2, "web.allowed_images: expected a list of strings"),
    ("web:\n  memory_limit: yes\n", 2, "web: unknown key 'memory_limit'"),
    ("'web/*':\n  privileged: yes\n", 1, "unknown key 'web/*'"),
    ("image=:\n  privileged: yes\n", 1, "unknown key 'image='"),
])
def test_catalogue_validation_names_the_line(text, line, words):
    with pytest.raises(PolicyError) as err:
        parse_policy(text, "p.yml")
    assert str(err.value).startswith(f"p.yml:{line}: ") and words in str(err.value)


def test_every_check_is_documented_in_the_readme():
    readme = (Path(__file__).parent.parent / "README.adoc").read_text()
    for check in CATALOGUE:
        assert f"| {check.id} |" in readme, check.id
        assert f"`{check.key}`" in readme, check.key
    assert all(key in DEFAULTS for p in PROFILES.values() for key in p)


def test_evaluate_is_pure_on_plain_data():
    before = copy.deepcopy(RECORDED["loose"])
    evaluate(RECORDED["loose"], {**DEFAULTS, **PROFILES["cis"]})
    assert RECORDED["loose"] == before


def test_apparmor_profile_set_complies():
    """This host has no AppArmor, so no container here can start with a profile: the
    compliant case is the recorded container with the profile an AppArmor host reports."""
    confined = copy.deepcopy(RECORDED["hardened"])
    confined["AppArmorProfile"] = "docker-default"
    assert ids(confined, "profile: cis\n") == []
    assert ids(RECORDED["hardened"], "profile: cis\n") == ["CV005"]
    unconfined = copy.deepcopy(confined)
    unconfined["AppArmorProfile"] = "unconfined"
    assert ids(unconfined, "profile: cis\n") == ["CV005"]
