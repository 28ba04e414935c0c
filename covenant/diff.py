"""``docker-covenant audit --config NEW --against OLD``: what a policy change would do here.

Every running container of the engine (or of each engine named, or the saved ``docker
inspect`` output of ``--inspect``) is judged by both policies with the one evaluator
(``Policy.decide``), on the same inspect and lookups, and the differences are listed:
the containers NEW would newly stop (OLD allows them), those it would newly allow (OLD
flags them), and the checks newly flagged (or no longer) on a container both flag.
Nothing is stopped. Exit status: 1 if NEW would newly stop a container, else 0; 2 on an
error (a policy that cannot be used, an engine that cannot be audited, unreadable input).

Only the container checks are compared: not the daemon and image checks, quotas or usage
limits, and no image is scanned (a section newly requiring a scan shows CV301).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

from .audit import AuditError, _read, load_inspect, running_containers
from .engine import DockerEngine
from .fleet import FleetError, Target, targets
from .policy import Decision, Policy, PolicyError, load_policy
from .reach import Lookups

SAME, NEWLY_STOPPED, NEWLY_ALLOWED, CHANGED = "same", "newly-stopped", "newly-allowed", "changed"
CLEAN, NEWLY_STOPS, ERROR = 0, 1, 2


def compare(new: Policy, old: Policy, found: Iterable[tuple[dict[str, Any], Lookups | None]],
            host: str = "") -> list[dict[str, Any]]:
    """One row per container: both verdicts and what changes between them."""
    out = []
    for container, lookups in found:
        now, before = new.decide(container, lookups), old.decide(container, lookups)
        out.append(_row(now, before, host))
    return out


def _row(now: Decision, before: Decision, host: str) -> dict[str, Any]:
    new_ids, old_ids = [v.check for v in now.violations], [v.check for v in before.violations]
    if not now.allowed and before.allowed:
        change = NEWLY_STOPPED
    elif now.allowed and not before.allowed:
        change = NEWLY_ALLOWED
    else:
        change = CHANGED if set(new_ids) != set(old_ids) else SAME
    row = {"kind": "container", "id": now.container_id, "name": now.name, "image": now.image,
           "change": change, "new": new_ids, "old": old_ids,
           "flagged": [{"check": v.check, "message": v.message} for v in now.violations
                       if v.check not in old_ids],
           "cleared": [{"check": v.check, "message": v.message} for v in before.violations
                       if v.check not in new_ids]}
    return {"host": host, **row} if host else row


def table(rows: list[dict[str, Any]], new: Policy, old: Policy, hosts: bool) -> str:
    def who(r: dict[str, Any]) -> str:
        return f"{r['host']}: {r['name']}" if hosts else r["name"]

    lines = [f"{new.source} against {old.source}:"]
    rows = [r for r in rows if r["kind"] == "container"]
    if new.mode == "warn":
        lines.append(f"({new.source} is in warn mode: what it flags is logged, not stopped)")
    groups = ((NEWLY_STOPPED, "would newly stop"), (NEWLY_ALLOWED, "would newly allow"),
              (CHANGED, "flagged differently (stopped under both)"))
    for change, title in groups:
        mine = [r for r in rows if r["change"] == change]
        if not mine:
            continue
        lines.append(f"{title}:")
        for r in mine:
            detail = [f"+{f['check']} ({f['message']})" for f in r["flagged"]]
            detail += [f"-{f['check']} ({f['message']})" for f in r["cleared"]]
            lines.append(f"  {who(r)}: " + "; ".join(detail))
    count = {c: sum(1 for r in rows if r["change"] == c) for c in (NEWLY_STOPPED, NEWLY_ALLOWED, CHANGED)}
    lines.append(f"{len(rows)} containers: {count[NEWLY_STOPPED]} newly stopped, {count[NEWLY_ALLOWED]} "
                 f"newly allowed, {count[CHANGED]} flagged differently")
    return "\n".join(lines) + "\n"


def run(new: Policy, against: str, fmt: str, inspect_file: str | None, fleet: list[Target] | None) -> int:
    if fmt not in ("table", "json"):
        print(f"docker-covenant: error: --against prints table or json, not {fmt}", file=sys.stderr)
        return ERROR
    try:
        old = load_policy(against)
    except PolicyError as e:
        print(f"docker-covenant: error: --against: {e}", file=sys.stderr)
        return ERROR
    errors: list[str] = []
    rows: list[dict[str, Any]] = []
    try:
        if inspect_file:
            text = sys.stdin.read() if inspect_file == "-" else _read(inspect_file)
            rows = compare(new, old, ((c, None) for c in load_inspect(text, inspect_file)))
            fleet = []
        else:
            fleet = fleet or targets([], [])
            for target in fleet:
                try:
                    engine = DockerEngine(host=target.host, tls=target.tls, timeout=10.0)
                    found = list(running_containers(engine, sys.stderr if sys.stderr.isatty() else None))
                except AuditError as e:
                    if len(fleet) == 1:
                        raise
                    errors.append(f"{target.label}: not audited: {e}")
                    rows.append({"host": target.label, "kind": "engine", "error": str(e), "change": SAME})
                    continue
                rows += compare(new, old, found, target.label if len(fleet) > 1 else "")
    except (AuditError, FleetError) as e:
        print(f"docker-covenant: error: {e}", file=sys.stderr)
        return ERROR
    if fmt == "json":
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        sys.stdout.write(table(rows, new, old, len(fleet) > 1) + "".join(f"{e}\n" for e in errors))
    if errors:
        return ERROR
    return NEWLY_STOPS if any(r["change"] == NEWLY_STOPPED for r in rows) else CLEAN
