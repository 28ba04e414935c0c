"""Reading the policy file: YAML's safe loader with the line of every key, every setting
validated with ``FILE:LINE: message`` errors, into the plain data of ``model``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..checks import (
    PROFILES,
    SCAN_FORMATS,
    SETTINGS,
    SEVERITIES,
    parse_duration,
    parse_size,
)
from ..checks.daemon import HOST_SETTINGS
from ..hooks import HookError, Webhook, parse_webhook
from ..rules.api import RuleError, parse_groups, parse_rules
from ..rules.quota import parse_quotas
from ..selectors import selector_kind
from .lines import LineLoader, Lines
from .model import (
    ACTIONS,
    CONFIG_SEARCH_PATH,
    MODES,
    UNSCANNED,
    ImageScan,
    Policy,
    PolicyError,
    Section,
    Waiver,
)
from .waiving import parse_waive


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
    "reconcile_interval": ((int, float), lambda v: v >= 0, "a number of seconds, 0 (off) or more"),
    "usage_interval": ((int, float), lambda v: v == 0 or v >= 1, "a number of seconds, 0 (off) or 1 or more"),
    "metrics_address": (str, _valid_address, "HOST:PORT or :PORT (loopback)"),
    "profile": (str, lambda v: v in PROFILES, "one of: " + ", ".join(PROFILES)),
    "fail": (str, lambda v: v in ("closed", "open"), "closed or open"),
    "log_requests": (bool, None, "yes or no"),
    "allowed_plugins": (list, lambda v: all(isinstance(p, str) and p for p in v),
                        "a list of plugin reference globs"),
    "shadow": (str, lambda v: bool(v.strip()), "a policy file (relative to this one) to judge beside it"),
}


# Reserved keys of the request policy (covenant/rules): who may do what through the API.
REQUEST_KEYS = ("groups", "api_rules", "quotas")


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
        doc = yaml.load(data, Loader=LineLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        kind = "YAML error" if isinstance(e, yaml.constructor.ConstructorError) else "YAML syntax error"
        raise PolicyError(path, line, f"{kind}: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise PolicyError(path, None, f"YAML error: {e}") from None
    if doc is None:
        doc = Lines()
        doc.lines = {}
    if not isinstance(doc, Lines):
        raise PolicyError(path, 1, "the policy must be a mapping of settings and container names")
    settings: dict[str, Any] = {}
    sections: list[Section] = []
    request_policy: dict[str, tuple[Any, int | None]] = {}
    for order, (key, value) in enumerate(doc.items()):
        line = doc.lines.get(key)
        if not isinstance(key, str):
            raise PolicyError(path, line, f"unknown key {key!r}: keys must be text")
        selector = selector_kind(key, users=True)
        if key in MAPPINGS:
            settings[key] = MAPPINGS[key](path, line, value)
        elif key in RESERVED:
            settings[key] = _reserved(path, line, key, value)
        elif key in REQUEST_KEYS:
            request_policy[key] = (value, line)
        elif selector is not None:
            sections.append(_section(path, line, key, value, selector, order))
        else:
            raise PolicyError(path, line, f"unknown key {key!r}: neither a setting ("
                              + ", ".join([*RESERVED, *REQUEST_KEYS, *MAPPINGS]) + "), a container name, "
                              "a name glob, image=PATTERN, label=KEY[=VALUE] nor user=NAME")
    if "image_scan" not in settings:
        _no_scanner_required(path, doc.lines, sections)
    return Policy(**settings, **_request_policy(path, request_policy, sections, doc.lines),
                  sections=tuple(sections), source=path, digest=hashlib.sha256(data).hexdigest())


def _request_policy(path: str, found: dict[str, tuple[Any, int | None]], sections: list[Section],
                    lines: dict[Any, int]) -> dict[str, Any]:
    """groups, api_rules and quotas (covenant/rules), and the groups ``user=@G`` sections name."""
    try:
        groups = parse_groups(*found["groups"]) if "groups" in found else {}
        rules = parse_rules(*found["api_rules"], groups) if "api_rules" in found else ()
        quotas = parse_quotas(*found["quotas"]) if "quotas" in found else ()
    except RuleError as e:
        raise PolicyError(path, e.line, e.message) from None
    for section in sections:
        if section.kind == "user" and section.pattern.startswith("@") and section.pattern[1:] not in groups:
            raise PolicyError(path, lines.get(section.selector), f"{section.selector}: no group "
                              f"{section.pattern[1:]!r} under groups: (known: {', '.join(groups) or 'none'})")
    return {"groups": groups, "api_rules": rules, "quotas": quotas}


def _no_scanner_required(path: str, lines: Mapping[Any, int], sections: list[Section]) -> None:
    for section in sections:
        if section.settings.get("image_scan_required"):
            raise PolicyError(path, lines.get(section.selector), f"{section.selector}: "
                              "image_scan_required needs a top-level image_scan (the scanner to run)")


def _image_scan(path: str, line: int | None, value: Any) -> ImageScan:
    """The top-level ``image_scan`` mapping, every key checked with its own line."""
    if not isinstance(value, Lines):
        raise PolicyError(path, line, f"image_scan: expected a mapping (command, format, severity, timeout, "
                          f"unscanned), got {value!r}")
    known = ("command", "format", "severity", "timeout", "unscanned")
    for key in value:
        if key not in known:
            raise PolicyError(path, value.lines.get(key, line), f"image_scan: unknown key {key!r} "
                              f"(known: {', '.join(known)})")

    def where(key: str) -> int | None:
        return value.lines.get(key, line)

    command = value.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(c, str) and c for c in command):
        raise PolicyError(path, where("command"), "image_scan.command: expected a list of strings "
                          f"(the scanner and its arguments, {{image}} for the image id), got {command!r}")
    fmt = value.get("format")
    if fmt not in SCAN_FORMATS:
        raise PolicyError(path, where("format"), f"image_scan.format: expected one of: "
                          f"{', '.join(SCAN_FORMATS)}, got {fmt!r}")
    severity = value.get("severity", "HIGH")
    if not isinstance(severity, str) or severity.upper() not in SEVERITIES[1:]:
        raise PolicyError(path, where("severity"), "image_scan.severity: expected one of: "
                          f"{', '.join(SEVERITIES[1:])}, got {severity!r}")
    timeout = parse_duration(value.get("timeout", 300))
    if not timeout:
        raise PolicyError(path, where("timeout"), "image_scan.timeout: expected a duration above 0 such as "
                          f"300, 90s or 5m, got {value.get('timeout')!r}")
    unscanned = value.get("unscanned", "wait")
    if unscanned not in UNSCANNED:
        raise PolicyError(path, where("unscanned"), f"image_scan.unscanned: expected one of: "
                          f"{', '.join(UNSCANNED)}, got {unscanned!r}")
    return ImageScan(tuple(command), fmt, severity.upper(), timeout, unscanned)


def _reserved(path: str, line: int | None, key: str, value: Any) -> Any:
    kind, valid, expected = RESERVED[key]
    # YAML booleans are ints to Python; never let ``yes`` pass as a number.
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)) or (
            valid is not None and not valid(value)):
        raise PolicyError(path, line, f"{key}: expected {expected}, got {value!r}")
    return tuple(value) if isinstance(value, list) else value


def _section(path: str, line: int | None, key: str, value: Any, selector: tuple[str, str],
             order: int) -> Section:
    kind, pattern = selector
    if value is None:  # an empty section means the defaults
        return Section(key, kind, pattern, {}, order=order)
    if not isinstance(value, Lines):
        raise PolicyError(path, line, f"{key}: a container section must be a mapping of settings "
                          f"(such as {', '.join(list(SETTINGS)[:3])}); got {value!r}")
    settings: dict[str, Any] = {}
    waivers: tuple[Waiver, ...] = ()
    for name, setting in value.items():
        key_line = value.lines.get(name, line)
        if name == "waive":
            waivers = parse_waive(path, key_line, key, setting)
        elif name not in SETTINGS:
            raise PolicyError(path, key_line, f"{key}: unknown key {name!r} (known: "
                              + ", ".join([*SETTINGS, "waive"]) + ")")
        else:
            settings[name] = _setting(path, key_line, f"{key}.{name}", SETTINGS[name].kind, setting,
                                      SETTINGS[name].paths)
    return Section(key, kind, pattern, settings, waivers, order)


def _usage_setting(path: str, line: int | None, where: str, kind: str, value: Any) -> Any:
    """A usage limit's value (checks/usage.py); None (``~``) turns an inherited one off."""
    if value is None and kind != "duration":
        return None
    if kind == "size":
        size = parse_size(value)
        if size is None:
            raise PolicyError(path, line, f"{where}: expected a size such as 2GiB, 512m or a number of "
                              f"bytes, got {value!r}")
        return size
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise PolicyError(path, line, f"{where}: expected a number of CPUs above 0, got {value!r}")
        return float(value)
    if kind == "count":
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise PolicyError(path, line, f"{where}: expected a whole number above 0, got {value!r}")
        return value
    seconds = parse_duration(value)
    if seconds is None:
        raise PolicyError(path, line, f"{where}: expected a duration such as 90, 30s, 5m or 1h, "
                          f"got {value!r}")
    return seconds


def _host_audit(path: str, line: int | None, value: Any) -> dict[str, bool]:
    """``host_audit``: which daemon and image checks ``audit`` runs, over the profile's."""
    if not isinstance(value, Lines):
        raise PolicyError(path, line, "host_audit: expected a mapping of daemon and image check keys "
                          f"({', '.join(HOST_SETTINGS)}) to yes or no; got {value!r}")
    out: dict[str, bool] = {}
    for name, setting in value.items():
        key_line = value.lines.get(name, line)
        if name not in HOST_SETTINGS:
            raise PolicyError(path, key_line, f"host_audit: unknown key {name!r} (known: "
                              + ", ".join(HOST_SETTINGS) + ")")
        out[name] = _setting(path, key_line, f"host_audit.{name}", "bool", setting)
    return out


def _webhook(path: str, line: int | None, value: Any) -> Webhook:
    """YAML 1.1 reads a bare ``on`` key as true: taken here as the ``on`` it was written as."""
    lines: dict[Any, int] = {}
    if isinstance(value, Lines):
        if True in value and "on" in value:
            raise PolicyError(path, value.lines.get(True), "webhook: duplicate key 'on'")
        lines = {("on" if k is True else k): n for k, n in value.lines.items()}
        value = {("on" if k is True else k): v for k, v in value.items()}
    try:
        return parse_webhook(value)
    except HookError as e:
        raise PolicyError(path, lines.get(e.key, line), str(e)) from None


# Reserved top-level keys whose value is a mapping of its own.
MAPPINGS = {"host_audit": _host_audit, "webhook": _webhook, "image_scan": _image_scan}


def _setting(path: str, line: int | None, where: str, kind: str, value: Any, paths: bool = False) -> Any:
    if kind in ("size", "number", "count", "duration"):
        return _usage_setting(path, line, where, kind, value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise PolicyError(path, line, f"{where}: expected yes or no, got {value!r}")
        return value
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise PolicyError(path, line, f"{where}: expected a list of strings, got {value!r}")
    relative = [v for v in value if not v.startswith("/")] if paths else []
    if relative:
        raise PolicyError(path, line, f"{where}: expected absolute host paths, got {relative[0]!r}")
    return list(value)
