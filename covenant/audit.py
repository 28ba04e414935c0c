"""``docker-covenant audit``: evaluate every running container once, or saved inspect JSON.

It uses the daemon's evaluator (``Policy.decide``) and stops nothing. With an engine it
also judges the daemon (``/info``, the default bridge) and the images the running
containers use, when the profile or ``host_audit`` turns those checks on
(``checks.daemon``). Exit status: 0 when everything complies, 1 when anything violates,
2 on error.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TextIO

from .checks import CATALOGUE, ORIGINAL_KEYS, PROFILES, RULES, SETTINGS, USAGE_CHECKS
from .checks.daemon import (
    HOST_CATALOGUE,
    HOST_PROFILES,
    Daemon,
    daemon_name,
    evaluate_daemon,
    evaluate_image,
    image_ids,
    image_name,
    wanted,
)
from .compose import ComposeError, audit_rows
from .enforce import look_up
from .engine import DockerEngine, EngineLookupError, EngineNotFoundError
from .fleet import FleetError, Target, targets
from .policy import Policy
from .reach import Lookups
from .reports import ANY_FINDING, FailOn, as_finding, render, rows
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


def running_containers(engine: DockerEngine,
                       progress: TextIO | None) -> Iterator[tuple[dict[str, Any], Lookups | None]]:
    """Inspect every running container, eight at a time, with the volumes and containers it
    references (``enforce.look_up``); a container gone meanwhile is skipped."""
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


def host_rows(engine: DockerEngine, settings: dict[str, bool],
              containers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The daemon's entry and one per image the running containers use, each judged by the
    checks ``settings`` turn on; the engine is asked only for what those checks read."""
    out: list[dict[str, Any]] = []
    try:
        if wanted(settings, "daemon"):
            info = engine.info()
            try:
                bridge: dict[str, Any] | None = engine.network("bridge")
            except EngineNotFoundError:  # --bridge=none
                bridge = None
            found = evaluate_daemon(Daemon(info, bridge), settings)
            out.append({"kind": "daemon", "id": str(info.get("ID") or ""), "name": daemon_name(info),
                        "image": "", "violations": [as_finding(v.check, v.message) for v in found],
                        "waived": []})
        if wanted(settings, "image"):
            for image_id in image_ids(containers):
                try:
                    image = engine.image(image_id)
                except EngineNotFoundError:  # removed meanwhile (a running container keeps it)
                    continue
                users = sorted(str(c.get("Name") or "").lstrip("/") for c in containers
                               if c.get("Image") == image_id)
                found = evaluate_image(image, settings)
                out.append({"kind": "image", "id": image_id, "name": image_name(image),
                            "image": image_name(image), "containers": users,
                            "violations": [as_finding(v.check, v.message) for v in found], "waived": []})
    except EngineLookupError as e:
        raise AuditError(f"cannot ask Docker about the daemon or images: {str(e).splitlines()[0]}") from None
    return out


def table(data: Sequence[Mapping[str, Any]]) -> str:
    """Containers as before; then, when the daemon or images were judged, their findings
    (with a severity column) and one summary line each."""
    containers = [d for d in data if d.get("kind", "container") == "container"]
    lines = [("CONTAINER", "CHECK", "CIS", "SEVERITY", "MESSAGE")]
    for d in containers:
        for v in d["violations"]:
            lines.append((d["name"], v["check"], v["cis"] or "-", v["severity"], v["message"]))
    bad = sum(1 for d in containers if d["violations"])
    text = f"{_columns(lines)}\n\n{len(containers)} containers, {bad} violating\n" if bad else \
        f"{len(containers)} containers, all compliant\n"
    host = [d for d in data if d.get("kind") in ("daemon", "image")]
    if not host:
        return text
    findings = [(f"{d['kind']} {d['name']}", v["check"], v["cis"], v["severity"], v["message"])
                for d in host for v in d["violations"]]
    if findings:
        text += "\n" + _columns([("DAEMON/IMAGE", "CHECK", "CIS", "SEVERITY", "MESSAGE"), *findings]) + "\n\n"
    for d in host:
        if d["kind"] == "daemon":
            n = len(d["violations"])
            text += f"daemon {d['name']}: {n} findings\n" if n else f"daemon {d['name']}: compliant\n"
    images = [d for d in host if d["kind"] == "image"]
    if images:
        bad_images = sum(1 for d in images if d["violations"])
        text += f"{len(images)} images, {bad_images} violating\n" if bad_images else \
            f"{len(images)} images, all compliant\n"
    return text


def _columns(lines: Sequence[Sequence[str]]) -> str:
    """Every column padded to its widest cell but the last (the message)."""
    n = len(lines[0]) - 1
    widths = [max(len(row[i]) for row in lines) for i in range(n)]
    return "\n".join("  ".join(col.ljust(w) for col, w in zip(row[:n], widths)) + "  " + row[n]
                     for row in lines)


def run(policy: Policy, fmt: str, inspect_file: str | None, fleet: list[Target] | None = None,
        fail_on: FailOn = ANY_FINDING, compose_file: str | None = None,
        project_name: str | None = None) -> int:
    """One engine (the environment's, or one named): its report, or its error alone.
    Several: one report with the host on every row, an engine that could not be audited
    reported as such (exit status 2 then, after the report). Exit 1 when a finding is
    one ``fail_on`` counts."""
    try:
        if compose_file:  # a compose file's services, as the containers they would be
            data = audit_rows(policy, compose_file, project_name, notes=sys.stderr)
        elif inspect_file:  # saved containers only: no engine to ask about itself or images
            text = sys.stdin.read() if inspect_file == "-" else _read(inspect_file)
            data = rows(policy.decide(c) for c in load_inspect(text, inspect_file))
            if inspect_file != "-":
                data = [{**d, "file": inspect_file} for d in data]
        else:
            fleet = fleet or targets([], [])
            if len(fleet) > 1:
                return _run_fleet(policy, fmt, fleet, fail_on)
            data = audit_engine(policy, fleet[0], sys.stderr if sys.stderr.isatty() else None)
    except (AuditError, FleetError, ComposeError) as e:
        print(f"docker-covenant: error: {e}", file=sys.stderr)
        return ERROR
    sys.stdout.write(render(fmt, data, fail_on, table))
    return VIOLATIONS if fail_on.failing(data) else CLEAN


def audit_engine(policy: Policy, target: Target, progress: TextIO | None = None) -> list[dict[str, Any]]:
    """Every row of one engine, each naming it (``host``)."""
    engine = DockerEngine(host=target.host, tls=target.tls, timeout=10.0)
    if policy.image_scan is not None:  # the images its sections require scanned, each once
        scanner = Scanner(lambda: policy.image_scan, lambda: logging.getLogger("docker-covenant"))
        engine.scan_hook = scan_lookup(scanner, lambda: policy, engine.image, float("inf"))
    found = list(running_containers(engine, progress))
    data = rows(policy.decide(c, lookups) for c, lookups in found)
    data += host_rows(engine, policy.host_settings(), [c for c, _ in found])
    return [{"host": target.label, **d} for d in data]


def _run_fleet(policy: Policy, fmt: str, fleet: list[Target], fail_on: FailOn) -> int:
    def one(target: Target) -> list[dict[str, Any]]:
        try:
            return audit_engine(policy, target)
        except AuditError as e:
            return [{"host": target.label, "kind": "engine", "id": "", "name": target.label, "image": "",
                     "error": str(e), "violations": [], "waived": []}]

    with ThreadPoolExecutor(min(len(fleet), 8)) as pool:
        data = [row for found in pool.map(one, fleet) for row in found]
    sys.stdout.write(render(fmt, data, fail_on, lambda d: fleet_table(d, fleet)))
    if any(d.get("error") for d in data):
        return ERROR
    return VIOLATIONS if fail_on.failing(data) else CLEAN


def fleet_table(data: Sequence[Mapping[str, Any]], fleet: list[Target]) -> str:
    """One table for every engine: the host first on each finding, then a line per engine."""
    findings = [(d["host"], f"{d.get('kind', 'container')} {d['name']}", v["check"], v["cis"] or "-",
                 v["message"]) for d in data for v in d["violations"]]
    text = _columns([("HOST", "WHAT", "CHECK", "CIS", "MESSAGE"), *findings]) + "\n\n" if findings else ""
    for target in fleet:
        mine = [d for d in data if d["host"] == target.label]
        error = next((d["error"] for d in mine if d.get("error")), None)
        if error:
            text += f"{target.label}: not audited: {error}\n"
            continue
        containers = [d for d in mine if d.get("kind", "container") == "container"]
        bad = sum(1 for d in mine if d["violations"])
        text += f"{target.label}: {len(containers)} containers, " + (
            f"{bad} violating (containers, daemon or images)\n" if bad else "all compliant\n")
    return text


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise AuditError(f"{path}: {e.strerror}") from None


def catalogue() -> str:
    """``docker-covenant checks``: the catalogue as a table."""
    lines = [("ID", "CIS", "SEVERITY", "KEY", "PROFILES", "TITLE")]
    for c in CATALOGUE:
        title = c.title
        if SETTINGS[c.key].kind == "list":
            on = ["when set"]
            title += f" [default: {SETTINGS[c.key].default}]"
        else:
            on = [p for p, keys in PROFILES.items() if c.key in ORIGINAL_KEYS or c.key in keys]
        lines.append((c.id, c.cis or "-", c.severity, c.key, ",".join(on) or "when set", title))
    for u in USAGE_CHECKS:  # sampled by the daemon while usage_interval is set
        lines.append((u.id, "-", u.severity, u.key, "when set", u.title + " [daemon, usage_interval]"))
    plugin = RULES["CV030"]
    lines.append((plugin.id, "-", plugin.severity, plugin.key, "when set",
                  plugin.title + " [authorization plugin, managed plugins]"))
    host = [("ID", "CIS", "SEVERITY", "KEY", "PROFILES", "TITLE")]
    for h in HOST_CATALOGUE:
        on = [p for p, keys in HOST_PROFILES.items() if h.key in keys]
        host.append((h.id, h.cis, h.severity, h.key, ",".join(on) or "-", f"{h.title} [{h.scope}]"))
    return (_columns(lines) + "\n\nDaemon and image checks (audit only; host_audit keys):\n"
            + _columns(host) + "\n")
