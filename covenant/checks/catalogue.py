"""The catalogue: every check with its stable id, CIS item and governing policy key; the
settings a container section takes and the profiles that preset them; and ``evaluate``,
which runs the catalogue over one container."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..reach import Lookups, widen
from .host import _all_interfaces, _devices, _host_namespace, _privileged_ports
from .image import _healthcheck, _image
from .model import Container, Settings, Violation
from .mounts import _bind_prefixes, _docker_socket, _read_only, _sensitive_mounts, _shared_propagation
from .privileges import _cap_add_all, _cap_add_extra, _cap_drop, _privileged, _root_user
from .reading import container_name
from .resources import _cgroup_parent, _cpu, _memory, _pids_limit, _restart, _ulimits
from .scan import _image_scan
from .security import (
    _apparmor,
    _no_new_privileges,
    _proc_unmasked,
    _seccomp_unconfined,
    _security_opt,
    _selinux_disabled,
)


@dataclass(frozen=True)
class Setting:
    """A policy key of a container section: its default and what values it takes."""

    name: str
    default: Any
    kind: str  # "bool", "list", or for usage limits "size", "number", "count", "duration"
    doc: str
    paths: bool = False  # a list of absolute host paths


@dataclass(frozen=True)
class Check:
    """A rule with a stable id (``CVnnn``), its severity, the policy key that governs it and
    the CIS item where one exists. ``violates`` returns None when compliant, else a detail
    (possibly empty) appended to the message."""

    id: str
    title: str
    severity: str  # high, medium or low (SEVERITY_LEVELS): what --fail-on and reports rank
    cis: str | None
    key: str
    violates: Callable[[Container, Settings], str | None]
    message: str  # formatted with ``name`` and ``detail``

    def __call__(self, container: Container, settings: Settings) -> Violation | None:
        detail = self.violates(container, settings)
        if detail is None:
            return None
        return Violation(self.id, self.message.format(name=container_name(container), detail=detail))


CATALOGUE: tuple[Check, ...] = (
    Check("CV001", "Container must not run privileged", "high", "5.4", "privileged",
          _privileged, "{name}: privileged set but not allowed"),
    Check("CV002", "Container must drop all capabilities (--cap-drop=all)", "medium", "5.3",
          "cap_drop_required", _cap_drop, "{name}: all capabilities not dropped"),
    Check("CV003", "Container must carry a security option (--security-opt)", "medium", None,
          "security_opt_required", _security_opt, "{name}: no security options has been set"),
    Check("CV004", "Container must not add capability ALL", "high", "5.3", "privileged",
          _cap_add_all, "{name}: capability ALL has been set"),
    Check("CV005", "AppArmor profile set and not unconfined", "medium", "5.1", "apparmor_required",
          _apparmor, "{name}: no AppArmor profile{detail}"),
    Check("CV006", "No capabilities added beyond Docker's defaults", "medium", "5.3", "no_added_capabilities",
          _cap_add_extra, "{name}: capabilities added{detail}"),
    Check("CV007", "Sensitive host directories not mounted read-write", "high", "5.5",
          "sensitive_mounts_forbidden", _sensitive_mounts, "{name}: sensitive host directory mounted "
          "read-write{detail}"),
    Check("CV008", "No privileged host ports (< 1024)", "low", "5.7", "privileged_ports_forbidden",
          _privileged_ports, "{name}: privileged host port published{detail}"),
    Check("CV009", "Host ports bound to a specific interface", "low", "5.13", "host_ip_required",
          _all_interfaces, "{name}: port published on all host interfaces{detail}"),
    Check("CV010", "Host network namespace not shared", "high", "5.9", "host_network_forbidden",
          _host_namespace("NetworkMode", "host_network_forbidden"),
          "{name}: host network namespace shared{detail}"),
    Check("CV011", "Host PID namespace not shared", "high", "5.15", "host_pid_forbidden",
          _host_namespace("PidMode", "host_pid_forbidden"), "{name}: host PID namespace shared{detail}"),
    Check("CV012", "Host IPC namespace not shared", "medium", "5.16", "host_ipc_forbidden",
          _host_namespace("IpcMode", "host_ipc_forbidden"), "{name}: host IPC namespace shared{detail}"),
    Check("CV013", "Host UTS namespace not shared", "low", "5.20", "host_uts_forbidden",
          _host_namespace("UTSMode", "host_uts_forbidden"), "{name}: host UTS namespace shared{detail}"),
    Check("CV014", "Host user namespace not shared", "medium", "5.30", "host_userns_forbidden",
          _host_namespace("UsernsMode", "host_userns_forbidden"), "{name}: host user namespace shared"),
    Check("CV015", "Memory limit set", "medium", "5.10", "memory_limit_required",
          _memory, "{name}: no memory limit"),
    Check("CV016", "CPU shares or a CPU limit set", "low", "5.11", "cpu_limit_required",
          _cpu, "{name}: no CPU shares or limit"),
    Check("CV017", "Root filesystem read-only", "low", "5.12", "read_only_required",
          _read_only, "{name}: root filesystem not read-only"),
    Check("CV018", "Restart policy on-failure with at most 5 retries", "low", "5.14",
          "restart_policy_limited",
          _restart, "{name}: restart policy not limited{detail}"),
    Check("CV019", "No host devices exposed", "high", "5.17", "host_devices_forbidden",
          _devices, "{name}: host devices exposed{detail}"),
    Check("CV020", "Mount propagation not shared", "medium", "5.19", "shared_propagation_forbidden",
          _shared_propagation, "{name}: shared mount propagation{detail}"),
    Check("CV021", "Seccomp profile not disabled", "high", "5.21", "seccomp_unconfined_forbidden",
          _seccomp_unconfined, "{name}: seccomp unconfined{detail}"),
    Check("CV022", "No custom cgroup parent", "medium", "5.24", "cgroup_parent_forbidden",
          _cgroup_parent, "{name}: cgroup parent set{detail}"),
    Check("CV023", "no-new-privileges set", "medium", "5.25", "no_new_privileges_required",
          _no_new_privileges, "{name}: no-new-privileges not set"),
    Check("CV024", "Health check present", "low", "5.26", "healthcheck_required",
          _healthcheck, "{name}: no health check"),
    Check("CV025", "PIDs limit set", "medium", "5.28", "pids_limit_required",
          _pids_limit, "{name}: no PIDs limit"),
    Check("CV026", "Docker socket not mounted", "high", "5.31", "docker_socket_forbidden",
          _docker_socket, "{name}: Docker socket mounted{detail}"),
    Check("CV027", "Not running as root", "medium", None, "non_root_required",
          _root_user, "{name}: runs as root{detail}"),
    Check("CV028", "Bind mounts only from allowed host paths", "high", None, "bind_mount_prefixes",
          _bind_prefixes, "{name}: bind mount outside the allowed host paths{detail}"),
    Check("CV029", "Image from an allowed reference", "medium", None, "allowed_images",
          _image, "{name}: image not allowed{detail}"),
    # CV030 is the authorization plugin's (managed plugins, covenant/authz/widen.py).
    Check("CV031", "SELinux labelling not disabled (label=disable)", "medium", "5.2",
          "selinux_disable_forbidden",
          _selinux_disabled, "{name}: SELinux labels disabled"),
    Check("CV032", "Default ulimits not overridden (--ulimit)", "low", "5.18", "ulimit_override_forbidden",
          _ulimits, "{name}: ulimits overridden{detail}"),
    Check("CV033", "Kernel paths under /proc masked and read-only (no systempaths=unconfined)", "high", None,
          "proc_unmasked_forbidden", _proc_unmasked, "{name}: /proc paths unmasked{detail}"),
    # CV2xx are usage limits (checks/usage.py), judged on stats, not here.
    Check("CV301", "Image accepted by the vulnerability scanner (image_scan)", "high", None,
          "image_scan_required",
          _image_scan, "{name}: image not accepted by the vulnerability scan{detail}"),
)
CHECKS: Mapping[str, Check] = {c.id: c for c in CATALOGUE}

_B = "bool"
SETTINGS: Mapping[str, Setting] = {s.name: s for s in (
    Setting("privileged", False, _B, "allow --privileged and --cap-add=ALL"),
    Setting("cap_drop_required", True, _B, "require --cap-drop=all"),
    Setting("security_opt_required", True, _B, "require a --security-opt that protects"),
    Setting("apparmor_required", False, _B, "require an AppArmor profile other than unconfined"),
    Setting("no_added_capabilities", False, _B, "forbid --cap-add beyond Docker's default set"),
    Setting("allowed_capabilities", [], "list", "capabilities --cap-add may add anyway"),
    Setting("sensitive_mounts_forbidden", False, _B, "forbid read-write bind mounts that reach /, /boot, "
            "/dev, /etc, /lib, /proc, /sys, /usr (and under them), /var/lib/docker, /root, the engine's "
            "sockets"),
    Setting("sensitive_paths", [], "list", "host paths CV007 treats as sensitive too (and under them)",
            paths=True),
    Setting("privileged_ports_forbidden", False, _B, "forbid publishing host ports below 1024"),
    Setting("host_ip_required", False, _B, "forbid publishing ports on all host interfaces"),
    Setting("host_network_forbidden", False, _B, "forbid --network=host"),
    Setting("host_pid_forbidden", False, _B, "forbid --pid=host"),
    Setting("host_ipc_forbidden", False, _B, "forbid --ipc=host"),
    Setting("host_uts_forbidden", False, _B, "forbid --uts=host"),
    Setting("host_userns_forbidden", False, _B, "forbid --userns=host"),
    Setting("memory_limit_required", False, _B, "require --memory"),
    Setting("cpu_limit_required", False, _B, "require --cpu-shares (not 1024), --cpus or --cpu-quota"),
    Setting("read_only_required", False, _B, "require --read-only"),
    Setting("restart_policy_limited", False, _B, "forbid restart policies other than no or "
            "on-failure with 1-5 retries"),
    Setting("host_devices_forbidden", False, _B, "forbid --device, --device-cgroup-rule, --gpus"),
    Setting("shared_propagation_forbidden", False, _B, "forbid shared/rshared mount propagation"),
    Setting("seccomp_unconfined_forbidden", False, _B, "forbid --security-opt seccomp=unconfined"),
    Setting("cgroup_parent_forbidden", False, _B, "forbid --cgroup-parent"),
    Setting("no_new_privileges_required", False, _B, "require --security-opt no-new-privileges"),
    Setting("healthcheck_required", False, _B, "require a health check (image or --health-cmd)"),
    Setting("pids_limit_required", False, _B, "require --pids-limit"),
    Setting("docker_socket_forbidden", False, _B, "forbid mounting the Docker socket"),
    Setting("non_root_required", False, _B, "forbid running as root (user unset, root, 0, 00, +0)"),
    Setting("bind_mount_prefixes", None, "list", "host paths bind mounts may come from (unset: any)",
            paths=True),
    Setting("allowed_images", None, "list", "image reference globs allowed (unset: any)"),
    Setting("digests_only", False, _B, "require images pinned by digest (@sha256:...)"),
    Setting("selinux_disable_forbidden", False, _B, "forbid --security-opt label=disable"),
    Setting("ulimit_override_forbidden", False, _B, "forbid --ulimit"),
    Setting("proc_unmasked_forbidden", False, _B, "forbid --security-opt systempaths=unconfined "
            "(empty MaskedPaths/ReadonlyPaths)"),
    Setting("image_scan_required", False, _B, "CV301: require the image_scan scanner's verdict "
            "(no finding at or above its severity)"),
    # Usage limits (checks/usage.py), sampled while usage_interval is set: unset is off.
    Setting("memory_usage_max", None, "size", "CV201: memory in use above this (2GiB, 512m, bytes)"),
    Setting("cpu_usage_max", None, "number", "CV202: CPUs in use above this (1.5 is one and a half)"),
    Setting("pids_usage_max", None, "count", "CV203: processes above this"),
    Setting("usage_for", 60.0, "duration", "how long usage stays above a limit before it counts "
            "(90, 30s, 5m, 1h)"),
)}
DEFAULTS: Mapping[str, Any] = {name: s.default for name, s in SETTINGS.items()}
ORIGINAL_KEYS = ("privileged", "cap_drop_required", "security_opt_required")

# Profiles set defaults; sections still override them key by key.
_CIS_ON = {c.key: True for c in CATALOGUE if c.cis and SETTINGS[c.key].kind == _B and c.key != "privileged"}
# What an ordinary non-root service can meet without depending on the host (AppArmor),
# on its image (a health check) or on its operators' sizing (CPU, read-only root).
_STRICT_ON = {key: True for key in (
    "no_added_capabilities", "sensitive_mounts_forbidden", "privileged_ports_forbidden",
    "host_network_forbidden", "host_pid_forbidden", "host_ipc_forbidden", "host_uts_forbidden",
    "host_userns_forbidden", "host_devices_forbidden", "shared_propagation_forbidden",
    "seccomp_unconfined_forbidden", "cgroup_parent_forbidden", "no_new_privileges_required",
    "pids_limit_required", "memory_limit_required", "docker_socket_forbidden", "non_root_required",
    "selinux_disable_forbidden", "proc_unmasked_forbidden")}
PROFILES: Mapping[str, Mapping[str, Any]] = {
    "original": {},
    "cis": {**_CIS_ON, "proc_unmasked_forbidden": True},  # /proc/sys writable walks past 5.x
    "strict": _STRICT_ON,
}


def evaluate(container: Container, settings: Settings, waived: Iterable[str] = (),
             lookups: Lookups | None = None) -> tuple[tuple[Violation, ...], tuple[Violation, ...]]:
    """(violations, waived violations) of one container, in catalogue order, judged on
    what it can reach (``reach.widen``: volumes resolved, borrowed namespaces followed)."""
    waive = set(waived)
    reached = widen(container, lookups)
    found = [v for v in (check(reached, settings) for check in CATALOGUE) if v is not None]
    return (tuple(v for v in found if v.check not in waive), tuple(v for v in found if v.check in waive))
