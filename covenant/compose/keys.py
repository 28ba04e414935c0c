"""Which compose keys are judged, which change nothing a check reads, and the refusal of
every other: a key compose may act on that is not judged makes the file one that cannot be
judged (exit status 2), never a pass with a note."""

from __future__ import annotations

from typing import Any

from .model import ComposeError, LineDict, Model

# The keys mapped into the container (each read by convert, hostconfig or mounts).
JUDGED = frozenset({
    "privileged", "cap_add", "cap_drop", "security_opt", "volumes", "tmpfs", "network_mode", "pid", "ipc",
    "uts", "userns_mode", "cgroup", "cgroup_parent", "user", "read_only", "mem_limit", "memswap_limit",
    "mem_reservation", "cpus", "cpu_shares", "cpu_quota", "cpu_period", "cpuset", "pids_limit", "deploy",
    "ulimits", "healthcheck", "restart", "devices", "device_cgroup_rules", "ports", "sysctls", "labels",
    "init", "shm_size", "image", "build", "container_name", "volumes_from", "secrets", "configs", "scale",
    "group_add", "runtime", "oom_kill_disable", "volume_driver", "gpus",
})
# Keys compose understands that change nothing any check reads: what runs, its environment,
# names and addresses on compose's networks, logging, start order.
NO_EFFECT = frozenset({
    "command", "entrypoint", "environment", "env_file", "working_dir", "hostname", "domainname", "expose",
    "networks", "dns", "dns_search", "dns_opt", "extra_hosts", "logging", "stop_signal", "stop_grace_period",
    "tty", "stdin_open", "profiles", "depends_on", "links", "external_links", "mac_address", "annotations",
    "platform", "pull_policy", "develop", "attach", "oom_score_adj", "mem_swappiness", "labels_file",
    # resources no check reads, and Windows' own (dockerd on Linux refuses other values)
    "blkio_config", "cpu_count", "cpu_percent", "cpu_rt_period", "cpu_rt_runtime", "storage_opt",
    "credential_spec", "isolation",
})
# Top-level keys: ``include`` (other files' services) is the one compose acts on that is not read.
TOP_LEVEL = frozenset({"version", "name", "services", "volumes", "networks", "secrets", "configs"})
DEPLOY_READ = frozenset({"resources", "restart_policy", "replicas"})
DEPLOY_NO_EFFECT = frozenset({"mode", "placement", "update_config", "rollback_config", "endpoint_mode",
                              "labels"})


def not_judged(model: Model) -> list[str]:
    """``service.key`` of every key that is neither judged nor known to change nothing a
    check reads: compose may act on it (``extends``, ``include``, a key of a newer
    compose), so :func:`convert` refuses the file. Extension keys (``x-...``) are compose's
    own comments."""
    return [label for label, _ in _not_judged(model)]


def _not_judged(model: Model) -> list[tuple[str, int | None]]:
    def line(data: Any, key: str) -> int | None:
        return data.line_of(key) if isinstance(data, LineDict) else None

    found = [(f"{key} (top level)", line(model.data, key)) for key in model.data
             if key not in TOP_LEVEL and not str(key).startswith("x-")]
    for service, data in (model.data.get("services") or {}).items():
        for key in data:
            if str(key).startswith("x-") or key in JUDGED or key in NO_EFFECT:
                continue
            found.append((f"{service}.{key}", line(data, key)))
        deploy = data.get("deploy")
        if isinstance(deploy, dict):
            found += [(f"{service}.deploy.{k}", line(data, "deploy")) for k in deploy
                      if k not in DEPLOY_READ | DEPLOY_NO_EFFECT]
    return found


def refuse_not_judged(model: Model) -> None:
    """Fail closed: a key that may change the container but is not judged makes the file
    one that cannot be judged (exit status 2), never a pass with a note."""
    found = _not_judged(model)
    if not found:
        return
    labels = [label for label, _ in found]
    resolved_by_compose = any(label.endswith((".extends", "include (top level)")) for label in labels)
    hint = (" (compose itself resolves `extends` and `include`: with `docker compose` or docker-compose v2 "
            "on PATH they are judged)" if resolved_by_compose and not model.tool else "")
    raise ComposeError(model.path, found[0][1], f"not judged, and compose may change the container with it: "
                       f"{', '.join(labels)}{hint}")
