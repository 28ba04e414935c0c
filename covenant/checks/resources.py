"""Resources and limits: memory, CPU, PIDs and ulimits, the cgroup the limits live in,
and how often a failing container may be restarted."""

from __future__ import annotations

from .model import Container, Settings
from .reading import _listed, host_config


def _memory(c: Container, s: Settings) -> str | None:
    return "" if s["memory_limit_required"] and not host_config(c).get("Memory") else None


def _cpu(c: Container, s: Settings) -> str | None:
    if not s["cpu_limit_required"]:
        return None
    hc = host_config(c)
    shares = hc.get("CpuShares") or 0
    # CIS 5.11 asks for shares; a CFS quota (--cpus, --cpu-quota > 0) caps CPU time harder.
    # -1 is "no quota"; --cpuset-cpus pins without capping time on the CPUs it lists.
    quota = (hc.get("NanoCpus") or 0) > 0 or (hc.get("CpuQuota") or 0) > 0
    limited = (shares > 0 and shares != 1024) or quota
    return None if limited else ""


def _pids_limit(c: Container, s: Settings) -> str | None:
    limit = host_config(c).get("PidsLimit")
    return "" if s["pids_limit_required"] and (limit is None or limit <= 0) else None


def _ulimits(c: Container, s: Settings) -> str | None:
    names = {str(u.get("Name") or "") for u in host_config(c).get("Ulimits") or []}
    return f": {_listed(names)}" if s["ulimit_override_forbidden"] and names else None


def _cgroup_parent(c: Container, s: Settings) -> str | None:
    parent = host_config(c).get("CgroupParent")
    return f": {parent}" if s["cgroup_parent_forbidden"] and parent else None


def _restart(c: Container, s: Settings) -> str | None:
    if not s["restart_policy_limited"]:
        return None
    policy = host_config(c).get("RestartPolicy") or {}
    name, retries = policy.get("Name") or "no", int(policy.get("MaximumRetryCount") or 0)
    if name in ("always", "unless-stopped"):
        return f" ({name})"
    if name == "on-failure" and not 0 < retries <= 5:
        return f" (on-failure:{retries or 'unlimited'})"
    return None
