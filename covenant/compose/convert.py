"""A compose service as the container compose v2 would create: ``docker inspect``-shaped
data (``Name``, ``Config``, ``HostConfig``) and the :class:`~covenant.reach.Lookups` the
engine would answer about what it references, so ``Policy.decide`` judges it exactly as
it judges a running container.

Each field is mapped as compose v2 (2.26, ``pkg/compose/create.go``) sends it to dockerd:
short-syntax binds as ``HostConfig.Binds`` strings, long-syntax binds, volumes and tmpfs
as ``HostConfig.Mounts``, ``deploy.resources.limits`` over ``mem_limit``/``cpus``/
``pids_limit``, ``deploy.restart_policy`` over ``restart``, ``systempaths=unconfined``
taken out of ``SecurityOpt`` and sent as empty ``MaskedPaths``/``ReadonlyPaths``,
``service:X`` as ``container:<X's container>`` (the fields: ``hostconfig`` and ``mounts``;
reading a value: ``values``; which keys: ``keys``). Both shapes are read: the file as written
(short syntax) and compose's normalised ``config --format json``. What compose cannot tell
from the file -- the image's own ``USER``, ``HEALTHCHECK`` and labels, which dockerd merges
in at create -- is not known here: a service is judged on what the file sets.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..reach import Lookups
from .hostconfig import healthcheck, network_mode, ports, resources, restart_policy, service_ref, tmpfs
from .keys import refuse_not_judged
from .model import Model
from .mounts import container_lookups, volumes, volumes_from
from .values import Reader

SEPARATOR = "-"  # compose v2 (v1 used "_")


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


# -- one service ----------------------------------------------------------------------------------

def container_name(model: Model, service: str, data: Mapping[str, Any], number: int = 1) -> str:
    explicit = data.get("container_name")
    return str(explicit) if explicit else SEPARATOR.join((model.name, service, str(number)))


def image_name(model: Model, service: str, data: Mapping[str, Any]) -> str:
    """compose's ``GetImageNameOrDefault``: the image, else ``<project>-<service>`` (a
    build-only service's image is tagged so)."""
    return str(data.get("image") or f"{model.name}{SEPARATOR}{service}")


def replicas(r: Reader) -> int:
    deploy = r.data.get("deploy") or {}
    if isinstance(deploy, dict) and deploy.get("replicas") is not None:
        return r.integer("deploy", deploy["replicas"], "deploy.replicas")
    if r.data.get("scale") is not None:
        return r.integer("scale")
    return 1


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
        r = Reader(model, service, data)
        count = replicas(r)
        for number in range(1, count + 1):
            container = built[service] if number == 1 else _container(model, service, data, names, number)
            lookups = container_lookups(model, container, built, names)
            out.append(ComposeService(service, str(container["Name"]).lstrip("/"), container, lookups))
    ours = {s.name for s in out}
    for s in out:
        refuse_outside_references(Reader(model, s.service, services[s.service]), s.container, ours)
    return out


def refuse_outside_references(r: Reader, container: Mapping[str, Any], ours: set[str]) -> None:
    """Fail closed on a namespace or volumes borrowed from a container the project does
    not create (``network_mode``/``pid``/``ipc: container:X``, ``volumes_from``): what X
    shares (the host's PID namespace, a bind of /etc) is the host's, not the file's, so the
    service cannot be judged."""
    hc = container["HostConfig"]
    for key, field in (("network_mode", "NetworkMode"), ("pid", "PidMode"), ("ipc", "IpcMode")):
        kind, sep, ref = str(hc.get(field) or "").partition(":")
        if kind == "container" and sep and ref not in ours:
            raise r.fail(key, f"container:{ref} is not a container of this project: what it shares is not "
                         "known from the file, so the service cannot be judged")
    for ref in hc.get("VolumesFrom") or []:
        if ref not in ours:
            raise r.fail("volumes_from", f"{ref} is not a container of this project: what it mounts is not "
                         "known from the file, so the service cannot be judged")


def _container(model: Model, service: str, data: Mapping[str, Any], names: Mapping[str, str],
               number: int) -> dict[str, Any]:
    r = Reader(model, service, data)
    name = container_name(model, service, data, number)
    labels = r.mapping("labels")
    labels.update({
        "com.docker.compose.project": model.name, "com.docker.compose.service": service,
        "com.docker.compose.oneoff": "False", "com.docker.compose.container-number": str(number),
        "com.docker.compose.project.working_dir": model.directory,
        "com.docker.compose.project.config_files": os.path.abspath(model.path),
    })
    binds, mount_specs = volumes(r, model)
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
        "NetworkMode": network_mode(r, model, names),
        "Init": r.boolean("init") if "init" in data else None,
        "IpcMode": service_ref(str(data.get("ipc") or ""), names),
        "PidMode": service_ref(str(data.get("pid") or ""), names),
        "UTSMode": str(data.get("uts") or ""),
        "UsernsMode": str(data.get("userns_mode") or ""),
        "CgroupnsMode": str(data.get("cgroup") or ""),
        "ReadonlyRootfs": r.boolean("read_only"),
        "Privileged": r.boolean("privileged"),
        "RestartPolicy": restart_policy(r),
        "ShmSize": r.size("shm_size"),
        "Sysctls": r.mapping("sysctls") or None,
        "PortBindings": ports(r),
        "SecurityOpt": security_opt or None,
        "Tmpfs": tmpfs(r) or None,
        "VolumesFrom": volumes_from(r, names) or None,
        "VolumeDriver": str(data.get("volume_driver") or ""),
        "GroupAdd": r.strings("group_add") or None,
        "Runtime": str(data.get("runtime") or ""),
        **resources(r),
    }
    if unconfined:
        hc["MaskedPaths"], hc["ReadonlyPaths"] = [], []
    config: dict[str, Any] = {
        "Image": image_name(model, service, data),
        "User": str(data.get("user") or ""),
        "Labels": labels,
        "Healthcheck": healthcheck(r),
    }
    return {"Id": "", "Name": f"/{name}", "Config": config, "HostConfig": hc}
