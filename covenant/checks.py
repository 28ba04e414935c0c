"""The check catalogue: pure functions from a container's configuration to violations.

Every check reads the plain ``docker inspect`` dictionary of one container and the
settings that the policy resolved for that container. Nothing here talks to Docker or
logs: the same functions serve the events path, the start-up sweep, ``audit`` and the
authorization plugin, so a decision can be reproduced from recorded JSON.

CIS numbers are those of the CIS Docker Benchmark v1.3.1, section 5 (container runtime).
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .reach import Lookups, clean_path, is_under, mounts, reaches, widen

Container = Mapping[str, Any]
Settings = Mapping[str, Any]

# Options that name a security mechanism only to switch it off: a container
# carrying nothing but these has no security option worth the name.
# (A bare ``disable`` is ``label=disable`` to dockerd; ``writable-cgroups`` only weakens.)
DISABLING_SECURITY_OPTS = frozenset(
    {"seccomp=unconfined", "apparmor=unconfined", "label=disable", "disable", "systempaths=unconfined",
     "no-new-privileges=false", "writable-cgroups", "writable-cgroups=true"}
)
# Go's strconv.ParseBool, which dockerd applies to ``no-new-privileges=VALUE``; any other
# value makes dockerd refuse the container.
GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
# Docker's default capability set (moby oci/caps/defaults.go).
DOCKER_DEFAULT_CAPS = frozenset(
    {"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
     "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"}
)
# Every capability of Linux before 5.8 (CAP_CHOWN..CAP_AUDIT_READ): adding all of them by
# name is adding ALL, whatever newer ones (PERFMON, BPF, CHECKPOINT_RESTORE) the kernel knows.
ALL_CAPS = frozenset(
    {"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
     "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
     "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
     "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL",
     "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ"}
)
# The engine's own sockets and run directory: a bind of any of them, or of a directory
# holding them (/run, /var/run, /), hands the container the engine.
DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")
ENGINE_PATHS = (*DOCKER_SOCKETS, "/run/docker", "/var/run/docker")
# CIS 5.5's eight and everything under them ("/" only as a bind of "/" itself, which
# reaches everything), the merged-/usr links into /usr, the engine's data, root's home and
# the engine's sockets. A bind reaches a path it contains too: /var reaches /var/lib/docker.
SENSITIVE_HOST_PATHS = ("/", "/boot", "/dev", "/etc", "/lib", "/proc", "/sys", "/usr",
                        "/bin", "/sbin", "/lib32", "/lib64", "/libx32",
                        "/var/lib/docker", "/root", *ENGINE_PATHS)
ROOT_USERS = ("", "root", "0")


@dataclass(frozen=True)
class Violation:
    """One broken rule: the check's stable id and the operator-facing message."""

    check: str
    message: str


@dataclass(frozen=True)
class Setting:
    """A policy key of a container section: its default and what values it takes."""

    name: str
    default: Any
    kind: str  # "bool" or "list"
    doc: str
    paths: bool = False  # a list of absolute host paths


@dataclass(frozen=True)
class Check:
    """A rule with a stable id (``CVnnn``), the policy key that governs it and the CIS
    item where one exists. ``violates`` returns None when compliant, else a detail
    (possibly empty) appended to the message."""

    id: str
    title: str
    cis: str | None
    key: str
    violates: Callable[[Container, Settings], str | None]
    message: str  # formatted with ``name`` and ``detail``

    def __call__(self, container: Container, settings: Settings) -> Violation | None:
        detail = self.violates(container, settings)
        if detail is None:
            return None
        return Violation(self.id, self.message.format(name=container_name(container), detail=detail))


# -- reading the inspect data --------------------------------------------------------------

def container_name(container: Container) -> str:
    """The name as ``docker ps`` shows it (inspect prefixes a slash)."""
    return str(container.get("Name") or container.get("Id", "")[:12]).lstrip("/")


def host_config(container: Container) -> Mapping[str, Any]:
    return container.get("HostConfig") or {}


def config(container: Container) -> Mapping[str, Any]:
    return container.get("Config") or {}


def capability(name: str) -> str:
    """Normalise a capability the way the engine does: any case, ``CAP_`` optional."""
    upper = name.strip().upper()
    return upper[4:] if upper.startswith("CAP_") else upper


def capabilities(values: Iterable[str] | str | None) -> frozenset[str]:
    if values is None:
        return frozenset()
    if isinstance(values, str):
        values = [values]
    return frozenset(capability(v) for v in values)


def normalise_security_opt(option: str) -> str:
    """``seccomp:unconfined`` (the old separator) means ``seccomp=unconfined``."""
    key, sep, value = option.partition("=")
    if not sep:
        key, sep, value = option.partition(":")
    key = key.strip().lower()
    return f"{key}={value.strip().lower()}" if sep else key


def security_opts(container: Container) -> list[str]:
    return [normalise_security_opt(o) for o in host_config(container).get("SecurityOpt") or []]


def split_security_opt(option: str) -> tuple[str, str | None]:
    """(key, value) exactly as dockerd cuts an option (daemon parseSecurityOpt): at the
    first ``=``, else at the first ``:``; no trimming, no case folding."""
    for sep in ("=", ":"):
        if sep in option:
            key, _, value = option.partition(sep)
            return key, value
    return option, None


def no_new_privileges(container: Container) -> bool:
    """Whether dockerd sets no-new-privileges: a bare ``no-new-privileges`` or a value Go's
    ``strconv.ParseBool`` reads as true, the last occurrence winning. A value it cannot
    read makes dockerd refuse the container; here it protects nothing."""
    value = False
    for option in host_config(container).get("SecurityOpt") or []:
        key, raw = split_security_opt(str(option))
        if key == "no-new-privileges":
            value = raw is None or raw in GO_TRUE
    return value


def protective_security_opts(container: Container) -> list[str]:
    """The options that switch a protection on; no-new-privileges counts only when dockerd
    reads it as true."""
    opts = [o for o in security_opts(container) if o not in DISABLING_SECURITY_OPTS
            and not o.startswith(("no-new-privileges", "writable-cgroups"))]
    return opts + (["no-new-privileges"] if no_new_privileges(container) else [])


def labels_disabled(container: Container) -> bool:
    """SELinux labelling switched off: ``label=disable`` (``:`` or ``=``) or a bare ``disable``."""
    return any(o in ("label=disable", "disable") for o in security_opts(container))


def privileged_unless_allowed(c: Container, s: Settings) -> bool:
    """Privileged, and the section does not allow it: then every host device, no seccomp,
    no AppArmor and no /proc masks, whatever the other fields say (moby oci_linux.go)."""
    return bool(host_config(c).get("Privileged")) and not s["privileged"]


def effective_capabilities(container: Container) -> frozenset[str]:
    """Docker's defaults (none after dropping ALL) less the drops, plus the adds."""
    hc = host_config(container)
    drop, add = capabilities(hc.get("CapDrop")), capabilities(hc.get("CapAdd"))
    base = frozenset() if "ALL" in drop else DOCKER_DEFAULT_CAPS - drop
    return base | add


def bind_mounts(container: Container) -> list[Mapping[str, Any]]:
    """Host paths the container gets: bind mounts, and named volumes already resolved to
    the paths they bind (see ``reach``); a configuration not created yet is read from
    ``HostConfig.Binds``/``Mounts``."""
    return [m for m in mounts(container) if m.get("Type") == "bind"]


def host_source(mount: Mapping[str, Any]) -> str:
    """The cleaned host path of a bind, naming the volume it came through if any."""
    source = clean_path(str(mount.get("Source", "")))
    return f"{source} (volume {mount['Name']})" if mount.get("Name") else source


def port_bindings(container: Container) -> list[tuple[str, str, str]]:
    """(container port, host ip, host port) of every published port."""
    out = []
    for port, bindings in (host_config(container).get("PortBindings") or {}).items():
        for b in bindings or []:
            out.append((port, (b or {}).get("HostIp") or "", str((b or {}).get("HostPort") or "")))
    return out


def _listed(items: Iterable[str]) -> str:
    return ", ".join(sorted(items))


# -- the checks ------------------------------------------------------------------------------

def _privileged(c: Container, s: Settings) -> str | None:
    return "" if host_config(c).get("Privileged") and not s["privileged"] else None


def _cap_drop(c: Container, s: Settings) -> str | None:
    missing = s["cap_drop_required"] and "ALL" not in capabilities(host_config(c).get("CapDrop"))
    return "" if missing else None


def _security_opt(c: Container, s: Settings) -> str | None:
    return "" if s["security_opt_required"] and not protective_security_opts(c) else None


def _cap_add_all(c: Container, s: Settings) -> str | None:
    if s["privileged"]:
        return None
    every = "ALL" in capabilities(host_config(c).get("CapAdd")) or effective_capabilities(c) >= ALL_CAPS
    return "" if every else None


def _apparmor(c: Container, s: Settings) -> str | None:
    if not s["apparmor_required"]:
        return None
    if privileged_unless_allowed(c, s):
        return " (unconfined: privileged)"
    profile = c.get("AppArmorProfile")
    opts = [o for o in security_opts(c) if o.startswith("apparmor=")]
    if profile is None:  # not started yet: judge the requested option
        profile = opts[-1].partition("=")[2] if opts else ""
    return f" ({profile or 'none'})" if profile in ("", "unconfined") else None


def _cap_add_extra(c: Container, s: Settings) -> str | None:
    if not s["no_added_capabilities"]:
        return None
    allowed = DOCKER_DEFAULT_CAPS | capabilities(s["allowed_capabilities"] or [])
    extra = capabilities(host_config(c).get("CapAdd")) - allowed - {"ALL"}
    return f": {_listed(extra)}" if extra else None


def _sensitive_mounts(c: Container, s: Settings) -> str | None:
    if not s["sensitive_mounts_forbidden"]:
        return None
    sensitive = (*SENSITIVE_HOST_PATHS, *(s["sensitive_paths"] or []))
    bad = {host_source(m) for m in bind_mounts(c)
           if m.get("RW", True) and any(reaches(str(m.get("Source", "")), p) for p in sensitive)}
    return f": {_listed(bad)}" if bad else None


def _privileged_ports(c: Container, s: Settings) -> str | None:
    if not s["privileged_ports_forbidden"]:
        return None
    bad = {hp for _, _, hp in port_bindings(c) if hp.isdigit() and 0 < int(hp) < 1024}
    return f": {_listed(bad)}" if bad else None


def _all_interfaces(c: Container, s: Settings) -> str | None:
    if not s["host_ip_required"]:
        return None
    bad = {port for port, ip, _ in port_bindings(c) if ip in ("", "0.0.0.0", "::")}
    return f": {_listed(bad)}" if bad else None


def _host_namespace(field: str, key: str) -> Callable[[Container, Settings], str | None]:
    """``field`` is ``host``, directly or through the container it borrows the namespace of."""
    def check(c: Container, s: Settings) -> str | None:
        if not s[key] or str(host_config(c).get(field) or "") != "host":
            return None
        via = (c.get("Borrowed") or {}).get(field)
        return f" (through container {via})" if via else ""
    return check


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


def _read_only(c: Container, s: Settings) -> str | None:
    return "" if s["read_only_required"] and not host_config(c).get("ReadonlyRootfs") else None


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


def _devices(c: Container, s: Settings) -> str | None:
    if not s["host_devices_forbidden"]:
        return None
    hc = host_config(c)
    devices = {d.get("PathOnHost", "") for d in hc.get("Devices") or []}
    devices |= {f"cgroup rule '{r}'" for r in hc.get("DeviceCgroupRules") or []}
    devices |= {f"device request {r.get('Driver') or 'default'}" for r in hc.get("DeviceRequests") or []}
    if privileged_unless_allowed(c, s):
        devices.add("all (privileged)")
    return f": {_listed(devices)}" if devices else None


def _shared_propagation(c: Container, s: Settings) -> str | None:
    if not s["shared_propagation_forbidden"]:
        return None
    bad = {m.get("Destination", "") for m in bind_mounts(c) if m.get("Propagation") in ("shared", "rshared")}
    return f": {_listed(bad)}" if bad else None


def _seccomp_unconfined(c: Container, s: Settings) -> str | None:
    if not s["seccomp_unconfined_forbidden"]:
        return None
    if privileged_unless_allowed(c, s):
        return " (privileged)"
    return "" if "seccomp=unconfined" in security_opts(c) else None


def _cgroup_parent(c: Container, s: Settings) -> str | None:
    parent = host_config(c).get("CgroupParent")
    return f": {parent}" if s["cgroup_parent_forbidden"] and parent else None


def _no_new_privileges(c: Container, s: Settings) -> str | None:
    if not s["no_new_privileges_required"]:
        return None
    return None if no_new_privileges(c) else ""


def _healthcheck(c: Container, s: Settings) -> str | None:
    if not s["healthcheck_required"]:
        return None
    test = (config(c).get("Healthcheck") or {}).get("Test") or []
    return "" if not test or test[0] == "NONE" else None


def _pids_limit(c: Container, s: Settings) -> str | None:
    limit = host_config(c).get("PidsLimit")
    return "" if s["pids_limit_required"] and (limit is None or limit <= 0) else None


def _docker_socket(c: Container, s: Settings) -> str | None:
    if not s["docker_socket_forbidden"]:
        return None
    found = {host_source(m) for m in bind_mounts(c) if _is_docker_socket(m)}
    return f": {_listed(found)}" if found else None


def _is_docker_socket(mount: Mapping[str, Any]) -> bool:
    """The engine's socket or run directory, or a directory holding them, or anything
    named ``docker.sock``, or a bind onto the container's own socket path."""
    source, target = clean_path(mount.get("Source", "")), clean_path(mount.get("Destination", ""))
    return (any(reaches(source, p) for p in ENGINE_PATHS) or target in DOCKER_SOCKETS
            or posixpath.basename(source) == "docker.sock")


def _root_user(c: Container, s: Settings) -> str | None:
    if not s["non_root_required"]:
        return None
    user = str(config(c).get("User") or "").partition(":")[0].strip()
    return f" ({user or 'user unset'})" if is_root(user) else None


def is_root(user: str) -> bool:
    """The user part of ``--user`` names root: unset, ``root``, or a number Go's
    ``strconv.Atoi`` reads as 0 (``0``, ``00``, ``+0``, ``-0``), as runc's user lookup does."""
    return user in ROOT_USERS or (re.fullmatch(r"[+-]?[0-9]+", user) is not None and int(user) == 0)


def _bind_prefixes(c: Container, s: Settings) -> str | None:
    prefixes = s["bind_mount_prefixes"]
    if prefixes is None:
        return None
    bad = {host_source(m) for m in bind_mounts(c)
           if not any(is_under(str(m.get("Source", "")), p) for p in prefixes)}
    return f": {_listed(bad)}" if bad else None


def _selinux_disabled(c: Container, s: Settings) -> str | None:
    """An asked-for ``label=disable``. dockerd adds it itself to a privileged, ``--pid=host``
    or ``--ipc=host`` container (moby daemon/create.go), which CV001/CV011/CV012 judge."""
    hc = host_config(c)
    engine_added = hc.get("Privileged") or "host" in (hc.get("PidMode"), hc.get("IpcMode"))
    return "" if s["selinux_disable_forbidden"] and not engine_added and labels_disabled(c) else None


def _ulimits(c: Container, s: Settings) -> str | None:
    names = {str(u.get("Name") or "") for u in host_config(c).get("Ulimits") or []}
    return f": {_listed(names)}" if s["ulimit_override_forbidden"] and names else None


def _proc_unmasked(c: Container, s: Settings) -> str | None:
    """``systempaths=unconfined`` (the CLI sends ``MaskedPaths: []``, ``ReadonlyPaths: []``)
    or a privileged container: /proc/sys writable, /proc/kcore and the rest readable. A
    configuration that leaves them unset (null) gets dockerd's defaults."""
    if not s["proc_unmasked_forbidden"]:
        return None
    if privileged_unless_allowed(c, s):
        return ": all (privileged)"
    hc, bad = host_config(c), set()
    readonly, masked = hc.get("ReadonlyPaths"), hc.get("MaskedPaths")
    if readonly is not None and not any(is_under("/proc/sys", p) for p in readonly):
        bad.add("/proc/sys writable")
    if masked is not None and not any(is_under("/proc/kcore", p) for p in masked):
        bad.add("/proc/kcore unmasked")
    return f": {_listed(bad)}" if bad else None


def _image(c: Container, s: Settings) -> str | None:
    patterns, digests_only = s["allowed_images"], s["digests_only"]
    image = str(config(c).get("Image") or "")
    if digests_only and "@sha256:" not in image:
        return f" ({image}: not pinned by digest)"
    if patterns is not None and not any(fnmatch.fnmatchcase(image, p) for p in patterns):
        return f" ({image})"
    return None


CATALOGUE: tuple[Check, ...] = (
    Check("CV001", "Container must not run privileged", "5.4", "privileged",
          _privileged, "{name}: privileged set but not allowed"),
    Check("CV002", "Container must drop all capabilities (--cap-drop=all)", "5.3",
          "cap_drop_required", _cap_drop, "{name}: all capabilities not dropped"),
    Check("CV003", "Container must carry a security option (--security-opt)", None,
          "security_opt_required", _security_opt, "{name}: no security options has been set"),
    Check("CV004", "Container must not add capability ALL", "5.3", "privileged",
          _cap_add_all, "{name}: capability ALL has been set"),
    Check("CV005", "AppArmor profile set and not unconfined", "5.1", "apparmor_required",
          _apparmor, "{name}: no AppArmor profile{detail}"),
    Check("CV006", "No capabilities added beyond Docker's defaults", "5.3", "no_added_capabilities",
          _cap_add_extra, "{name}: capabilities added{detail}"),
    Check("CV007", "Sensitive host directories not mounted read-write", "5.5",
          "sensitive_mounts_forbidden", _sensitive_mounts, "{name}: sensitive host directory mounted "
          "read-write{detail}"),
    Check("CV008", "No privileged host ports (< 1024)", "5.7", "privileged_ports_forbidden",
          _privileged_ports, "{name}: privileged host port published{detail}"),
    Check("CV009", "Host ports bound to a specific interface", "5.13", "host_ip_required",
          _all_interfaces, "{name}: port published on all host interfaces{detail}"),
    Check("CV010", "Host network namespace not shared", "5.9", "host_network_forbidden",
          _host_namespace("NetworkMode", "host_network_forbidden"),
          "{name}: host network namespace shared{detail}"),
    Check("CV011", "Host PID namespace not shared", "5.15", "host_pid_forbidden",
          _host_namespace("PidMode", "host_pid_forbidden"), "{name}: host PID namespace shared{detail}"),
    Check("CV012", "Host IPC namespace not shared", "5.16", "host_ipc_forbidden",
          _host_namespace("IpcMode", "host_ipc_forbidden"), "{name}: host IPC namespace shared{detail}"),
    Check("CV013", "Host UTS namespace not shared", "5.20", "host_uts_forbidden",
          _host_namespace("UTSMode", "host_uts_forbidden"), "{name}: host UTS namespace shared{detail}"),
    Check("CV014", "Host user namespace not shared", "5.30", "host_userns_forbidden",
          _host_namespace("UsernsMode", "host_userns_forbidden"), "{name}: host user namespace shared"),
    Check("CV015", "Memory limit set", "5.10", "memory_limit_required",
          _memory, "{name}: no memory limit"),
    Check("CV016", "CPU shares or a CPU limit set", "5.11", "cpu_limit_required",
          _cpu, "{name}: no CPU shares or limit"),
    Check("CV017", "Root filesystem read-only", "5.12", "read_only_required",
          _read_only, "{name}: root filesystem not read-only"),
    Check("CV018", "Restart policy on-failure with at most 5 retries", "5.14", "restart_policy_limited",
          _restart, "{name}: restart policy not limited{detail}"),
    Check("CV019", "No host devices exposed", "5.17", "host_devices_forbidden",
          _devices, "{name}: host devices exposed{detail}"),
    Check("CV020", "Mount propagation not shared", "5.19", "shared_propagation_forbidden",
          _shared_propagation, "{name}: shared mount propagation{detail}"),
    Check("CV021", "Seccomp profile not disabled", "5.21", "seccomp_unconfined_forbidden",
          _seccomp_unconfined, "{name}: seccomp unconfined{detail}"),
    Check("CV022", "No custom cgroup parent", "5.24", "cgroup_parent_forbidden",
          _cgroup_parent, "{name}: cgroup parent set{detail}"),
    Check("CV023", "no-new-privileges set", "5.25", "no_new_privileges_required",
          _no_new_privileges, "{name}: no-new-privileges not set"),
    Check("CV024", "Health check present", "5.26", "healthcheck_required",
          _healthcheck, "{name}: no health check"),
    Check("CV025", "PIDs limit set", "5.28", "pids_limit_required",
          _pids_limit, "{name}: no PIDs limit"),
    Check("CV026", "Docker socket not mounted", "5.31", "docker_socket_forbidden",
          _docker_socket, "{name}: Docker socket mounted{detail}"),
    Check("CV027", "Not running as root", None, "non_root_required",
          _root_user, "{name}: runs as root{detail}"),
    Check("CV028", "Bind mounts only from allowed host paths", None, "bind_mount_prefixes",
          _bind_prefixes, "{name}: bind mount outside the allowed host paths{detail}"),
    Check("CV029", "Image from an allowed reference", None, "allowed_images",
          _image, "{name}: image not allowed{detail}"),
    # CV030 is the authorization plugin's (managed plugins, covenant/authz/widen.py).
    Check("CV031", "SELinux labelling not disabled (label=disable)", "5.2", "selinux_disable_forbidden",
          _selinux_disabled, "{name}: SELinux labels disabled"),
    Check("CV032", "Default ulimits not overridden (--ulimit)", "5.18", "ulimit_override_forbidden",
          _ulimits, "{name}: ulimits overridden{detail}"),
    Check("CV033", "Kernel paths under /proc masked and read-only (no systempaths=unconfined)", None,
          "proc_unmasked_forbidden", _proc_unmasked, "{name}: /proc paths unmasked{detail}"),
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
