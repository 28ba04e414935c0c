"""The ``HostConfig`` fields of one service other than its mounts, as compose 2.26 sends
them to dockerd: namespaces (``service:X`` as X's container), restart policy, resources
(``deploy.resources`` over the service's own keys), devices and GPUs, ulimits, health check,
tmpfs and published ports (short syntax as docker/go-connections reads it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .model import Model
from .values import Reader, flag, to_nanoseconds


def service_ref(mode: str, names: Mapping[str, str]) -> str:
    """``service:X`` is the container compose made for X (compose passes its id)."""
    kind, sep, ref = mode.partition(":")
    if sep and kind == "service":
        return f"container:{names.get(ref, ref)}"
    return mode


def network_mode(r: Reader, model: Model, names: Mapping[str, str]) -> str:
    mode = str(r.data.get("network_mode") or "")
    if mode:
        return service_ref(mode, names)
    networks = r.data.get("networks")
    declared: Mapping[str, Any] = model.data.get("networks") or {}
    if isinstance(networks, dict) and networks:
        def priority(key: str) -> tuple[int, str]:
            entry = networks.get(key) or {}
            return (-int(entry.get("priority") or 0) if isinstance(entry, dict) else 0, key)
        first = str(sorted(networks, key=priority)[0])
    elif isinstance(networks, list) and networks:
        first = sorted(str(n) for n in networks)[0]
    else:
        first = "default"
    entry = declared.get(first) or {}
    if isinstance(entry, dict) and entry.get("name"):
        return str(entry["name"])
    if isinstance(entry, dict) and flag(model, entry.get("external"), f"networks.{first}.external"):
        return first
    return f"{model.name}_{first}"


def restart_policy(r: Reader) -> dict[str, Any]:
    def mode(condition: str) -> str:
        return {"none": "no", "no": "no", "on-failure": "on-failure", "unless-stopped": "unless-stopped",
                "any": "always", "always": "always"}.get(condition, condition)

    policy = {"Name": "", "MaximumRetryCount": 0}
    restart = str(r.data.get("restart") or "")
    if restart:
        name, _, count = restart.partition(":")
        policy = {"Name": mode(name), "MaximumRetryCount": int(count) if count.isdigit() else 0}
    deploy = r.data.get("deploy")
    if isinstance(deploy, dict) and isinstance(deploy.get("restart_policy"), dict):
        rp = deploy["restart_policy"]
        policy = {"Name": mode(str(rp.get("condition") or "")),
                  "MaximumRetryCount": r.integer("deploy", rp.get("max_attempts"), "deploy.restart_policy")}
    return policy


def resources(r: Reader) -> dict[str, Any]:
    d = r.data
    out: dict[str, Any] = {
        "CgroupParent": str(d.get("cgroup_parent") or ""),
        "Memory": r.size("mem_limit"),
        "MemorySwap": r.size("memswap_limit"),
        "MemoryReservation": r.size("mem_reservation"),
        "NanoCpus": int(r.number("cpus") * 1e9),
        "CpuShares": r.integer("cpu_shares"),
        "CpuQuota": r.integer("cpu_quota"),
        "CpuPeriod": r.integer("cpu_period"),
        "CpusetCpus": str(d.get("cpuset") or ""),
        "PidsLimit": r.integer("pids_limit") or None,
        "DeviceCgroupRules": r.strings("device_cgroup_rules") or None,
        "Devices": _devices(r) or None,
        "Ulimits": _ulimits(r) or None,
        "DeviceRequests": None,
        "OomKillDisable": r.boolean("oom_kill_disable"),
    }
    deploy = d.get("deploy")
    resources = deploy.get("resources") if isinstance(deploy, dict) else None
    if isinstance(resources, dict):
        limits = resources.get("limits") or {}
        if limits.get("memory"):
            out["Memory"] = r.size("deploy", limits["memory"], "deploy.resources.limits.memory")
        if limits.get("cpus"):
            out["NanoCpus"] = int(r.number("deploy", limits["cpus"], "deploy.resources.limits.cpus") * 1e9)
        if (pids := r.integer("deploy", limits.get("pids"), "deploy.resources.limits.pids")) > 0:
            out["PidsLimit"] = pids
        reservations = resources.get("reservations") or {}
        if reservations.get("memory"):
            out["MemoryReservation"] = r.size("deploy", reservations["memory"],
                                              "deploy.resources.reservations.memory")
        requests = [{"Driver": str(dev.get("driver") or ""), "Count": int(dev.get("count") or 0)
                     if str(dev.get("count")) != "all" else -1,
                     "DeviceIDs": [str(i) for i in dev.get("device_ids") or []] or None,
                     "Capabilities": [[str(c) for c in dev.get("capabilities") or []]],
                     "Options": dev.get("options") or None}
                    for dev in reservations.get("devices") or [] if isinstance(dev, dict)]
        out["DeviceRequests"] = requests or None
    if gpus := _gpus(r):
        out["DeviceRequests"] = [*(out["DeviceRequests"] or []), *gpus]
    return out


def _gpus(r: Reader) -> list[dict[str, Any]]:
    """``gpus`` as compose sends it from 2.27 on (2.26 reads the key but sends nothing):
    one device request each, ``gpu`` among its capabilities; ``all`` is every GPU. Judged
    so whatever compose deploys it (CV019)."""
    value = r.data.get("gpus")
    if value is None:
        return []
    if value == "all":
        value = [{"count": -1}]
    if not isinstance(value, list) or not all(isinstance(g, dict) for g in value):
        raise r.fail("gpus", f"expected `all` or a list of mappings, got {value!r}")
    return [{"Driver": str(g.get("driver") or ""),
             "Count": -1 if str(g.get("count")) == "all" else r.integer("gpus", g.get("count"), "gpus.count"),
             "DeviceIDs": [str(i) for i in g.get("device_ids") or []] or None,
             "Capabilities": [[*(str(c) for c in g.get("capabilities") or []), "gpu"]],
             "Options": g.get("options") or None} for g in value]


def _devices(r: Reader) -> list[dict[str, str]]:
    out = []
    for device in r.data.get("devices") or []:
        if isinstance(device, dict):
            src, dst = str(device.get("source") or ""), str(device.get("target") or "")
            perms = str(device.get("permissions") or "rwm")
        else:
            parts = str(device).split(":")
            src, dst = parts[0], parts[1] if len(parts) > 1 else ""
            perms = parts[2] if len(parts) > 2 else "rwm"
        out.append({"PathOnHost": src, "PathInContainer": dst or src, "CgroupPermissions": perms})
    return out


def _ulimits(r: Reader) -> list[dict[str, Any]]:
    value = r.data.get("ulimits") or {}
    if not isinstance(value, dict):
        raise r.fail("ulimits", "expected a mapping")
    out = []
    for name, limit in sorted(value.items()):
        if isinstance(limit, dict):
            soft = r.integer("ulimits", limit.get("soft"), f"ulimits.{name}")
            hard = r.integer("ulimits", limit.get("hard"), f"ulimits.{name}")
        else:
            soft = hard = r.integer("ulimits", limit, f"ulimits.{name}")
        out.append({"Name": str(name), "Hard": hard, "Soft": soft})
    return out


def healthcheck(r: Reader) -> dict[str, Any] | None:
    check = r.data.get("healthcheck")
    if check is None:
        return None
    if not isinstance(check, dict):
        raise r.fail("healthcheck", "expected a mapping")
    test = check.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    if r.boolean("healthcheck", check.get("disable"), "healthcheck.disable"):
        test = ["NONE"]
    out: dict[str, Any] = {"Test": [str(t) for t in test or []] or None}
    for key, field in (("interval", "Interval"), ("timeout", "Timeout"), ("start_period", "StartPeriod"),
                       ("start_interval", "StartInterval")):
        if check.get(key) is not None:
            try:
                out[field] = to_nanoseconds(check[key])
            except ValueError as e:
                raise r.fail(f"healthcheck.{key}", str(e)) from None
    if check.get("retries") is not None:
        out["Retries"] = r.integer("healthcheck", check["retries"], "healthcheck.retries")
    return out


def tmpfs(r: Reader) -> dict[str, str]:
    out = {}
    for entry in r.strings("tmpfs"):
        target, _, options = entry.partition(":")
        out[target] = options
    return out


# -- ports ---------------------------------------------------------------------------------------

def ports(r: Reader) -> dict[str, list[dict[str, str]]]:
    """``HostConfig.PortBindings`` as compose builds it: one binding per published port,
    short syntax expanded as docker/go-connections reads it (ranges pairwise)."""
    bindings: dict[str, list[dict[str, str]]] = {}
    for entry in r.data.get("ports") or []:
        for target, published, host_ip, protocol in _port(r, entry):
            bindings.setdefault(f"{target}/{protocol}", []).append({"HostIp": host_ip, "HostPort": published})
    return bindings


def _port(r: Reader, entry: Any) -> list[tuple[int, str, str, str]]:
    if isinstance(entry, dict):
        target = r.integer("ports", entry.get("target"), "ports.target")
        published = entry.get("published")
        return [(target, "" if published is None else str(published), str(entry.get("host_ip") or ""),
                 str(entry.get("protocol") or "tcp"))]
    text, _, protocol = str(entry).partition("/")
    protocol = protocol or "tcp"
    host_ip = ""
    if text.startswith("["):  # [::1]:8080:80
        end = text.find("]")
        host_ip, text = text[1:end], text[end + 2:]
        host, _, container = text.rpartition(":")
    else:
        parts = text.split(":")
        if len(parts) > 3:
            raise r.fail("ports", f"invalid port {entry!r}")
        container = parts[-1]
        host = parts[-2] if len(parts) > 1 else ""
        host_ip = parts[0] if len(parts) == 3 else ""
    try:
        first, last = _range(container)
        if host and "-" in container:
            host_first, host_last = _range(host)
            if host_last - host_first != last - first:
                raise ValueError
            return [(first + n, str(host_first + n), host_ip, protocol) for n in range(last - first + 1)]
        return [(p, host, host_ip, protocol) for p in range(first, last + 1)]
    except ValueError:
        raise r.fail("ports", f"invalid port {entry!r}") from None


def _range(text: str) -> tuple[int, int]:
    first, _, last = text.partition("-")
    return int(first), int(last or first)
