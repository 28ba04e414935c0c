"""Handlers for what starts or widens containers other than a container start: swarm
services, managed plugins, classic builds and local volumes that bind a host path.

A service's task containers and a build's RUN containers are made by dockerd itself,
never through the API, so the plugin judges the request that causes them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from ..checks import Violation
from ..engine import Engine, EngineLookupError
from ..policy import Policy
from . import model, types
from .gojson import plain
from .handlers import Request, Verdict, deny, lookups_of, verdict


def service(policy: Policy, req: Request, engine: Engine) -> Verdict:
    """A service create/update is judged as the task containers it would make. An update
    with ``rollback=previous`` ignores its body: dockerd restores the stored PreviousSpec."""
    if req.route.kind == "service_update" and req.route.arg("rollback") == "previous":
        spec = engine.service(req.route.name).get("PreviousSpec")
        if not isinstance(spec, dict):
            raise EngineLookupError(f"service {req.route.name} has no previous spec")
    else:
        spec = plain(req.decoded(types.SERVICE_SPEC))
    name = spec.get("Name") or req.route.name or "(unnamed)"
    task = spec.get("TaskTemplate") or {}
    # dockerd (daemon/cluster/convert ServiceSpecToGRPC) makes container tasks for a
    # Runtime of "" or "container" whatever PluginSpec says, plugin tasks for "plugin",
    # and refuses any other runtime.
    if task.get("Runtime") == "plugin":
        remote = str((task.get("PluginSpec") or {}).get("remote") or "")
        return plugin_reference(policy, normalised(remote) if remote else "", name, "service")
    networks = [n.get("Target", "") for n in (task.get("Networks") or []) + (spec.get("Networks") or [])]
    host = any(network_is_host(engine, target) for target in networks)
    # fields the engine does not know, or the request's API version drops, do not apply
    api = min((v for v in (req.route.version, engine.api_version()) if v),
              key=lambda v: [int(p) if p.isdigit() else 0 for p in v.split(".")])
    container = model.container_of_service(name, spec, host, api)
    decision = policy.decide(container, lookups_of(engine, container))  # the volumes on this node
    violations = decision.violations
    ref = str((task.get("ContainerSpec") or {}).get("Image") or "")
    if policy.image_scan is not None and policy.resolve(container)[0].get("image_scan_required") and \
            not PINNED.search(ref):
        violations += (Violation("CV301", f"{name}: image {ref or '(none)'} not pinned (by its sha256 id or "
                                 "an @sha256: digest): swarm makes each task container from the reference "
                                 "afresh, and a tag re-pointed since would run an image never scanned"),)
    return verdict(violations, name, "service")


# An image reference that cannot come to name another image: an id, or a digest reference.
PINNED = re.compile(r"(^sha256:|@sha256:)[0-9a-f]{64}$")


def network_is_host(engine: Engine, target: str) -> bool:
    """A service on the predefined ``host`` network runs in the host's namespace; the
    target may name it or give its id, so ask dockerd."""
    if target == "host":
        return True
    return str(engine.network(target).get("Name")) == "host"


# -- managed plugins ------------------------------------------------------------------------------

def normalised(reference: str) -> str:
    """The reference as the engine stores a pulled plugin's (``docker.io/library/NAME:latest``)."""
    name, _, digest = reference.partition("@")
    first = name.split("/")[0]
    if "/" not in name or not ("." in first or ":" in first or first == "localhost"):
        name = "docker.io/" + (name if "/" in name else "library/" + name)
    if not digest and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name + ("@" + digest if digest else "")


def plugin_reference(policy: Policy, reference: str, name: str, kind: str) -> Verdict:
    """Allowed when the full reference matches ``allowed_plugins``. A plugin made with
    ``docker plugin create`` stores its short name, so it never matches a full one."""
    if reference and model.glob(reference, policy.allowed_plugins):
        return Verdict(True, name=name, kind=kind)
    return verdict((Violation("CV030", f"{name}: plugin {reference or '(none)'} not in allowed_plugins"),),
                   name, kind)


def plugin_pull(policy: Policy, req: Request, engine: Engine) -> Verdict:
    remote = req.route.arg("remote")
    return plugin_reference(policy, normalised(remote) if remote else "", req.route.arg("name") or remote,
                            "plugin")


def plugin_create(policy: Policy, req: Request, engine: Engine) -> Verdict:
    """A plugin built from a local rootfs has no reference to trust, and dockerd checks
    none of the privileges its config asks for: refused."""
    name = req.route.arg("name") or "(unnamed)"
    return verdict((Violation("CV030", f"{name}: plugins made with docker plugin create are not allowed"),),
                   name, "plugin")


def plugin_upgrade(policy: Policy, req: Request, engine: Engine) -> Verdict:
    remote = req.route.arg("remote")
    return plugin_reference(policy, normalised(remote) if remote else "", req.route.name, "plugin")


def plugin_installed(policy: Policy, req: Request, engine: Engine) -> Verdict:
    """Enabling or reconfiguring an installed plugin: judged by the reference it came from."""
    stored = engine.plugin(req.route.name)
    return plugin_reference(policy, str(stored.get("PluginReference") or ""), req.route.name, "plugin")


# -- builds and volumes --------------------------------------------------------------------------

VOLUME_CHECKS = frozenset({"CV007", "CV026", "CV028"})
_GO_INT = re.compile(r"[+-]?[0-9]+")


def _int_or_zero(text: str) -> int:
    """httputils.Int64ValueOrZero: strconv.ParseInt, 0 when it fails."""
    return int(text) if _GO_INT.fullmatch(text) and -2**63 <= int(text) < 2**63 else 0


def build(policy: Policy, req: Request, engine: Engine) -> Verdict:
    """A classic build's RUN steps are containers dockerd makes itself, with the
    HostConfig its builder derives from the query (daemon/builder/dockerfile
    hostConfigFromOptions): no capability can be dropped and no security option set
    (Linux refuses ``securityopt``). So they are judged as such a container, under the
    defaults (a step has a random name and an intermediate image). Parameters in a form
    body, which the plugin cannot see, are refused."""
    if req.form_body():
        return deny("build: parameters in a form body cannot be judged; pass them in the query", "build",
                    "build")
    arg = req.route.arg
    try:
        ulimits = json.loads(arg("ulimits")) if arg("ulimits") else None
    except ValueError:
        ulimits = None  # dockerd refuses the build
    hc = {"NetworkMode": arg("networkmode"), "CgroupParent": arg("cgroupparent"),
          "CpuShares": _int_or_zero(arg("cpushares")), "CpuPeriod": _int_or_zero(arg("cpuperiod")),
          "CpuQuota": _int_or_zero(arg("cpuquota")), "CpusetCpus": arg("cpusetcpus"),
          "CpusetMems": arg("cpusetmems"), "Memory": _int_or_zero(arg("memory")),
          "MemorySwap": _int_or_zero(arg("memswap")), "Ulimits": ulimits,
          "ShmSize": _int_or_zero(arg("shmsize"))}
    decision = policy.decide({"Name": "", "Config": {"Image": ""}, "HostConfig": hc})  # no section's name
    found = tuple(Violation(v.check, "build (its RUN steps)" + v.message) for v in decision.violations)
    return verdict(found, "build", "build")


def volume_create(policy: Policy, req: Request, engine: Engine) -> Verdict:
    """A local volume whose options mount host paths is judged as bind mounts of them."""
    body = plain(req.decoded(types.VOLUME_CREATE))
    name = str(body.get("Name") or "(unnamed volume)")
    binds = model.volume_sources(str(body.get("Driver") or ""), body.get("DriverOpts") or {})
    if not binds:
        return Verdict(True, name=name, kind="volume")
    container = {"Name": "", "Mounts": binds, "HostConfig": {}}
    decision = policy.decide(container)
    return verdict(tuple(Violation(v.check, f"volume {name}{v.message}") for v in decision.violations
                         if v.check in VOLUME_CHECKS), name, "volume")


HANDLERS: dict[str, Callable[[Policy, Request, Engine], Verdict]] = {
    "service_create": service,
    "service_update": service,
    "plugin_pull": plugin_pull,
    "plugin_create": plugin_create,
    "plugin_upgrade": plugin_upgrade,
    "plugin_enable": plugin_installed,
    "plugin_set": plugin_installed,
    "build": build,
    "volume_create": volume_create,
}
