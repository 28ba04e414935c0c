"""The policy file: read it safely, validate it with file:line errors, resolve it per container.

The file format is the original ``docker-covenant.yml``: a few reserved top-level keys,
and every other top-level key names a container whose section overrides the defaults.
Loading is pure apart from reading the file; a ``Policy`` is immutable plain data.

The package splits by responsibility: ``model`` (the plain data and ``Policy.decide``, the
one evaluator), ``loading`` (the validation of each setting, the errors with their lines),
``lines`` (the YAML loader that keeps every key's line) and ``waiving`` (the two forms of
``waive`` and when a waiver ends).
Every name is importable from ``covenant.policy`` itself.
"""

from __future__ import annotations

from .loading import (
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
from .waiving import CATALOGUE_RANGE

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
