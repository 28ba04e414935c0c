"""The image gate: what a vulnerability scanner said of a container's image (CV301).

The shell runs the configured scanner (Trivy or Grype, JSON output) once per image id,
reads its report with :func:`verdict` and hands the result to the core as plain data
(``reach.Lookups.image_scan``, which ``widen`` puts under ``ImageScan``): ``state`` is
``passed``, ``rejected`` (findings at or above the threshold), ``failed`` (the scanner
did not give a report it could read), ``pending`` (no verdict yet, with what the policy
says of that: ``deny``, ``allow`` or ``wait``) or ``absent`` (a create of an image the
engine does not have: dockerd refuses it, and the start is judged on the stored image).
Nothing here runs anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .model import Container, Settings

# Both tools' scales, lowest first (Grype's Negligible sits below Low; Trivy's UNKNOWN and
# Grype's Unknown are below everything, so a threshold never counts them).
SEVERITIES = ("UNKNOWN", "NEGLIGIBLE", "LOW", "MEDIUM", "HIGH", "CRITICAL")
FORMATS = ("trivy", "grype")
SHOWN = 3  # findings named in a message


def rank(severity: str) -> int:
    return SEVERITIES.index(severity.upper()) if severity.upper() in SEVERITIES else 0


def trivy_findings(report: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(vulnerability id, package, severity) of a ``trivy image --format json`` report
    (schema 2: ``Results[].Vulnerabilities[]``)."""
    if not isinstance(report, Mapping) or "SchemaVersion" not in report:
        raise ValueError("not a Trivy JSON report (no SchemaVersion)")
    found = []
    for result in report.get("Results") or []:
        for v in result.get("Vulnerabilities") or []:
            found.append((str(v.get("VulnerabilityID", "?")), str(v.get("PkgName", "?")),
                          str(v.get("Severity", "UNKNOWN"))))
    return found


def grype_findings(report: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(vulnerability id, package, severity) of a ``grype -o json`` report
    (``matches[].vulnerability`` and ``.artifact``)."""
    if not isinstance(report, Mapping) or not isinstance(report.get("matches"), list):
        raise ValueError("not a Grype JSON report (no matches list)")
    return [(str(m.get("vulnerability", {}).get("id", "?")), str(m.get("artifact", {}).get("name", "?")),
             str(m.get("vulnerability", {}).get("severity", "Unknown"))) for m in report["matches"]]


def report_image_id(report: Any, fmt: str) -> str:
    """The id of the image a report is of (Trivy's ``Metadata.ImageID``, Grype's
    ``source.target.imageID``), or "" when it names none."""
    if not isinstance(report, Mapping):
        return ""
    if fmt == "trivy":
        found = (report.get("Metadata") or {}).get("ImageID")
    else:
        target = (report.get("source") or {}).get("target")
        found = target.get("imageID") if isinstance(target, Mapping) else None
    return found if isinstance(found, str) else ""


def verdict(report: Any, fmt: str, threshold: str) -> dict[str, Any]:
    """The verdict on one report: rejected when any finding is at or above ``threshold``.
    A report that is not of the format raises ValueError (the shell records ``failed``)."""
    findings = trivy_findings(report) if fmt == "trivy" else grype_findings(report)
    bar = rank(threshold)
    over = sorted({f for f in findings if rank(f[2]) >= bar}, key=lambda f: (-rank(f[2]), f[0], f[1]))
    return {"state": "rejected" if over else "passed", "threshold": threshold.upper(),
            "findings": [{"id": i, "package": p, "severity": s.upper()} for i, p, s in over],
            "total": len(findings)}


def _named(findings: Iterable[Mapping[str, Any]]) -> str:
    listed = list(findings)
    shown = ", ".join(f"{f['id']} ({f['package']}, {f['severity']})" for f in listed[:SHOWN])
    return shown + (f" and {len(listed) - SHOWN} more" if len(listed) > SHOWN else "")


def _image_scan(container: Container, settings: Settings) -> str | None:
    """CV301: the image's scan verdict, as the shell found it."""
    if not settings.get("image_scan_required"):
        return None
    scan = container.get("ImageScan")
    if not isinstance(scan, Mapping):
        return ": no scan verdict (no image_scan configured, or the image could not be looked up)"
    state = scan.get("state")
    if state in ("passed", "absent") or (state == "pending" and scan.get("unscanned") == "allow"):
        return None
    if state == "rejected":
        findings = scan.get("findings") or []
        return f": {len(findings)} finding(s) at or above {scan.get('threshold')}: {_named(findings)}"
    if state == "pending":
        return ": not scanned yet" + (f" ({scan['detail']})" if scan.get("detail") else "")
    return f": the scan failed ({scan.get('detail') or 'no report'})"
