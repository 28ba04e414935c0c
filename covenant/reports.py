"""Report formats CI tools read, and what makes a report fail.

``audit`` builds rows (one per container, daemon, image or compose service, each with its
violations and waived findings); this module turns them into SARIF 2.1.0 (code-scanning
dashboards: one rule per check with its CIS item and severity, waived findings as
suppressions) or JUnit XML (test-report viewers: one test case per finding), and decides
from ``--fail-on`` whether the findings make the exit status 1. Pure: rows in, text out.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import __version__
from .checks import RULES, SEVERITY_LEVELS
from .checks.index import rank
from .policy import Decision

Row = Mapping[str, Any]
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
# SARIF's levels, and GitHub code scanning's numeric security-severity (it ranks by it).
LEVELS = {"high": "error", "medium": "warning", "low": "note"}
SECURITY_SEVERITY = {"high": "8.0", "medium": "5.0", "low": "2.0"}
FAIL_ON_HELP = ("what makes the exit status 1: a severity (low = any finding, the default; medium; "
                "high), a comma-separated list of check ids, or none")


@dataclass(frozen=True)
class FailOn:
    """``--fail-on``: a lowest severity, or exactly these check ids, or nothing."""

    severity: str | None = "low"
    checks: frozenset[str] = frozenset()

    def fails(self, finding: Row) -> bool:
        if self.checks:
            return str(finding.get("check")) in self.checks
        if self.severity is None:
            return False
        return rank(severity_of(finding)) >= rank(self.severity)

    def failing(self, rows: Iterable[Row]) -> bool:
        """Whether any finding (waived ones never count) makes the report fail."""
        return any(self.fails(v) for row in rows for v in row.get("violations", ()))


ANY_FINDING = FailOn()  # the default: any finding fails, as before --fail-on existed


def parse_fail_on(value: str) -> FailOn:
    """``low``, ``medium``, ``high``, ``none`` or ``CV001,CV007``; ValueError otherwise."""
    text = value.strip().lower()
    if text == "none":
        return FailOn(None)
    if text in SEVERITY_LEVELS:
        return FailOn(text)
    ids = frozenset(part.strip().upper() for part in value.split(",") if part.strip())
    unknown = sorted(i for i in ids if i not in RULES)
    if not ids or unknown:
        raise ValueError(f"--fail-on: expected {', '.join(SEVERITY_LEVELS)}, none or check ids, "
                         f"got {value!r}" + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    return FailOn(None, ids)


def rows(decisions: Iterable[Decision]) -> list[dict[str, Any]]:
    """``audit``'s rows: one per container, its violations and waived findings."""
    out = []
    for d in decisions:
        out.append({"kind": "container", "id": d.container_id, "name": d.name, "image": d.image,
                    "violations": [as_finding(v.check, v.message) for v in d.violations],
                    "waived": [waived_finding(d, v.check, v.message) for v in d.waived]})
    return out


def waived_finding(decision: Decision, check: str, message: str) -> dict[str, Any]:
    """A waived finding with its waiver's reason, ticket, owner and end (reports show them:
    SARIF's suppression justification, JUnit's skipped message)."""
    waiver = decision.waivers.get(check)
    found = as_finding(check, message)
    if waiver is not None:
        found.update({k: v for k, v in waiver.describe().items() if k != "checks"})
    return found


def as_finding(check: str, message: str) -> dict[str, Any]:
    rule = RULES[check]
    return {"check": check, "cis": rule.cis, "title": rule.title, "severity": rule.severity,
            "message": message}


def severity_of(finding: Row) -> str:
    """The finding's severity as reported, else its check's."""
    rule = RULES.get(str(finding.get("check")))
    return str(finding.get("severity") or (rule.severity if rule else "high"))


def subject(row: Row) -> str:
    """What a row is about, as people name it: ``host/container web``."""
    what = f"{row.get('kind', 'container')} {row.get('name', '')}"
    return f"{row['host']}/{what}" if row.get("host") else what


def sarif(rows: Sequence[Row]) -> dict[str, Any]:
    """One SARIF 2.1.0 run: the checks as rules, each finding a result on its container
    (a logical location; a physical one too when the row came from a file)."""
    rules = [_rule(r) for r in sorted(RULES.values(), key=lambda r: r.id)]
    index = {r["id"]: i for i, r in enumerate(rules)}
    results = [_result(row, v, index, waiver) for row in rows
               for waiver, found in ((False, row.get("violations", ())), (True, row.get("waived", ())))
               for v in found]
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "docker-covenant", "version": __version__, "rules": rules}},
        "results": results,
        "invocations": [{"executionSuccessful": not any(row.get("error") for row in rows),
                         "toolExecutionNotifications": [
                             {"level": "error", "message": {"text": f"{subject(row)}: {row['error']}"}}
                             for row in rows if row.get("error")]}],
    }]}


def _rule(rule: Any) -> dict[str, Any]:
    tags = ["security", "docker", rule.scope]
    if rule.cis:
        tags.append(f"CIS-Docker-{rule.cis}")
    return {"id": rule.id, "name": rule.id, "shortDescription": {"text": rule.title},
            "fullDescription": {"text": f"{rule.title} (policy key {rule.key}"
                                        + (f"; CIS Docker Benchmark {rule.cis})" if rule.cis else ")")},
            "defaultConfiguration": {"level": LEVELS[rule.severity]},
            "properties": {"severity": rule.severity, "cis": rule.cis or "",
                           "security-severity": SECURITY_SEVERITY[rule.severity], "tags": tags}}


def _result(row: Row, finding: Row, index: Mapping[str, int], waived: bool) -> dict[str, Any]:
    check = str(finding.get("check"))
    location: dict[str, Any] = {"logicalLocations": [{
        "name": str(row.get("name", "")), "kind": "resource",
        "fullyQualifiedName": subject(row)}]}
    if row.get("file"):
        region = {"startLine": int(row["line"])} if row.get("line") else None
        location["physicalLocation"] = {"artifactLocation": {"uri": str(row["file"])},
                                        **({"region": region} if region else {})}
    result: dict[str, Any] = {
        "ruleId": check, "level": LEVELS.get(severity_of(finding), "error"),
        "message": {"text": str(finding.get("message", ""))}, "locations": [location],
        "properties": {"kind": row.get("kind", "container"), "id": row.get("id", ""),
                       "image": row.get("image", ""), **({"host": row["host"]} if row.get("host") else {})}}
    if check in index:
        result["ruleIndex"] = index[check]
    if waived:
        result["suppressions"] = [{"kind": "external", "status": "accepted",
                                   "justification": str(finding.get("reason") or "waived by the policy")}]
    return result


def junit(rows: Sequence[Row], fail_on: FailOn) -> str:
    """JUnit XML: a suite per host, a case per finding (a failure when ``fail_on`` counts
    it, else a skipped case, as waived findings are), a passing case per compliant row."""
    root = ET.Element("testsuites", name="docker-covenant audit")
    hosts: dict[str, list[Row]] = {}
    for row in rows:
        hosts.setdefault(str(row.get("host") or "local"), []).append(row)
    for host, mine in hosts.items():
        suite = ET.SubElement(root, "testsuite", name=f"docker-covenant {host}")
        counts = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
        for row in mine:
            for name, tag, text in _cases(row, fail_on):
                case = ET.SubElement(suite, "testcase", name=name,  # the suite names the host
                                     classname=f"{row.get('kind', 'container')} {row.get('name', '')}")
                counts["tests"] += 1
                if tag:
                    ET.SubElement(case, tag, message=text.splitlines()[0] if text else "").text = text
                    counts[COUNTED[tag]] += 1
        for key, n in counts.items():
            suite.set(key, str(n))
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(sum(int(s.get(key, "0")) for s in root)))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


COUNTED = {"failure": "failures", "error": "errors", "skipped": "skipped"}


def _cases(row: Row, fail_on: FailOn) -> list[tuple[str, str, str]]:
    """(name, child tag or "" for a pass, its text) of each test case of one row."""
    if row.get("error"):
        return [("audited", "error", str(row["error"]))]
    cases = []
    for v in row.get("violations", ()):
        text = f"{v.get('message', '')} [{severity_of(v)}" + (f", CIS {v['cis']}]" if v.get("cis") else "]")
        cases.append((_case_name(v), "failure", text) if fail_on.fails(v)
                     else (_case_name(v), "skipped", f"below --fail-on: {text}"))
    for v in row.get("waived", ()):
        cases.append((_case_name(v), "skipped",
                      f"waived: {v.get('reason') or 'by the policy'}: {v.get('message', '')}"))
    return cases or [("compliant", "", "")]


def _case_name(finding: Row) -> str:
    rule = RULES.get(str(finding.get("check")))
    return f"{finding.get('check')} {rule.title if rule else finding.get('title', '')}".strip()


def render(fmt: str, rows: Sequence[Row], fail_on: FailOn, table: Callable[[Sequence[Row]], str]) -> str:
    """The report in ``fmt`` (table, json, sarif or junit)."""
    if fmt == "json":
        return json.dumps(list(rows), indent=2) + "\n"
    if fmt == "sarif":
        return json.dumps(sarif(rows), indent=2) + "\n"
    if fmt == "junit":
        return junit(rows, fail_on)
    return table(rows)
