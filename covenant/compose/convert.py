"""A compose service as the container compose v2 would create: ``docker inspect``-shaped
data (``Name``, ``Config``, ``HostConfig``) and the :class:`~covenant.reach.Lookups` the
engine would answer about what it references, so ``Policy.decide`` judges it exactly as
it judges a running container.

Each field is mapped as compose v2 (2.26, ``pkg/compose/create.go``) sends it to dockerd:
short-syntax binds as ``HostConfig.Binds`` strings, long-syntax binds, volumes and tmpfs
as ``HostConfig.Mounts``, ``deploy.resources.limits`` over ``mem_limit``/``cpus``/
``pids_limit``, ``deploy.restart_policy`` over ``restart``, ``systempaths=unconfined``
taken out of ``SecurityOpt`` and sent as empty ``MaskedPaths``/``ReadonlyPaths``,
``service:X`` as ``container:<X's container>``. Both shapes are read: the file as written
(short syntax) and compose's normalised ``config --format json``. What compose cannot tell
from the file -- the image's own ``USER``, ``HEALTHCHECK`` and labels, which dockerd merges
in at create -- is not known here: a service is judged on what the file sets.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..reach import Lookups, bind_sources, mounts
from .loading import ComposeError, LineDict, Model

SEPARATOR = "-"  # compose v2 (v1 used "_")
# The keys mapped into the container (each read below).
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
UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
DURATION = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")
DURATION_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9,
               "h": 3600 * 10**9}


_UNSET: Any = object()  # a value not given: read the key's own


@dataclass(frozen=True)
class ComposeService:
    """One container a service would create: the service's name, the container's name
    (``<project>-<service>-<n>`` or ``container_name``), its ``docker inspect``-shaped data
    and the engine's answers about the volumes and services it references (None when it
    references none)."""

    service: str
    name: str
    container: Mapping[str, Any]
    lookups: Lookups | None


class _Reader:
    """Reads one service's values, failing with the file and line of the service."""

    def __init__(self, model: Model, service: str, data: Mapping[str, Any]) -> None:
        self.model, self.service, self.data = model, service, data

    def line(self, key: str = "") -> int | None:
        if isinstance(self.data, LineDict):
            return self.data.line_of(key) if key else self.data.line
        return None

    def fail(self, key: str, message: str) -> ComposeError:
        return ComposeError(self.model.path, self.line(key), f"services.{self.service}.{key}: {message}")

    def strings(self, key: str) -> list[str]:
        value = self.data.get(key)
        if value is None:
            return []
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return [str(value)]
        if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
            return [str(v) for v in value]
        raise self.fail(key, "expected a string or a list of strings")

    def mapping(self, key: str, sep: str = "=") -> dict[str, str]:
        """A ``{k: v}`` mapping or a ``["k=v", ...]`` list, values as strings."""
        value = self.data.get(key)
        if value is None:
            return {}
        if isinstance(value, dict):
            return {str(k): _scalar(v) for k, v in value.items()}
        if isinstance(value, list):
            out = {}
            for item in value:
                k, _, v = str(item).partition(sep)
                out[k.strip()] = v.strip()
            return out
        raise self.fail(key, "expected a mapping or a list of KEY=VALUE")

    def boolean(self, key: str, value: Any = _UNSET, where: str = "") -> bool:
        value = self.data.get(key, False) if value is _UNSET else value
        try:
            return to_bool(value)
        except ValueError as e:
            raise self.fail(where or key, str(e)) from None

    def size(self, key: str, value: Any = _UNSET, where: str = "") -> int:
        value = self.data.get(key) if value is _UNSET else value
        try:
            return to_bytes(value)
        except ValueError as e:
            raise self.fail(where or key, str(e)) from None

    def number(self, key: str, value: Any = _UNSET, where: str = "") -> float:
        value = self.data.get(key) if value is _UNSET else value
        try:
            return float(value or 0)
        except (TypeError, ValueError):
            raise self.fail(where or key, f"expected a number, got {value!r}") from None

    def integer(self, key: str, value: Any = _UNSET, where: str = "") -> int:
        value = self.data.get(key) if value is _UNSET else value
        if isinstance(value, bool):
            raise self.fail(where or key, f"expected an integer, got {value!r}")
        try:
            return int(value or 0)
        except (TypeError, ValueError):
            raise self.fail(where or key, f"expected an integer, got {value!r}") from None


def _scalar(value: Any) -> str:
    """A value as the string compose makes of it (Go's formatting: ``1e3`` is ``1000``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return "" if value is None else str(value)


TRUE, FALSE = ("y", "yes", "true", "on"), ("n", "no", "false", "off")


def to_bool(value: Any) -> bool:
    """A boolean as compose reads one: YAML's, or a string (``${RO}``, ``"false"``) as
    compose-go's ``toBoolean`` casts it -- ``y``/``yes``/``true``/``on`` and ``n``/``no``/
    ``false``/``off`` in any case; anything else refused (never Python's truth of a
    non-empty string, which made ``read_only: "false"`` read-only). Absent is false."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.lower() in TRUE + FALSE:
        return value.lower() in TRUE
    raise ValueError(f"expected a boolean, got {value!r}")


def _flag(model: Model, value: Any, where: str) -> bool:
    try:
        return to_bool(value)
    except ValueError as e:
        raise ComposeError(model.path, None, f"{where}: {e}") from None


def to_bytes(value: Any) -> int:
    """go-units ``RAMInBytes``, which compose applies to sizes: ``64m``, ``1.5GiB``, ``512``
    (binary multiples, any case, optional ``b``/``ib``)."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise ValueError(f"expected a size, got {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtTpP]?)[iI]?[bB]?\s*", str(value))
    if m is None:
        raise ValueError(f"invalid size: {value!r}")
    return int(float(m.group(1)) * UNITS[m.group(2).lower()])


def to_nanoseconds(value: Any) -> int:
    """A Go duration as compose reads one (``1m30s``, ``500ms``); a bare number is seconds."""
    if value is None or value == "":
        return 0
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value * 10**9)
    text = str(value).strip()
    parts = DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid duration: {value!r}")
    return int(sum(float(n) * DURATION_NS[u] for n, u in parts))


# -- one service ----------------------------------------------------------------------------------

def container_name(model: Model, service: str, data: Mapping[str, Any], number: int = 1) -> str:
    explicit = data.get("container_name")
    return str(explicit) if explicit else SEPARATOR.join((model.name, service, str(number)))


def image_name(model: Model, service: str, data: Mapping[str, Any]) -> str:
    """compose's ``GetImageNameOrDefault``: the image, else ``<project>-<service>`` (a
    build-only service's image is tagged so)."""
    return str(data.get("image") or f"{model.name}{SEPARATOR}{service}")


def replicas(r: _Reader) -> int:
    deploy = r.data.get("deploy") or {}
    if isinstance(deploy, dict) and deploy.get("replicas") is not None:
        return r.integer("deploy", deploy["replicas"], "deploy.replicas")
    if r.data.get("scale") is not None:
        return r.integer("scale")
    return 1


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


def convert(model: Model) -> list[ComposeService]:
    """Every container the project's services would create, by service name (as compose's
    ``config`` lists them), each with
    the lookups of what it references (another service's container by ``service:X``/
    ``volumes_from``, the project's named volumes with their driver options)."""
    refuse_not_judged(model)
    services: Mapping[str, Any] = dict(sorted((model.data.get("services") or {}).items()))
    names = {s: container_name(model, s, d) for s, d in services.items()}
    built: dict[str, dict[str, Any]] = {}
    for service, data in services.items():
        built[service] = _container(model, service, data, names, 1)
    out = []
    for service, data in services.items():
        r = _Reader(model, service, data)
        count = replicas(r)
        for number in range(1, count + 1):
            container = built[service] if number == 1 else _container(model, service, data, names, number)
            lookups = _lookups(model, container, built, names)
            out.append(ComposeService(service, str(container["Name"]).lstrip("/"), container, lookups))
    return out


def _container(model: Model, service: str, data: Mapping[str, Any], names: Mapping[str, str],
               number: int) -> dict[str, Any]:
    r = _Reader(model, service, data)
    name = container_name(model, service, data, number)
    labels = r.mapping("labels")
    labels.update({
        "com.docker.compose.project": model.name, "com.docker.compose.service": service,
        "com.docker.compose.oneoff": "False", "com.docker.compose.container-number": str(number),
        "com.docker.compose.project.working_dir": model.directory,
        "com.docker.compose.project.config_files": os.path.abspath(model.path),
    })
    binds, mount_specs = _volumes(r, model)
    security_opt, unconfined = [], False
    for option in r.strings("security_opt"):
        if option == "systempaths=unconfined":
            unconfined = True
        else:
            security_opt.append(option)
    hc: dict[str, Any] = {
        "Binds": binds or None,
        "Mounts": mount_specs or None,
        "CapAdd": r.strings("cap_add") or None,
        "CapDrop": r.strings("cap_drop") or None,
        "NetworkMode": _network_mode(r, model, names),
        "Init": r.boolean("init") if "init" in data else None,
        "IpcMode": _service_ref(str(data.get("ipc") or ""), names),
        "PidMode": _service_ref(str(data.get("pid") or ""), names),
        "UTSMode": str(data.get("uts") or ""),
        "UsernsMode": str(data.get("userns_mode") or ""),
        "CgroupnsMode": str(data.get("cgroup") or ""),
        "ReadonlyRootfs": r.boolean("read_only"),
        "Privileged": r.boolean("privileged"),
        "RestartPolicy": _restart(r),
        "ShmSize": r.size("shm_size"),
        "Sysctls": r.mapping("sysctls") or None,
        "PortBindings": _ports(r),
        "SecurityOpt": security_opt or None,
        "Tmpfs": _tmpfs(r) or None,
        "VolumesFrom": _volumes_from(r, names) or None,
        "VolumeDriver": str(data.get("volume_driver") or ""),
        "GroupAdd": r.strings("group_add") or None,
        "Runtime": str(data.get("runtime") or ""),
        **_resources(r),
    }
    if unconfined:
        hc["MaskedPaths"], hc["ReadonlyPaths"] = [], []
    config: dict[str, Any] = {
        "Image": image_name(model, service, data),
        "User": str(data.get("user") or ""),
        "Labels": labels,
        "Healthcheck": _healthcheck(r),
    }
    return {"Id": "", "Name": f"/{name}", "Config": config, "HostConfig": hc}


def _service_ref(mode: str, names: Mapping[str, str]) -> str:
    """``service:X`` is the container compose made for X (compose passes its id)."""
    kind, sep, ref = mode.partition(":")
    if sep and kind == "service":
        return f"container:{names.get(ref, ref)}"
    return mode


def _network_mode(r: _Reader, model: Model, names: Mapping[str, str]) -> str:
    mode = str(r.data.get("network_mode") or "")
    if mode:
        return _service_ref(mode, names)
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
    if isinstance(entry, dict) and _flag(model, entry.get("external"), f"networks.{first}.external"):
        return first
    return f"{model.name}_{first}"


def _restart(r: _Reader) -> dict[str, Any]:
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


def _resources(r: _Reader) -> dict[str, Any]:
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


def _gpus(r: _Reader) -> list[dict[str, Any]]:
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


def _devices(r: _Reader) -> list[dict[str, str]]:
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


def _ulimits(r: _Reader) -> list[dict[str, Any]]:
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


def _healthcheck(r: _Reader) -> dict[str, Any] | None:
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


def _tmpfs(r: _Reader) -> dict[str, str]:
    out = {}
    for entry in r.strings("tmpfs"):
        target, _, options = entry.partition(":")
        out[target] = options
    return out


# -- ports ---------------------------------------------------------------------------------------

def _ports(r: _Reader) -> dict[str, list[dict[str, str]]]:
    """``HostConfig.PortBindings`` as compose builds it: one binding per published port,
    short syntax expanded as docker/go-connections reads it (ranges pairwise)."""
    bindings: dict[str, list[dict[str, str]]] = {}
    for entry in r.data.get("ports") or []:
        for target, published, host_ip, protocol in _port(r, entry):
            bindings.setdefault(f"{target}/{protocol}", []).append({"HostIp": host_ip, "HostPort": published})
    return bindings


def _port(r: _Reader, entry: Any) -> list[tuple[int, str, str, str]]:
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


# -- volumes -------------------------------------------------------------------------------------

PROPAGATIONS = ("shared", "rshared", "slave", "rslave", "private", "rprivate")


def _volumes(r: _Reader, model: Model) -> tuple[list[str], list[dict[str, Any]]]:
    """(``Binds``, ``Mounts``) as compose 2.26 sends them: a bind that may create its host
    path (every short-syntax bind) as a ``src:dst:opts`` string, everything else as a
    mount; plus the file-based secrets and configs compose binds read-only."""
    binds, specs = [], []
    targets: set[str] = set()
    for entry in r.data.get("volumes") or []:
        volume = _long_volume(r, model, entry)
        target = posixpath.normpath(str(volume.get("target") or ""))
        targets.add(target)
        kind = volume.get("type") or "volume"
        read_only = r.boolean("volumes", volume.get("read_only"), "volumes.read_only")
        bind = volume.get("bind") or {}
        if kind == "bind":
            source = _host_path(str(volume.get("source") or ""), model.directory)
            if r.boolean("volumes", bind.get("create_host_path"), "volumes.bind.create_host_path"):
                opts = ["ro" if read_only else "rw"]
                opts += [str(bind[k]) for k in ("selinux", "propagation") if bind.get(k)]
                binds.append(f"{source}:{volume.get('target')}:{','.join(opts)}")
                continue
            spec: dict[str, Any] = {"Type": "bind", "Source": source, "Target": target, "ReadOnly": read_only}
            if bind.get("propagation"):
                spec["BindOptions"] = {"Propagation": str(bind["propagation"])}
            specs.append(spec)
        elif kind == "volume":
            source = str(volume.get("source") or "")
            declared = (model.data.get("volumes") or {}).get(source) if source else None
            if isinstance(declared, dict) and str((declared.get("driver_opts") or {}).get("o")) == "bind":
                # compose 2.26 (buildMountOptions): a volume whose driver_opts say exactly
                # o=bind goes as a bind string naming the volume, which dockerd reads as the volume
                nocopy = r.boolean("volumes", (volume.get("volume") or {}).get("nocopy"),
                                   "volumes.volume.nocopy")
                opts = ["ro" if read_only else "rw"] + (["nocopy"] if nocopy else [])
                binds.append(f"{_volume_name(model, source)}:{volume.get('target')}:{','.join(opts)}")
                continue
            specs.append({"Type": "volume", "Source": _volume_name(model, source) if source else "",
                          "Target": target, "ReadOnly": read_only})
        elif kind == "tmpfs":
            tmpfs = volume.get("tmpfs") or {}
            spec = {"Type": "tmpfs", "Source": "", "Target": target, "ReadOnly": read_only}
            if tmpfs.get("size"):
                spec["TmpfsOptions"] = {"SizeBytes": r.size("volumes", tmpfs["size"], "volumes.tmpfs.size")}
            specs.append(spec)
        else:
            specs.append({"Type": str(kind), "Source": str(volume.get("source") or ""), "Target": target,
                          "ReadOnly": read_only})
    for key, base, top in (("secrets", "/run/secrets/", "secrets"), ("configs", "/", "configs")):
        for entry in r.data.get(key) or []:
            source = str(entry.get("source") if isinstance(entry, dict) else entry)
            target = str(entry.get("target") or "") if isinstance(entry, dict) else ""
            target = target if target.startswith("/") else base + (target or source)
            defined = (model.data.get(top) or {}).get(source) or {}
            if target in targets or not isinstance(defined, dict) or not defined.get("file"):
                continue
            specs.append({"Type": "bind", "Source": _host_path(str(defined["file"]), model.directory),
                          "Target": target, "ReadOnly": True})
    return binds, specs


def _long_volume(r: _Reader, model: Model, entry: Any) -> Mapping[str, Any]:
    """A short-syntax volume (``src:dst[:opts]``, ``dst``) as compose-go's long form."""
    if isinstance(entry, dict):
        return entry
    parts = str(entry).split(":")
    if len(parts) == 1:
        return {"type": "volume", "target": parts[0]}
    if len(parts) > 3:
        raise r.fail("volumes", f"invalid volume {entry!r}")
    source, target = parts[0], parts[1]
    options = parts[2].split(",") if len(parts) == 3 else []
    is_path = source.startswith(("/", ".", "~"))
    # compose-go reads the options in order, a later one overriding: "ro,rw" is read-write
    modes = [o for o in options if o in ("ro", "rw")]
    out: dict[str, Any] = {"type": "bind" if is_path else "volume", "source": source, "target": target,
                           "read_only": modes[-1:] == ["ro"]}
    if is_path:
        bind: dict[str, Any] = {"create_host_path": True}
        if props := [o for o in options if o in PROPAGATIONS]:
            bind["propagation"] = props[-1]
        if selinux := [o for o in options if o in ("z", "Z")]:
            bind["selinux"] = selinux[-1]
        out["bind"] = bind
    return out


def _host_path(source: str, directory: str) -> str:
    if source.startswith("~"):
        source = str(Path(source).expanduser())
    return source if source.startswith("/") else posixpath.normpath(posixpath.join(directory, source))


def _volume_name(model: Model, key: str) -> str:
    """The engine's name of a project volume: its ``name:``, an external one's key, else
    ``<project>_<key>``; a volume the file does not declare is named as written."""
    declared = (model.data.get("volumes") or {})
    if key not in declared:
        return key
    entry = declared.get(key) or {}
    if isinstance(entry, dict) and entry.get("name"):
        return str(entry["name"])
    if isinstance(entry, dict) and _flag(model, entry.get("external"), f"volumes.{key}.external"):
        return key
    return f"{model.name}_{key}"


def _volumes_from(r: _Reader, names: Mapping[str, str]) -> list[str]:
    """``HostConfig.VolumesFrom`` as compose sends it: the container, *without* the mode.
    compose (2.26, and still in 2025's sources: ``convergence.resolveVolumeFrom``) keeps only
    the name of ``container:X:ro`` and replaces ``service:ro`` by the service container's id,
    so the volumes are read-write whatever the file says: judged so here too."""
    out = []
    for entry in r.strings("volumes_from"):
        spec = entry.split(":")
        if spec[0] == "container" and len(spec) > 1:
            out.append(spec[1])
        elif spec[0] == "service" and len(spec) > 1:
            out.append(names.get(spec[1], spec[1]))
        else:
            out.append(names.get(spec[0], spec[0]))
    return out


# -- what the engine would answer ----------------------------------------------------------------

def volume_lookups(model: Model) -> dict[str, dict[str, Any]]:
    """``docker volume inspect`` of each volume the project creates, by its engine name: its
    driver and ``driver_opts`` (an external volume is not the file's to describe)."""
    out = {}
    for key, declared in (model.data.get("volumes") or {}).items():
        entry = declared or {}
        if not isinstance(entry, dict) or _flag(model, entry.get("external"), f"volumes.{key}.external"):
            continue
        name = _volume_name(model, str(key))
        out[name] = {"Name": name, "Driver": str(entry.get("driver") or "local"),
                     "Options": {str(k): _scalar(v) for k, v in (entry.get("driver_opts") or {}).items()}}
    return out


def real_paths(model: Model, sources: list[str]) -> dict[str, str]:
    """The bind sources inside the project's folder that a symbolic link there leads
    elsewhere, with where: the folder is the checkout the file comes with, so its links are
    the deploy's (``./data`` a link to ``/etc`` is a bind of ``/etc``). Paths outside it
    are the deploy host's, not this machine's to resolve."""
    root = model.directory.rstrip("/") + "/"
    return {path: real for path in sources
            if path.startswith(root) and (real := os.path.realpath(path)) != path}


def _lookups(model: Model, container: Mapping[str, Any], built: Mapping[str, Mapping[str, Any]],
             names: Mapping[str, str]) -> Lookups | None:
    """The project's volumes this container mounts, and the services' containers it names
    (those with their own mounts resolved, as a created container's ``Mounts`` are), and
    where the symbolic links in the project's folder lead its bind sources."""
    from ..reach import references  # the core's own list of what to look up

    volume_names, refs = references(container)
    volumes = volume_lookups(model)
    found_volumes = {n: volumes[n] for n in volume_names if n in volumes}
    by_name = {names[s]: built[s] for s in built}
    found_containers: dict[str, Mapping[str, Any]] = {}
    pending = list(refs)
    while pending:
        ref = pending.pop(0)
        if ref in found_containers or ref not in by_name:
            continue
        other = by_name[ref]
        other_volumes, other_refs = references(other)
        inner = Lookups(volumes={n: volumes[n] for n in other_volumes if n in volumes})
        inner = Lookups(volumes=inner.volumes, real_paths=real_paths(model, bind_sources(other, inner)))
        found_containers[ref] = {**other, "Mounts": mounts(other, inner)}
        pending += other_refs
    found = Lookups(volumes=found_volumes, containers=found_containers)
    links = real_paths(model, bind_sources(container, found))
    if not found_volumes and not found_containers and not links:
        return None
    return Lookups(volumes=found_volumes, containers=found_containers, real_paths=links)
