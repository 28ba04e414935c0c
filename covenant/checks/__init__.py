"""The check catalogue: pure functions from a container's configuration to violations.

Every check reads the plain ``docker inspect`` dictionary of one container and the
settings that the policy resolved for that container. Nothing here talks to Docker or
logs: the same functions serve the events path, the start-up sweep, ``audit`` and the
authorization plugin, so a decision can be reproduced from recorded JSON.

CIS numbers are those of the CIS Docker Benchmark v1.3.1, section 5 (container runtime).

The package splits by responsibility: ``model`` (the shapes), ``reading`` (the inspect
fields as dockerd reads them), the checks grouped as ``privileges``, ``security``,
``mounts``, ``host`` (namespaces, ports, devices), ``resources`` and ``image``, and
``catalogue`` (the CVnnn table, the settings, the profiles and ``evaluate``); and
``daemon``, the daemon and image checks (CV1nn) ``audit`` runs on ``/info`` and
``docker image inspect``. Every name is importable from ``covenant.checks`` itself.
"""

from __future__ import annotations

from .catalogue import (
    CATALOGUE,
    CHECKS,
    DEFAULTS,
    ORIGINAL_KEYS,
    PROFILES,
    SETTINGS,
    Check,
    Setting,
    evaluate,
)
from .daemon import HOST_CATALOGUE, HOST_CHECKS, Daemon, HostCheck, evaluate_daemon, evaluate_image
from .index import RULES, SEVERITY_LEVELS, Rule
from .model import Container, Settings, Violation
from .mounts import DOCKER_SOCKETS, ENGINE_PATHS, SENSITIVE_HOST_PATHS
from .privileges import ALL_CAPS, ROOT_USERS, is_root
from .reading import (
    DISABLING_SECURITY_OPTS,
    DOCKER_DEFAULT_CAPS,
    GO_FALSE,
    GO_TRUE,
    bind_mounts,
    capabilities,
    capability,
    config,
    container_name,
    effective_capabilities,
    host_config,
    host_source,
    labels_disabled,
    no_new_privileges,
    normalise_security_opt,
    port_bindings,
    privileged_unless_allowed,
    protective_security_opts,
    security_opts,
    split_security_opt,
)
from .scan import FORMATS as SCAN_FORMATS
from .scan import SEVERITIES
from .usage import (
    USAGE_CHECKS,
    USAGE_KEYS,
    Sample,
    UsageCheck,
    judge_usage,
    limited,
    parse_duration,
    parse_size,
)

__all__ = [
    "ALL_CAPS",
    "CATALOGUE",
    "CHECKS",
    "DEFAULTS",
    "DISABLING_SECURITY_OPTS",
    "DOCKER_DEFAULT_CAPS",
    "DOCKER_SOCKETS",
    "ENGINE_PATHS",
    "GO_FALSE",
    "GO_TRUE",
    "HOST_CATALOGUE",
    "HOST_CHECKS",
    "ORIGINAL_KEYS",
    "PROFILES",
    "ROOT_USERS",
    "RULES",
    "SCAN_FORMATS",
    "SENSITIVE_HOST_PATHS",
    "SETTINGS",
    "SEVERITIES",
    "SEVERITY_LEVELS",
    "USAGE_CHECKS",
    "USAGE_KEYS",
    "Check",
    "Container",
    "Daemon",
    "HostCheck",
    "Rule",
    "Sample",
    "Setting",
    "Settings",
    "UsageCheck",
    "Violation",
    "bind_mounts",
    "capabilities",
    "capability",
    "config",
    "container_name",
    "effective_capabilities",
    "evaluate",
    "evaluate_daemon",
    "evaluate_image",
    "host_config",
    "host_source",
    "is_root",
    "judge_usage",
    "labels_disabled",
    "limited",
    "no_new_privileges",
    "normalise_security_opt",
    "parse_duration",
    "parse_size",
    "port_bindings",
    "privileged_unless_allowed",
    "protective_security_opts",
    "security_opts",
    "split_security_opt",
]
