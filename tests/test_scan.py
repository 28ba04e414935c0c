"""The image gate, the pure part and the scanner runner: real Trivy and Grype reports (from
the tools' own test suites, tests/data/scans/README.md), thresholds, CV301's messages, the
policy's image_scan validated with file:line, and the scanner command run by a stand-in
(no scanner can be installed on the test machines)."""

from __future__ import annotations

import copy
import json
import logging
import time
from pathlib import Path

import pytest

from covenant.checks.scan import _image_scan, grype_findings, trivy_findings, verdict
from covenant.policy import ImageScan, PolicyError, parse_policy
from covenant.scanner import Scanner

SCANS = Path(__file__).parent / "data" / "scans"
TRIVY = json.loads((SCANS / "trivy-alpine-39-high-critical.json").read_text())
GRYPE = json.loads((SCANS / "grype-imgs.json").read_text())
GRYPE_EMPTY = json.loads((SCANS / "grype-empty.json").read_text())
LOG = logging.getLogger("test-scan")


def test_trivy_report_is_read_and_judged_by_threshold():
    assert trivy_findings(TRIVY) == [("CVE-2019-14697", "musl", "CRITICAL"),
                                     ("CVE-2019-14697", "musl-utils", "CRITICAL")]
    for threshold in ("LOW", "HIGH", "CRITICAL"):
        v = verdict(TRIVY, "trivy", threshold)
        assert v["state"] == "rejected" and len(v["findings"]) == 2 and v["total"] == 2


def test_grype_report_is_read_and_judged_by_threshold():
    assert grype_findings(GRYPE) == [("CVE-1999-0001", "package-1", "Low"),
                                     ("CVE-1999-0002", "package-2", "Critical")]
    high = verdict(GRYPE, "grype", "high")
    assert high["state"] == "rejected" and high["threshold"] == "HIGH"
    assert high["findings"] == [{"id": "CVE-1999-0002", "package": "package-2", "severity": "CRITICAL"}]
    assert len(verdict(GRYPE, "grype", "LOW")["findings"]) == 2
    below = copy.deepcopy(GRYPE)
    below["matches"] = [m for m in below["matches"] if m["vulnerability"]["severity"] != "Critical"]
    assert verdict(below, "grype", "HIGH") == {"state": "passed", "threshold": "HIGH", "findings": [],
                                               "total": 1}
    assert verdict(GRYPE_EMPTY, "grype", "LOW")["state"] == "passed"


def test_a_report_of_the_other_format_is_not_read():
    with pytest.raises(ValueError, match="not a Grype"):
        verdict(TRIVY, "grype", "HIGH")
    with pytest.raises(ValueError, match="not a Trivy"):
        verdict(GRYPE, "trivy", "HIGH")


def test_cv301_messages_for_each_state():
    on = {"image_scan_required": True}
    rejected = verdict(TRIVY, "trivy", "HIGH")
    assert _image_scan({"ImageScan": rejected}, on) == (
        ": 2 finding(s) at or above HIGH: CVE-2019-14697 (musl, CRITICAL), "
        "CVE-2019-14697 (musl-utils, CRITICAL)")
    assert _image_scan({"ImageScan": rejected}, {"image_scan_required": False}) is None
    assert _image_scan({"ImageScan": verdict(GRYPE_EMPTY, "grype", "LOW")}, on) is None
    assert _image_scan({"ImageScan": {"state": "pending", "unscanned": "allow"}}, on) is None
    assert _image_scan({"ImageScan": {"state": "pending", "unscanned": "deny", "detail": ""}}, on) == \
        ": not scanned yet"
    assert _image_scan({"ImageScan": {"state": "failed", "detail": "exit status 2"}}, on) == \
        ": the scan failed (exit status 2)"
    assert _image_scan({"ImageScan": {"state": "absent"}}, on) is None
    assert _image_scan({}, on).startswith(": no scan verdict")


def test_image_scan_policy_validated_with_file_and_line():
    policy = parse_policy("image_scan:\n  command: [trivy, image, -f, json, '{image}']\n  format: trivy\n"
                          "  severity: critical\n  timeout: 2m\n  unscanned: deny\n"
                          "web-*:\n  image_scan_required: yes\n", "p.yml")
    assert policy.image_scan == ImageScan(("trivy", "image", "-f", "json", "{image}"), "trivy", "CRITICAL",
                                          120.0, "deny")
    assert parse_policy("image_scan:\n  command: [grype, '{image}', -o, json]\n  format: grype\n"
                        ).image_scan == ImageScan(("grype", "{image}", "-o", "json"), "grype")
    for text, message in [
            ("web:\n  image_scan_required: yes\n", "p.yml:1: web: image_scan_required needs a top-level"),
            ("image_scan:\n  format: trivy\n", "p.yml:1: image_scan.command: expected a list"),
            ("image_scan:\n  command: [x]\n  format: clair\n", "p.yml:3: image_scan.format: expected one of"),
            ("image_scan:\n  command: [x]\n  format: trivy\n  severity: bad\n",
             "p.yml:4: image_scan.severity: expected one of"),
            ("image_scan:\n  command: [x]\n  format: trivy\n  unscanned: maybe\n",
             "p.yml:4: image_scan.unscanned: expected one of: wait, allow, deny"),
            ("image_scan:\n  command: [x]\n  format: trivy\n  timeout: 0\n",
             "p.yml:4: image_scan.timeout: expected a duration above 0"),
            ("image_scan:\n  command: [x]\n  format: trivy\n  extra: 1\n",
             "p.yml:4: image_scan: unknown key")]:
        with pytest.raises(PolicyError) as err:
            parse_policy(text, "p.yml")
        assert str(err.value).startswith(message), str(err.value)


def stand_in(tmp_path: Path, body: str) -> Path:
    """A scanner stand-in: logs its arguments, then does ``body``."""
    script = tmp_path / "scanner"
    script.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'calls'}\n{body}\n")
    script.chmod(0o755)
    return script


def calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls"
    return path.read_text().splitlines() if path.exists() else []


def scanner_for(script: Path, fmt: str = "trivy", unscanned: str = "wait", timeout: float = 30) -> Scanner:
    config = ImageScan((str(script), "image", "{image}", "--ref", "{ref}"), fmt, "HIGH", timeout, unscanned)
    return Scanner(lambda: config, lambda: LOG)


def test_the_scanner_runs_once_per_image_and_keeps_the_verdict(tmp_path):
    script = stand_in(tmp_path, f"cat {SCANS / 'trivy-alpine-39-high-critical.json'}")
    scanner = scanner_for(script)
    try:
        first = scanner.lookup("sha256:aaa", "busy:1", wait=10)
        assert first["state"] == "rejected"
        assert scanner.lookup("sha256:aaa", "busy:2", wait=10) is first
        assert calls(tmp_path) == ["image sha256:aaa --ref busy:1"]
    finally:
        scanner.close()


def test_pending_until_the_scan_ends_then_the_verdict(tmp_path):
    script = stand_in(tmp_path, f"sleep 1; cat {SCANS / 'grype-empty.json'}")
    scanner = scanner_for(script, "grype", unscanned="deny")
    try:
        assert scanner.lookup("sha256:bbb", "x", wait=10) == {"state": "pending", "unscanned": "deny",
                                                              "detail": ""}
        deadline = time.monotonic() + 10
        while scanner.lookup("sha256:bbb", "x")["state"] == "pending" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert scanner.lookup("sha256:bbb", "x")["state"] == "passed"
        assert len(calls(tmp_path)) == 1
    finally:
        scanner.close()


@pytest.mark.parametrize(("body", "timeout", "detail"), [
    ("echo 'database download failed' >&2; exit 2", 30, "exit status 2, no trivy JSON report"),
    ("echo '{\"matches\": []}'", 30, "not a Trivy JSON report"),
    ("sleep 5", 0.5, "no report within 0.5 s"),
])
def test_a_failed_scan_is_a_failed_verdict_with_its_reason(tmp_path, body, timeout, detail):
    scanner = scanner_for(stand_in(tmp_path, body), timeout=timeout)
    try:
        result = scanner.lookup("sha256:ccc", "x", wait=10)
        assert result["state"] == "failed" and detail in result["detail"], result
    finally:
        scanner.close()


def test_a_scanner_that_is_not_there_is_a_failed_verdict(tmp_path):
    scanner = scanner_for(tmp_path / "no-such-scanner")
    try:
        result = scanner.lookup("sha256:ddd", "x", wait=10)
        assert result["state"] == "failed" and "cannot run" in result["detail"]
    finally:
        scanner.close()


@pytest.mark.parametrize(("fmt", "report", "state"), [
    ("trivy", '{"SchemaVersion": 2, "Metadata": {"ImageID": "sha256:aaa"}, "Results": []}', "passed"),
    ("trivy", '{"SchemaVersion": 2, "Metadata": {"ImageID": "sha256:bbb"}, "Results": []}', "failed"),
    ("trivy", '{"SchemaVersion": 2, "Results": []}', "failed"),
    ("grype", '{"matches": [], "source": {"target": {"imageID": "sha256:aaa"}}}', "passed"),
    ("grype", '{"matches": [], "source": {"target": {"imageID": "sha256:bbb"}}}', "failed"),
])
def test_a_scan_by_reference_counts_only_for_the_image_it_reports(tmp_path, fmt, report, state):
    """A tag can be re-pointed while its scan waits: the verdict, kept for the image id, is
    taken only from a report of that id."""
    script = stand_in(tmp_path, f"echo '{report}'")
    config = ImageScan((str(script), "{ref}"), fmt, "HIGH", 30, "wait")
    scanner = Scanner(lambda: config, lambda: LOG)
    try:
        found = scanner.lookup("sha256:aaa", "app:1", wait=10)
        assert found["state"] == state, found
        if state == "failed":
            assert found["detail"].startswith("a scan of 'app:1' reported image "), found
    finally:
        scanner.close()
