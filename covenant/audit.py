"""``docker-covenant audit``: evaluate every running container once, or saved inspect JSON.

It uses the daemon's evaluator (``Policy.decide``) and stops nothing. Exit status:
0 when every container complies, 1 when any violates, 2 on error.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TextIO

from .checks import CATALOGUE, CHECKS, ORIGINAL_KEYS, PROFILES, SETTINGS, USAGE_CHECKS
from .enforce import look_up
from .engine import DockerEngine, EngineLookupError, EngineNotFoundError
from .policy import Decision, Policy
from .reach import Lookups
from .scanner import Scanner, scan_lookup

CLEAN, VIOLATIONS, ERROR = 0, 1, 2


class AuditError(Exception):
    pass


def load_inspect(text: str, source: str) -> list[dict[str, Any]]:
    """``docker inspect`` output: a JSON array of containers, or one container."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise AuditError(f"{source}:{e.lineno}: not JSON: {e.msg}") from None
    items = data if isinstance(data, list) else [data]
    if not all(isinstance(c, dict) and isinstance(c.get("HostConfig"), dict) for c in items):
        raise AuditError(f"{source}: expected `docker inspect` output of containers "
                         "(objects with a HostConfig)")
    return items


def running_containers(progress: TextIO | None, policy: Policy | None = None,
                       ) -> Iterator[tuple[dict[str, Any], Lookups | None]]:
    """Inspect every running container, eight at a time, with the volumes and containers it
    references (``enforce.look_up``); a container gone meanwhile is skipped. With a policy
    that has an image scanner, the images its sections require scanned are scanned (each
    once), and the audit waits for the verdicts."""
    engine = DockerEngine()
    if policy is not None and policy.image_scan is not None:
        scanner = Scanner(lambda: policy.image_scan, lambda: logging.getLogger("docker-covenant"))
        engine.scan_hook = scan_lookup(scanner, lambda: policy, engine.image, float("inf"))
    try:
        ids = engine.running()
    except EngineLookupError as e:
        raise AuditError(f"cannot reach Docker: {str(e).splitlines()[0]}") from None

    def inspect(cid: str) -> tuple[dict[str, Any], Lookups | None] | None:
        try:
            data = engine.container(cid)
            return data, look_up(engine, data)
        except EngineNotFoundError:
            return None

    with ThreadPoolExecutor(8) as pool:
        for done, data in enumerate(pool.map(inspect, ids), 1):
            if progress is not None:
                progress.write(f"\raudit: {done}/{len(ids)} containers")
                progress.flush()
            if data is not None:
                yield data
    if progress is not None and ids:
        progress.write("\n")


def rows(decisions: Iterable[Decision]) -> list[dict[str, Any]]:
    out = []
    for d in decisions:
        out.append({"id": d.container_id, "name": d.name, "image": d.image,
                    "violations": [_violation(v.check, v.message) for v in d.violations],
                    "waived": [_violation(v.check, v.message) for v in d.waived]})
    return out


def _violation(check: str, message: str) -> dict[str, Any]:
    c = CHECKS[check]
    return {"check": check, "cis": c.cis, "title": c.title, "message": message}


def table(data: list[dict[str, Any]]) -> str:
    lines = [("CONTAINER", "CHECK", "CIS", "MESSAGE")]
    for d in data:
        for v in d["violations"]:
            lines.append((d["name"], v["check"], v["cis"] or "-", v["message"]))
    widths = [max(len(row[i]) for row in lines) for i in range(3)]
    text = "\n".join("  ".join(col.ljust(w) for col, w in zip(row[:3], widths)) + "  " + row[3]
                     for row in lines)
    bad = sum(1 for d in data if d["violations"])
    return f"{text}\n\n{len(data)} containers, {bad} violating\n" if bad else \
        f"{len(data)} containers, all compliant\n"


def run(policy: Policy, fmt: str, inspect_file: str | None) -> int:
    try:
        if inspect_file:
            text = sys.stdin.read() if inspect_file == "-" else _read(inspect_file)
            containers: Iterable[tuple[dict[str, Any], Lookups | None]] = (
                (c, None) for c in load_inspect(text, inspect_file))
        else:
            containers = running_containers(sys.stderr if sys.stderr.isatty() else None, policy)
        data = rows(policy.decide(c, lookups) for c, lookups in containers)
    except AuditError as e:
        print(f"docker-covenant: error: {e}", file=sys.stderr)
        return ERROR
    sys.stdout.write(json.dumps(data, indent=2) + "\n" if fmt == "json" else table(data))
    return VIOLATIONS if any(d["violations"] for d in data) else CLEAN


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise AuditError(f"{path}: {e.strerror}") from None


def catalogue() -> str:
    """``docker-covenant checks``: the catalogue as a table."""
    lines = [("ID", "CIS", "KEY", "PROFILES", "TITLE")]
    for c in CATALOGUE:
        title = c.title
        if SETTINGS[c.key].kind == "list":
            on = ["when set"]
            title += f" [default: {SETTINGS[c.key].default}]"
        else:
            on = [p for p, keys in PROFILES.items() if c.key in ORIGINAL_KEYS or c.key in keys]
        lines.append((c.id, c.cis or "-", c.key, ",".join(on) or "when set", title))
    for u in USAGE_CHECKS:  # sampled by the daemon while usage_interval is set
        lines.append((u.id, "-", u.key, "when set", u.title + " [daemon, usage_interval]"))
    widths = [max(len(row[i]) for row in lines) for i in range(4)]
    return "\n".join("  ".join(col.ljust(w) for col, w in zip(row[:4], widths)) + "  " + row[4]
                     for row in lines) + "\n"
