"""Inspect-shaped containers built from what a request asks for, for ``Policy.decide``.

The checks read ``docker inspect`` output; a request is turned into the same shape so that
one evaluator serves every entry point. Everything here is pure.
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Iterable
from typing import Any

from .. import reach
from .gojson import plain
from .route import version_less


def container_of_create(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The configuration dockerd stores for a decoded create body (runconfig's
    ``getHostConfig``: the inner HostConfig, else the deprecated top-level fields; a few
    top-level resource fields fill an unset inner one; ``Cpuset`` fills CpusetCpus).
    No ``Mounts``/``AppArmorProfile`` yet: the checks judge the requested options."""
    body = plain(body)
    config = body.get("*Config") or {}
    top, inner = body.get("*HostConfig"), body.get("HostConfig")
    hc: dict[str, Any] = dict(inner if inner is not None else top or {})
    if inner is not None and top is not None:
        for key, empty in (("Memory", 0), ("MemorySwap", 0), ("CpuShares", 0), ("CpusetCpus", ""),
                           ("VolumeDriver", "")):
            if top.get(key, empty) != empty and hc.get(key, empty) == empty:
                hc[key] = top[key]
    if (inner is not None or top is not None) and body.get("Cpuset") and not hc.get("CpusetCpus"):
        hc["CpusetCpus"] = body["Cpuset"]
    if hc.get("Mounts"):
        hc["Mounts"] = reach.widen_volume_mounts(hc["Mounts"])
    return {"Id": "", "Name": "/" + name.lstrip("/"),
            "Config": {"Image": config.get("Image", ""), "User": config.get("User", ""),
                       "Labels": config.get("Labels") or {}, "Healthcheck": config.get("Healthcheck")},
            "HostConfig": hc}


def for_start(inspect: dict[str, Any]) -> dict[str, Any]:
    """A stored container as the policy judges it at start: its AppArmor profile is only
    chosen by the start itself, so judge the requested option (as at create)."""
    return {k: v for k, v in inspect.items() if k != "AppArmorProfile"}


def container_for_exec(inspect: dict[str, Any], privileged: bool, user: str) -> dict[str, Any]:
    """The stored container as an exec process sees it: privileged if the exec is, and as
    the exec's user when it names one (else the container's)."""
    hc = {**(inspect.get("HostConfig") or {})}
    hc["Privileged"] = bool(hc.get("Privileged")) or privileged
    config = {**(inspect.get("Config") or {})}
    if user:
        config["User"] = user
    return {**for_start(inspect), "HostConfig": hc, "Config": config}


# Fields ``docker update`` writes into the stored HostConfig, and the value that means
# "leave unchanged" (moby container.UpdateContainer; PidsLimit: nil is unchanged).
UPDATED_FIELDS = (("CpuShares", 0), ("NanoCpus", 0), ("CpuPeriod", 0), ("CpuQuota", 0),
                  ("CpusetCpus", ""), ("CpusetMems", ""), ("Memory", 0), ("MemorySwap", 0),
                  ("MemoryReservation", 0), ("PidsLimit", None))


def container_after_update(inspect: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """The stored container as ``docker update`` would leave it."""
    update = plain(update)
    after = copy.deepcopy(inspect)
    hc = after.setdefault("HostConfig", {})
    for key, unchanged in UPDATED_FIELDS:
        if update.get(key, unchanged) != unchanged:
            hc[key] = update[key]
    restart = update.get("RestartPolicy") or {}
    if restart.get("Name"):
        hc["RestartPolicy"] = {"Name": restart["Name"],
                               "MaximumRetryCount": restart.get("MaximumRetryCount", 0)}
    return for_start(after)


def glob(value: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)


def container_of_service(name: str, spec: dict[str, Any], host_network: bool, api: str) -> dict[str, Any]:
    """A service's task container as dockerd's swarm executor would create it
    (daemon/cluster/executor/container: hostConfig, applyPrivileges, resources), with
    what the request's API version ``api`` drops (router/swarm adjustForAPIVersion). Its
    name is ``SERVICE.SLOT.TASKID``: judged here as ``SERVICE.slot.task``."""
    task = spec.get("TaskTemplate") or {}
    cs = dict(task.get("ContainerSpec") or {})
    limits = dict(((task.get("Resources") or {}).get("Limits")) or {})
    privileges = dict(cs.get("Privileges") or {})
    if version_less(api, "1.41"):
        for key in ("CapabilityAdd", "CapabilityDrop", "Ulimits"):
            cs.pop(key, None)
        limits.pop("Pids", None)
    if version_less(api, "1.40"):
        cs.pop("Sysctls", None)
    if version_less(api, "1.44"):
        for key in ("Seccomp", "AppArmor", "NoNewPrivileges"):
            privileges.pop(key, None)
    hc: dict[str, Any] = {
        "CapAdd": cs.get("CapabilityAdd"), "CapDrop": cs.get("CapabilityDrop"),
        "ReadonlyRootfs": cs.get("ReadOnly", False), "Sysctls": cs.get("Sysctls"), "Init": cs.get("Init"),
        "GroupAdd": cs.get("Groups"), "SecurityOpt": service_security_opts(privileges),
        "Memory": limits.get("MemoryBytes", 0), "NanoCpus": limits.get("NanoCPUs", 0),
        "PidsLimit": limits["Pids"] if limits.get("Pids", 0) > 0 else None, "Ulimits": cs.get("Ulimits"),
        "Mounts": reach.widen_volume_mounts(cs.get("Mounts") or []),
        "PortBindings": service_ports(spec),
    }
    if host_network:
        hc["NetworkMode"] = "host"
    labels = {**(cs.get("Labels") or {}), "com.docker.swarm.service.name": name}
    return {"Id": "", "Name": f"/{name}.slot.task",
            "Config": {"Image": cs.get("Image", ""), "User": cs.get("User", ""), "Labels": labels,
                       "Healthcheck": cs.get("Healthcheck")},
            "HostConfig": hc}


def service_ports(spec: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    """Published ports as bindings on every interface: ``host`` mode ones become the task
    container's PortBindings (executor ``portBindings``), ``ingress`` ones are published
    on every node by the routing mesh."""
    out: dict[str, list[dict[str, str]]] = {}
    for port in (spec.get("EndpointSpec") or {}).get("Ports") or []:
        published = port.get("PublishedPort") or 0
        key = f"{port.get('TargetPort') or 0}/{(port.get('Protocol') or 'tcp').lower()}"
        out.setdefault(key, []).append({"HostIp": "", "HostPort": str(published) if published else ""})
    return out


def service_security_opts(privileges: dict[str, Any]) -> list[str]:
    """The SecurityOpt the executor derives from a service's Privileges."""
    opts = []
    credential = privileges.get("CredentialSpec") or {}
    for key in ("File", "Registry", "Config"):
        if credential.get(key):
            opts.append(f"credentialspec={key.lower()}://{credential[key]}")
    selinux = privileges.get("SELinuxContext") or {}
    if selinux.get("Disable"):
        opts.append("label=disable")
    else:
        opts += [f"label={k.lower()}:{selinux[k]}" for k in ("User", "Role", "Type", "Level")
                 if selinux.get(k)]
    seccomp = (privileges.get("Seccomp") or {}).get("Mode")
    if seccomp == "unconfined":
        opts.append("seccomp=unconfined")
    elif seccomp == "custom":
        opts.append("seccomp=<custom profile>")
    if (privileges.get("AppArmor") or {}).get("Mode") == "disabled":
        opts.append("apparmor=unconfined")
    if privileges.get("NoNewPrivileges"):
        opts.append("no-new-privileges=true")
    return opts


# Moved to the core (covenant/reach.py), which the events daemon and ``audit`` share;
# kept under these names for the plugin's handlers.
volume_sources = reach.volume_sources
widen_volume_mounts = reach.widen_volume_mounts
