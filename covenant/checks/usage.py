"""Usage limits: what a running container uses (memory, CPU, processes), read from the
engine's stats, against the limits its policy section sets, for longer than it allows.

Configuration checks judge what a container *may* do; these judge what it *does*, so they
need time: a container is over a limit only when every sample over a whole ``usage_for``
window was above it (a spike is not a violation). The functions here are pure: the shell
samples ``GET /containers/{id}/stats?stream=false&one-shot=true`` and hands each sample,
the previous one and what was above since when; they answer with the new state and the
violations. Nothing here talks to Docker or keeps time of its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .model import Settings, Violation

UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2,
         "g": 1024**3, "gb": 1024**3, "gib": 1024**3, "t": 1024**4, "tb": 1024**4, "tib": 1024**4}
SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")
DURATION_UNITS = {None: 1, "s": 1, "m": 60, "h": 3600}


def parse_size(value: Any) -> int | None:
    """Bytes from ``2GiB``, ``512m``, ``1.5g`` or a whole number; binary units, as
    ``docker run --memory`` reads them. None when it is not a size."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if not isinstance(value, str):
        return None
    match = SIZE.match(value)
    if not match or match.group(2).lower() not in UNITS:
        return None
    size = int(float(match.group(1)) * UNITS[match.group(2).lower()])
    return size if size > 0 else None


def parse_duration(value: Any) -> float | None:
    """Seconds from ``90``, ``30s``, ``5m`` or ``1h``; None when it is not a duration."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value >= 0 else None
    if not isinstance(value, str):
        return None
    match = DURATION.match(value)
    if not match:
        return None
    return float(match.group(1)) * DURATION_UNITS[match.group(2)]


def human_size(size: float) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{int(size)} B"


@dataclass(frozen=True)
class Sample:
    """One reading of a container's stats, at a time on the sampler's monotonic clock."""

    at: float
    memory: int | None  # bytes in use, the page cache that can be dropped left out
    cpu_ns: int | None  # total CPU time used since the container started, nanoseconds
    pids: int | None
    read: float | None = None  # when dockerd read the cgroup (its ``read``), epoch seconds


def sample(stats: Mapping[str, Any], at: float) -> Sample:
    """Read the engine's stats as ``docker stats`` does: memory is usage less inactive
    file pages (cgroup v1 ``total_inactive_file``, v2 ``inactive_file``)."""
    mem = stats.get("memory_stats") or {}
    usage = mem.get("usage")
    memory = None
    if isinstance(usage, int):
        inner = mem.get("stats") or {}
        cache = inner.get("total_inactive_file", inner.get("inactive_file", 0))
        memory = usage - cache if isinstance(cache, int) and 0 <= cache < usage else usage
    cpu = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
    pids = (stats.get("pids_stats") or {}).get("current")
    return Sample(at, memory, cpu if isinstance(cpu, int) else None, pids if isinstance(pids, int) else None,
                  _read_time(stats.get("read")))


def _read_time(text: Any) -> float | None:
    """dockerd's ``read`` (RFC 3339, nanoseconds, UTC) as epoch seconds; None if absent."""
    if not isinstance(text, str) or not text.endswith("Z") or text.startswith("0001-"):
        return None
    whole, _, fraction = text[:-1].partition(".")
    try:
        seconds = datetime.fromisoformat(whole).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None
    digits = fraction[:9]
    return seconds + (int(digits) / 10 ** len(digits) if digits.isdigit() else 0.0)


def _memory(prev: Sample | None, cur: Sample) -> float | None:
    return None if cur.memory is None else float(cur.memory)


def _cpu(prev: Sample | None, cur: Sample) -> float | None:
    """CPUs in use between two samples (1.0 is one CPU busy all the time), over the time
    between dockerd's reads of the cgroup where it gives them (20.10 answers at its
    collector's tick, not when asked), else between the samples."""
    if prev is None or prev.cpu_ns is None or cur.cpu_ns is None:
        return None
    elapsed = cur.read - prev.read if cur.read is not None and prev.read is not None else cur.at - prev.at
    if elapsed <= 0:
        return None
    return max(cur.cpu_ns - prev.cpu_ns, 0) / 1e9 / elapsed


def _pids(prev: Sample | None, cur: Sample) -> float | None:
    return None if cur.pids is None else float(cur.pids)


@dataclass(frozen=True)
class UsageCheck:
    """A usage limit with a stable id; ``key`` is the section setting that sets it."""

    id: str
    title: str
    key: str
    measure: Callable[[Sample | None, Sample], float | None]
    show: Callable[[float], str]
    severity: str = "medium"  # a workload over its budget hurts its neighbours, not the host's integrity

    def limit(self, settings: Settings) -> float | None:
        value = settings.get(self.key)
        return None if value is None else float(value)


USAGE_CHECKS: tuple[UsageCheck, ...] = (
    UsageCheck("CV201", "Memory in use within the section's memory_usage_max", "memory_usage_max",
               _memory, human_size),
    UsageCheck("CV202", "CPU in use within the section's cpu_usage_max (CPUs)", "cpu_usage_max",
               _cpu, lambda v: f"{v:.2f} CPUs"),
    UsageCheck("CV203", "Processes within the section's pids_usage_max", "pids_usage_max",
               _pids, lambda v: f"{int(v)} processes"),
)
USAGE_KEYS = tuple(c.key for c in USAGE_CHECKS)


def limited(settings: Settings) -> bool:
    """Whether any usage limit applies: only those containers are sampled."""
    return any(settings.get(key) is not None for key in USAGE_KEYS)


def judge_usage(name: str, settings: Settings, since: Mapping[str, float], prev: Sample | None,
                cur: Sample) -> tuple[dict[str, float], tuple[Violation, ...]]:
    """(since, violations): ``since`` maps each check now above its limit to the time of the
    first sample of the current run above it; a check is violated once that run has lasted
    ``usage_for`` seconds. A sample at or below the limit ends the run; a sample that cannot
    be read (None) neither ends nor extends it."""
    window = float(settings.get("usage_for") or 0)
    above: dict[str, float] = {}
    found: list[Violation] = []
    for check in USAGE_CHECKS:
        limit = check.limit(settings)
        if limit is None:
            continue
        value = check.measure(prev, cur)
        if value is None:
            if check.id in since:
                above[check.id] = since[check.id]
            continue
        if value <= limit:
            continue
        start = since.get(check.id, prev.at if prev is not None and check.id == "CV202" else cur.at)
        above[check.id] = start
        lasted = cur.at - start
        if lasted >= window:
            found.append(Violation(check.id, f"{name}: {check.show(value)} in use, above the limit of "
                                   f"{check.show(limit)} for {lasted:.0f} s (usage_for {window:g} s)"))
    return above, tuple(found)
