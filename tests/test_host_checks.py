"""The daemon and image checks (CV1nn) as pure functions, on the engines' recorded answers
(tests/data/host.json, ``record_host.py``), and their policy key ``host_audit``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from covenant.audit import catalogue, table
from covenant.checks.daemon import (
    HOST_CATALOGUE,
    Daemon,
    evaluate_daemon,
    evaluate_image,
    image_ids,
    resolve,
    wanted,
)
from covenant.policy import PolicyError, parse_policy

RECORDED = json.loads((Path(__file__).parent / "data" / "host.json").read_text())
ENGINES = sorted(RECORDED)
CIS = resolve("cis", {})


def daemon(engine: str, case: str) -> Daemon:
    answer = RECORDED[engine]["daemons"][case]
    return Daemon(answer["info"], answer["bridge"])


def ids(found) -> list[str]:
    return [v.check for v in found]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_default_test_daemon_lacks_userns_live_restore_and_a_plugin(engine):
    found = evaluate_daemon(daemon(engine, "default"), CIS)
    # --bridge=none: no default bridge, so nothing for icc to govern; unix socket only
    assert ids(found) == ["CV101", "CV102", "CV104"]
    assert [v.message for v in found] == ["vm: user namespace remapping off", "vm: live restore off",
                                          "vm: no authorization plugin"]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_hardened_daemon_meets_every_daemon_check(engine):
    assert evaluate_daemon(daemon(engine, "hardened"), CIS) == ()


@pytest.mark.parametrize("engine", ENGINES)
def test_a_loose_daemon_fails_every_daemon_check(engine):
    found = evaluate_daemon(daemon(engine, "loose"), CIS)
    assert ids(found) == ["CV101", "CV102", "CV103", "CV104", "CV105"]
    assert found[2].message == "vm: inter-container communication on the default bridge"
    assert found[4].message == "vm: API on TCP without TLS verification: 127.0.0.1:2375 (no TLS)"


@pytest.mark.parametrize("engine", ENGINES)
def test_tls_without_client_verification_is_a_finding(engine):
    found = [v for v in evaluate_daemon(daemon(engine, "tls-without-verify"), CIS) if v.check == "CV105"]
    assert [v.message for v in found] == [
        "vm: API on TCP without TLS verification: 127.0.0.1:2376 (TLS without client verification)"]


@pytest.mark.parametrize("engine", ENGINES)
def test_images_without_user_or_healthcheck(engine):
    images = RECORDED[engine]["images"]
    assert [v.message for v in evaluate_image(images["busybox"], CIS)] == [
        "covenant-test/busybox:1: image runs as root (no USER)",
        "covenant-test/busybox:1: image has no HEALTHCHECK"]
    assert [v.message for v in evaluate_image(images["root-and-healthcheck-none"], CIS)] == [
        "covtest/root-and-healthcheck-none:1: image runs as root (0)",
        "covtest/root-and-healthcheck-none:1: image has no HEALTHCHECK"]
    assert evaluate_image(images["user-and-healthcheck"], CIS) == ()


def test_profiles_turn_them_on_and_the_original_profile_not_at_all():
    loose, busybox = daemon("26", "loose"), RECORDED["26"]["images"]["busybox"]
    original = resolve("original", {})
    assert not wanted(original, "daemon") and not wanted(original, "image")
    assert evaluate_daemon(loose, original) == () and evaluate_image(busybox, original) == ()
    strict = resolve("strict", {})
    assert ids(evaluate_daemon(loose, strict)) == ["CV102", "CV103", "CV105"]
    assert ids(evaluate_image(busybox, strict)) == ["CV111"]
    assert ids(evaluate_daemon(loose, resolve("original", {"userns_remap_required": True}))) == ["CV101"]
    assert ids(evaluate_daemon(loose, resolve("cis", {"tcp_tls_required": False}))) == [
        "CV101", "CV102", "CV103", "CV104"]


def test_image_ids_are_the_distinct_images_of_the_containers():
    containers = [{"Image": "sha256:b"}, {"Image": "sha256:a"}, {"Image": "sha256:b"}, {}]
    assert image_ids(containers) == ["sha256:b", "sha256:a"]


def test_host_audit_in_the_policy_file():
    policy = parse_policy("profile: cis\nhost_audit:\n  userns_remap_required: no\n"
                          "  image_healthcheck_required: no\n")
    settings = policy.host_settings()
    assert settings["userns_remap_required"] is False and settings["live_restore_required"] is True
    assert policy.describe()["host_audit"] == settings
    assert parse_policy("debug: no\n").host_settings() == {c.key: False for c in HOST_CATALOGUE}


@pytest.mark.parametrize(("text", "error"), [
    ("host_audit: yes\n", "p.yml:1: host_audit: expected a mapping"),
    ("debug: no\nhost_audit:\n  live_restore: yes\n", "p.yml:3: host_audit: unknown key 'live_restore'"),
    ("host_audit:\n  live_restore_required: 1\n",
     "p.yml:2: host_audit.live_restore_required: expected yes or no, got 1"),
])
def test_host_audit_errors_name_file_and_line(text, error):
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p.yml")
    assert str(caught.value).startswith(error)


def test_original_policy_files_still_mean_what_they_meant():
    policy = parse_policy("syslog_ident: docker-covenant\ndebug: yes\nprivoxy:\n  cap_drop_required: yes\n")
    assert not any(policy.host_settings().values())


def test_table_lists_daemon_and_image_findings_after_the_containers():
    loose = evaluate_daemon(daemon("20.10", "loose"), resolve("strict", {}))
    data = [
        {"kind": "container", "name": "web", "violations": []},
        {"kind": "daemon", "name": "vm", "violations": [
            {"check": v.check, "cis": "x", "severity": "s", "message": v.message} for v in loose]},
        {"kind": "image", "name": "busybox:1", "violations": []},
    ]
    text = table(data)
    lines = text.splitlines()
    assert lines[0] == "1 containers, all compliant"
    assert lines[2].split() == ["DAEMON/IMAGE", "CHECK", "CIS", "SEVERITY", "MESSAGE"]
    assert lines[3].split()[:4] == ["daemon", "vm", "CV102", "x"]
    assert lines[-2:] == ["daemon vm: 3 findings", "1 images, all compliant"]


def test_checks_listing_shows_the_daemon_and_image_checks():
    text = catalogue()
    host = text.split("Daemon and image checks (audit only; host_audit keys):\n", 1)[1].splitlines()
    assert host[0].split() == ["ID", "CIS", "SEVERITY", "KEY", "PROFILES", "TITLE"]
    rows = {line.split()[0]: line.split()[1:5] for line in host[1:]}
    assert rows == {
        "CV101": ["2.8", "medium", "userns_remap_required", "cis"],
        "CV102": ["2.13", "low", "live_restore_required", "cis,strict"],
        "CV103": ["2.1", "medium", "icc_disabled_required", "cis,strict"],
        "CV104": ["2.11", "medium", "authorization_plugin_required", "cis"],
        "CV105": ["2.6", "high", "tcp_tls_required", "cis,strict"],
        "CV111": ["4.1", "medium", "image_user_required", "cis,strict"],
        "CV112": ["4.6", "low", "image_healthcheck_required", "cis"],
    }
