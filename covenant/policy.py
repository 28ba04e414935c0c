"""The policy file: read it safely, validate it with file:line errors, resolve it per container.

The file format is the original ``docker-covenant.yml``: a few reserved top-level keys,
and every other top-level key names a container whose section overrides the defaults.
Loading is pure apart from reading the file; a ``Policy`` is immutable plain data.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .checks import DEFAULTS, Container, Violation, container_name, evaluate

CONFIG_SEARCH_PATH = (Path("docker-covenant.yml"), Path("/etc/docker-covenant/docker-covenant.yml"))
MODES = ("enforce", "warn")
ACTIONS = ("kill", "stop")
# The engine's own rule for container names (daemon/names: RestrictedNamePattern).
CONTAINER_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


class PolicyError(Exception):
    """A policy that cannot be used; ``str()`` is ``FILE:LINE: message``."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path, self.line, self.message = path, line, message
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Decision:
    """What the policy says about one container."""

    container_id: str
    name: str
    image: str
    violations: tuple[Violation, ...]

    @property
    def allowed(self) -> bool:
        return not self.violations


@dataclass(frozen=True)
class Policy:
    syslog_ident: str = "docker-covenant"
    debug: bool = True
    mode: str = "enforce"
    action: str = "kill"
    stop_timeout: int = 10
    reaudit_interval: float = 0
    metrics_address: str | None = None
    sections: Mapping[str, Mapping[str, bool]] = field(default_factory=dict)
    source: str = "<defaults>"
    digest: str = ""

    def settings_for(self, name: str) -> dict[str, bool]:
        """The defaults, overridden by the section named exactly like the container."""
        return {**DEFAULTS, **self.sections.get(name.lstrip("/"), {})}

    def decide(self, container: Container) -> Decision:
        """The single evaluator every entry point uses."""
        name = container_name(container)
        return Decision(
            container_id=str(container.get("Id", "")),
            name=name,
            image=str((container.get("Config") or {}).get("Image", "")),
            violations=evaluate(container, self.settings_for(name)),
        )

    def describe(self) -> dict[str, Any]:
        """The effective policy as plain data, for ``--check-config``."""
        return {
            "source": self.source,
            "sha256": self.digest,
            "syslog_ident": self.syslog_ident,
            "debug": self.debug,
            "mode": self.mode,
            "action": self.action,
            "stop_timeout": self.stop_timeout,
            "reaudit_interval": self.reaudit_interval,
            "metrics_address": self.metrics_address,
            "defaults": dict(DEFAULTS),
            "containers": {name: self.settings_for(name) for name in sorted(self.sections)},
        }


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``PORT`` (loopback); ``[::1]:PORT`` for IPv6."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not an address: {text!r} (expected HOST:PORT or :PORT)")
    return host, int(port)


def _valid_address(text: str) -> bool:
    try:
        parse_address(text)
    except ValueError:
        return False
    return True


# Reserved top-level keys: name -> (accepted type, check, what the error says it expects).
RESERVED: Mapping[str, tuple[type | tuple[type, ...], Any, str]] = {
    "syslog_ident": (str, lambda v: bool(v.strip()), "a non-empty string"),
    "debug": (bool, None, "yes or no"),
    "mode": (str, lambda v: v in MODES, "one of: " + ", ".join(MODES)),
    "action": (str, lambda v: v in ACTIONS, "one of: " + ", ".join(ACTIONS)),
    "stop_timeout": (int, lambda v: v >= 0, "a whole number of seconds, 0 or more"),
    "reaudit_interval": ((int, float), lambda v: v >= 0, "a number of seconds, 0 (off) or more"),
    "metrics_address": (str, _valid_address, "HOST:PORT or :PORT (loopback)"),
}


class _LineLoader(yaml.SafeLoader):
    """A safe loader that remembers the line of every mapping key and refuses duplicates."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in lines:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {lines[key]})",
                    key_node.start_mark)
            lines[key] = key_node.start_mark.line + 1
        mapping = _Lines(super().construct_mapping(node, deep=True))
        mapping.lines = lines
        return mapping


class _Lines(dict):  # type: ignore[type-arg]
    lines: dict[Any, int]


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _LineLoader.construct_mapping)


def find_config(explicit: str | None) -> Path:
    """``--config``, else ``./docker-covenant.yml``, else the one under /etc."""
    if explicit:
        return Path(explicit)
    for candidate in CONFIG_SEARCH_PATH:
        if candidate.is_file():
            return candidate
    raise PolicyError(str(CONFIG_SEARCH_PATH[0]), None,
                      "no policy file found (looked for " + ", ".join(map(str, CONFIG_SEARCH_PATH))
                      + "; pass --config PATH)")


def load_policy(path: Path | str) -> Policy:
    """Read and validate a policy file; raise ``PolicyError`` naming file and line."""
    path = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise PolicyError(path, None, f"cannot read policy file: {e.strerror}") from None
    return parse_policy(raw, path)


def parse_policy(raw: bytes | str, path: str = "<policy>") -> Policy:
    data = raw.encode() if isinstance(raw, str) else raw
    try:
        doc = yaml.load(data, Loader=_LineLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        kind = "YAML error" if isinstance(e, yaml.constructor.ConstructorError) else "YAML syntax error"
        raise PolicyError(path, line, f"{kind}: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise PolicyError(path, None, f"YAML error: {e}") from None
    if doc is None:
        doc = _Lines()
        doc.lines = {}
    if not isinstance(doc, _Lines):
        raise PolicyError(path, 1, "the policy must be a mapping of settings and container names")
    settings: dict[str, Any] = {}
    sections: dict[str, dict[str, bool]] = {}
    for key, value in doc.items():
        line = doc.lines.get(key)
        if not isinstance(key, str):
            raise PolicyError(path, line, f"unknown key {key!r}: keys must be text")
        if key in RESERVED:
            settings[key] = _reserved(path, line, key, value)
        elif CONTAINER_NAME.match(key):
            sections[key.lstrip("/")] = _section(path, line, key, value)
        else:
            raise PolicyError(path, line, f"unknown key {key!r}: neither a setting ("
                              + ", ".join(RESERVED) + ") nor a valid container name")
    return Policy(**settings, sections=sections, source=path, digest=hashlib.sha256(data).hexdigest())


def _reserved(path: str, line: int | None, key: str, value: Any) -> Any:
    kind, valid, expected = RESERVED[key]
    # YAML booleans are ints to Python; never let ``yes`` pass as a number.
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)) or (
            valid is not None and not valid(value)):
        raise PolicyError(path, line, f"{key}: expected {expected}, got {value!r}")
    return value


def _section(path: str, line: int | None, name: str, value: Any) -> dict[str, bool]:
    if value is None:  # an empty section means the defaults
        return {}
    if not isinstance(value, _Lines):
        raise PolicyError(path, line, f"{name}: a container section must be a mapping of "
                          + ", ".join(DEFAULTS) + f"; got {value!r}")
    section: dict[str, bool] = {}
    for key, setting in value.items():
        key_line = value.lines.get(key, line)
        if key not in DEFAULTS:
            raise PolicyError(path, key_line, f"{name}: unknown key {key!r} (known: "
                              + ", ".join(DEFAULTS) + ")")
        if not isinstance(setting, bool):
            raise PolicyError(path, key_line, f"{name}.{key}: expected yes or no, got {setting!r}")
        section[key] = setting
    return section
