"""The policy file: read it safely, validate it with file:line errors, resolve it per container.

The file format is the original ``docker-covenant.yml``: a few reserved top-level keys,
and every other top-level key names a container whose section overrides the defaults.
Loading is pure apart from reading the file; a ``Policy`` is immutable plain data.

The package splits by responsibility: ``model`` (the plain data and ``Policy.decide``, the
one evaluator) and ``loading`` (the YAML, the validation, the errors with their lines).
Every name is importable from ``covenant.policy`` itself.
"""

from __future__ import annotations

from .loading import (
    CATALOGUE_RANGE,
    MAPPINGS,
    RESERVED,
    find_config,
    load_policy,
    parse_address,
    parse_policy,
)
from .model import (
    ACTIONS,
    CONFIG_SEARCH_PATH,
    MODES,
    SWARM_SERVICE_LABEL,
    UNSCANNED,
    Decision,
    ImageScan,
    Policy,
    PolicyError,
    Section,
    Waiver,
    utc,
)

__all__ = [
    "ACTIONS",
    "CATALOGUE_RANGE",
    "CONFIG_SEARCH_PATH",
    "MAPPINGS",
    "MODES",
    "RESERVED",
    "SWARM_SERVICE_LABEL",
    "UNSCANNED",
    "Decision",
    "ImageScan",
    "Policy",
    "PolicyError",
    "Section",
    "Waiver",
    "find_config",
    "load_policy",
    "parse_address",
    "parse_policy",
    "utc",
]
