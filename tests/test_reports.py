"""Reports CI tools read (SARIF 2.1.0, JUnit XML), every check's severity, and --fail-on:
the pure formats on rows, then `audit` on the private dockerd in each format."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
from harness import COMPLIANT, REPO, run_container, unique
from test_audit import audit

from covenant.checks import CATALOGUE, HOST_CATALOGUE, RULES, SEVERITY_LEVELS, USAGE_CHECKS
from covenant.reports import ANY_FINDING, FailOn, junit, parse_fail_on, sarif

SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text())


def validate_sarif(report: dict) -> None:
    """Against the OASIS SARIF 2.1.0 schema (draft 4), as a dashboard's importer would."""
    jsonschema.Draft4Validator.check_schema(SCHEMA)
    jsonschema.Draft4Validator(SCHEMA).validate(report)


def finding(check: str, message: str = "m", **extra: str) -> dict:
    rule = RULES[check]
    return {"check": check, "cis": rule.cis, "title": rule.title, "severity": rule.severity,
            "message": message, **extra}


ROWS = [
    {"host": "node1", "kind": "container", "id": "abc", "name": "web", "image": "busybox",
     "violations": [finding("CV001", "web: privileged set but not allowed"), finding("CV017")],
     "waived": [finding("CV002", "web: all capabilities not dropped", reason="needs chown")]},
    {"host": "node1", "kind": "container", "id": "def", "name": "ok", "image": "busybox",
     "violations": [], "waived": []},
    {"host": "node1", "kind": "daemon", "id": "D", "name": "node1", "image": "",
     "violations": [finding("CV102")], "waived": []},
    {"host": "node2", "kind": "engine", "id": "", "name": "node2", "image": "",
     "error": "cannot reach Docker", "violations": [], "waived": []},
    {"kind": "container", "id": "x", "name": "saved", "image": "busybox", "file": "running.json",
     "violations": [finding("CV026")], "waived": []},
]


def test_every_check_of_every_kind_has_a_severity_and_one_entry():
    ids = [c.id for c in (*CATALOGUE, *USAGE_CHECKS, *HOST_CATALOGUE)] + ["CV030"]
    assert sorted(ids) == sorted(RULES) and len(set(ids)) == len(ids)
    assert all(r.severity in SEVERITY_LEVELS and r.title for r in RULES.values())
    assert RULES["CV001"].severity == "high" and RULES["CV001"].cis == "5.4"


def test_readme_gives_each_container_check_the_severity_the_code_has():
    readme = (REPO / "README.adoc").read_text()
    documented = dict(re.findall(r"^\| (CV0\d\d|CV301) \| [^|]* \| (high|medium|low) \|", readme, re.M))
    assert documented == {c.id: c.severity for c in CATALOGUE}
    assert "All three are severity `medium`" in readme and all(u.severity == "medium" for u in USAGE_CHECKS)
    assert "CV030 (severity high)" in readme and RULES["CV030"].severity == "high"


def test_sarif_is_valid_2_1_0_with_a_rule_per_check_and_waivers_suppressed():
    report = sarif(ROWS)
    validate_sarif(report)
    run = report["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == sorted(RULES)
    cv001 = rules[[r["id"] for r in rules].index("CV001")]
    assert cv001["properties"]["cis"] == "5.4" and "CIS-Docker-5.4" in cv001["properties"]["tags"]
    assert cv001["defaultConfiguration"]["level"] == "error"
    by_rule = {(r["ruleId"], r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]): r
               for r in run["results"]}
    assert set(by_rule) == {("CV001", "node1/container web"), ("CV017", "node1/container web"),
                            ("CV002", "node1/container web"), ("CV102", "node1/daemon node1"),
                            ("CV026", "container saved")}
    assert by_rule["CV017", "node1/container web"]["level"] == "note"
    assert rules[by_rule["CV001", "node1/container web"]["ruleIndex"]]["id"] == "CV001"
    waived = by_rule["CV002", "node1/container web"]
    assert waived["suppressions"] == [{"kind": "external", "status": "accepted",
                                       "justification": "needs chown"}]
    assert "suppressions" not in by_rule["CV001", "node1/container web"]
    saved = by_rule["CV026", "container saved"]["locations"][0]["physicalLocation"]
    assert saved == {"artifactLocation": {"uri": "running.json"}}
    assert run["invocations"][0]["executionSuccessful"] is False
    assert "node2" in run["invocations"][0]["toolExecutionNotifications"][0]["message"]["text"]


def test_sarif_schema_check_can_fail():
    """The validation is real: a result without its message is refused."""
    report = sarif(ROWS)
    del report["runs"][0]["results"][0]["message"]
    with pytest.raises(jsonschema.ValidationError):
        validate_sarif(report)


def test_junit_counts_failures_skips_and_errors_per_engine():
    root = ET.fromstring(junit(ROWS, parse_fail_on("medium")))
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root}
    node1 = suites["docker-covenant node1"]
    assert (node1.get("tests"), node1.get("failures"), node1.get("skipped"), node1.get("errors")) == \
        ("5", "1", "3", "0")  # CV001 fails; CV017 (low) and CV102 (low) below medium; CV002 waived
    cases = {(c.get("classname"), c.get("name")): c for c in node1}
    assert cases["container web", "CV001 Container must not run privileged"].find("failure") is not None
    assert "waived: needs chown" in cases["container web",
                                          f"CV002 {RULES['CV002'].title}"].find("skipped").get("message")
    assert cases["container ok", "compliant"].find("*") is None
    assert suites["docker-covenant node2"].get("errors") == "1"
    assert root.get("tests") == str(sum(int(s.get("tests")) for s in root))


def test_fail_on_severity_ids_and_none():
    assert ANY_FINDING.failing(ROWS)
    assert parse_fail_on("high").failing(ROWS)  # CV001, CV026
    only_low = [{"violations": [finding("CV017"), finding("CV008")], "waived": []}]
    assert parse_fail_on("low").failing(only_low) and not parse_fail_on("medium").failing(only_low)
    assert parse_fail_on("CV008").failing(only_low) and not parse_fail_on("cv001, CV026").failing(only_low)
    assert not parse_fail_on("none").failing(ROWS)
    waived_only = [{"violations": [], "waived": [finding("CV001")]}]
    assert not ANY_FINDING.failing(waived_only)
    assert parse_fail_on("CV001,CV007") == FailOn(None, frozenset({"CV001", "CV007"}))
    for bad in ("critical", "CV999", "", ","):
        with pytest.raises(ValueError, match="--fail-on"):
            parse_fail_on(bad)


def test_audit_formats_and_fail_on_against_the_engine(tmp_path, dockerd, client):
    """A container with only medium findings (capabilities not dropped, no security option)
    fails `--fail-on medium` and passes `--fail-on high`; a privileged one fails both."""
    medium = run_container(client, unique("medium"))
    report = audit(tmp_path, dockerd, "--format", "sarif")
    assert report.returncode == 1, report.stderr
    sarif_out = json.loads(report.stdout)
    validate_sarif(sarif_out)
    found = {(r["ruleId"], r["locations"][0]["logicalLocations"][0]["name"])
             for r in sarif_out["runs"][0]["results"]}
    assert found == {("CV002", medium.name), ("CV003", medium.name)}
    assert audit(tmp_path, dockerd, "--fail-on", "high").returncode == 0
    assert audit(tmp_path, dockerd, "--fail-on", "medium").returncode == 1
    assert audit(tmp_path, dockerd, "--fail-on", "none", "--format", "json").returncode == 0

    bad = run_container(client, unique("priv"), privileged=True, **COMPLIANT)
    high = audit(tmp_path, dockerd, "--fail-on", "high", "--format", "junit")
    assert high.returncode == 1, high.stderr
    root = ET.fromstring(high.stdout)
    failed = {(c.get("classname"), c.get("name").split()[0])
              for s in root for c in s if c.find("failure") is not None}
    assert failed == {(f"container {bad.name}", "CV001")}
    skipped = {c.get("name").split()[0] for s in root for c in s if c.find("skipped") is not None}
    assert skipped == {"CV002", "CV003"}  # the medium container's, below --fail-on high

    usage = audit(tmp_path, dockerd, "--fail-on", "critical")
    assert usage.returncode == 2 and "--fail-on" in usage.stderr


def test_a_waived_finding_is_a_suppressed_result_with_its_reason(tmp_path, dockerd, client):
    """A long-form waiver's reason reaches the reports; after its end the finding is open."""
    web = run_container(client, unique("waived"), security_opt=["no-new-privileges"])
    policy = (f"debug: no\n{web.name}:\n  waive:\n    - checks: [CV002]\n      reason: needs chown\n"
              "      ticket: OPS-7\n      until: 2099-01-01\n")
    report = audit(tmp_path, dockerd, "--format", "sarif", policy=policy)
    assert report.returncode == 0, report.stderr  # the only finding is waived
    results = json.loads(report.stdout)["runs"][0]["results"]
    assert [(r["ruleId"], r["suppressions"][0]["justification"]) for r in results] == \
        [("CV002", "needs chown")]
    rows = json.loads(audit(tmp_path, dockerd, "--format", "json", policy=policy).stdout)
    assert rows[0]["waived"][0]["reason"] == "needs chown" and rows[0]["waived"][0]["ticket"] == "OPS-7"
    ended = audit(tmp_path, dockerd, "--format", "sarif", policy=policy.replace("2099-01-01", "2020-01-01"))
    assert ended.returncode == 1
    results = json.loads(ended.stdout)["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == ["CV002"] and "suppressions" not in results[0]
    assert "waiver expired 2020-01-02T00:00:00Z" in results[0]["message"]["text"]
