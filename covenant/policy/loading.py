"""Reading the policy file: YAML's safe loader with the line of every key, every setting
validated with ``FILE:LINE: message`` errors, into the plain data of ``model``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from ..checks import (
    CHECKS,
    PROFILES,
    SCAN_FORMATS,
    SETTINGS,
    SEVERITIES,
    USAGE_CHECKS,
    parse_duration,
    parse_size,
)
from ..checks.daemon import HOST_SETTINGS
from ..hooks import HookError, Webhook, parse_webhook
from ..rules.api import RuleError, parse_groups, parse_rules
from ..rules.quota import parse_quotas
from ..selectors import selector_kind
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
}


# Reserved keys of the request policy (covenant/rules): who may do what through the API.
REQUEST_KEYS = ("groups", "api_rules", "quotas")


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


def _timestamp(loader: _LineLoader, node: yaml.ScalarNode) -> Any:
    """YAML's timestamp, or its text when it names no real day (``2026-02-30``): PyYAML
    raises a bare ValueError there, which would escape the file:line errors."""
    try:
        return loader.construct_yaml_timestamp(node)
    except ValueError:
        return loader.construct_scalar(node)


_LineLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


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
    if not isinstance(value, _Lines):
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
    if not isinstance(value, _Lines):
        raise PolicyError(path, line, f"{key}: a container section must be a mapping of settings "
                          f"(such as {', '.join(list(SETTINGS)[:3])}); got {value!r}")
    settings: dict[str, Any] = {}
    waivers: tuple[Waiver, ...] = ()
    for name, setting in value.items():
        key_line = value.lines.get(name, line)
        if name == "waive":
            waivers = _waive(path, key_line, key, setting)
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
    if not isinstance(value, _Lines):
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
    if isinstance(value, _Lines):
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


WAIVER_KEYS = ("checks", "reason", "ticket", "owner", "until")


def _waive(path: str, line: int | None, key: str, value: Any) -> tuple[Waiver, ...]:
    """``waive``: check ids (the short form: no reason, no end), waivers in the long form
    (a mapping with checks, reason, and optionally ticket, owner, until), or a list of both."""
    items = [value] if isinstance(value, (str, _Lines)) else value
    if not isinstance(items, list) or not all(isinstance(i, (str, _Lines)) for i in items):
        raise PolicyError(path, line, f"{key}.waive: expected a list of check ids or of waivers (checks, "
                          f"reason, ticket, owner, until), got {value!r}")
    ids = [i for i in items if isinstance(i, str)]
    out = [Waiver(_check_ids(path, line, f"{key}.waive", ids), line=line, section=key)] if ids else []
    out += [_long_waiver(path, line, key, i) for i in items if isinstance(i, _Lines)]
    return tuple(out)


def _check_ids(path: str, line: int | None, where: str, ids: list[str]) -> frozenset[str]:
    unknown = [i for i in ids if i.upper() not in CHECKS and i.upper() not in USAGE_IDS]
    if unknown:
        raise PolicyError(path, line, f"{where}: unknown check id {unknown[0]!r} "
                          f"(known: {CATALOGUE_RANGE})")
    return frozenset(i.upper() for i in ids)


def _long_waiver(path: str, line: int | None, key: str, value: _Lines) -> Waiver:
    """One waiver of the long form, each key checked with its own line."""
    start = min(value.lines.values(), default=line)
    for name in value:
        if name not in WAIVER_KEYS:
            raise PolicyError(path, value.lines.get(name, start), f"{key}.waive: unknown key {name!r} "
                              f"(known: {', '.join(WAIVER_KEYS)})")

    def where(name: str) -> int | None:
        return value.lines.get(name, start)

    checks = value.get("checks")
    ids = [checks] if isinstance(checks, str) else checks
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise PolicyError(path, where("checks"), f"{key}.waive.checks: expected a list of check ids, "
                          f"got {checks!r}")
    reason = value.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise PolicyError(path, where("reason"), f"{key}.waive: a waiver needs a reason (why these checks "
                          f"are waived), got {reason!r}")
    text: dict[str, str] = {}
    for name in ("ticket", "owner"):
        found = value.get(name)
        if found is not None and (isinstance(found, bool) or not isinstance(found, (str, int))
                                  or not str(found).strip()):
            raise PolicyError(path, where(name), f"{key}.waive.{name}: expected a string, got {found!r}")
        text[name] = "" if found is None else str(found).strip()
    until, expires = "", None
    if "until" in value:
        until, expires = _until(path, where("until"), f"{key}.waive.until", value["until"])
    return Waiver(_check_ids(path, where("checks"), f"{key}.waive.checks", ids), reason.strip(),
                  text["ticket"], text["owner"], until, expires, start, key)


def _until(path: str, line: int | None, where: str, value: Any) -> tuple[str, float]:
    """A date (through the end of that day, UTC) or a timestamp with its zone: the text as
    written (normalised) and the instant from which the waiver no longer applies."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            raise PolicyError(path, line, f"{where}: expected a date (2026-12-31) or a timestamp with "
                              f"its zone (2026-12-31T18:00:00Z), got {text!r}") from None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise PolicyError(path, line, f"{where}: a timestamp needs its zone (Z or +HH:MM), got "
                              f"{value.isoformat()!r}")
        return value.isoformat().replace("+00:00", "Z"), _in_range(path, line, where, value.isoformat(),
                                                                    value.timestamp())
    if isinstance(value, date):
        try:
            end: float | None = datetime.combine(value + timedelta(days=1), time(), timezone.utc).timestamp()
        except OverflowError:  # 9999-12-31: its end, the next day, is past what a datetime holds
            end = None
        return value.isoformat(), _in_range(path, line, where, value.isoformat(), end)
    raise PolicyError(path, line, f"{where}: expected a date (2026-12-31) or a timestamp with its zone "
                      f"(2026-12-31T18:00:00Z), got {value!r}")


def _in_range(path: str, line: int | None, where: str, text: str, expires: float | None) -> float:
    """An end the daemon can write in UTC (its log lines, journal fields and ``--check-config``
    print it): one outside years 1-9999 once in UTC (``9999-12-31``, whose end is the next
    day; ``9999-12-31T23:00:00-05:00``) is refused at load, not left to fail each evaluation
    (a violator whose waived finding could not be logged was never stopped) or a reload."""
    try:
        if expires is not None:
            datetime.fromtimestamp(expires, timezone.utc)
            return expires
    except (OverflowError, ValueError, OSError):
        pass
    raise PolicyError(path, line, f"{where}: {text!r} ends outside the years 1-9999 in UTC (the last "
                      "date is 9999-12-30); leave out until for a waiver without an end")


USAGE_IDS = frozenset(c.id for c in USAGE_CHECKS)
CATALOGUE_RANGE = (f"{min(CHECKS)}-{max(CHECKS)}, {min(USAGE_IDS)}-{max(USAGE_IDS)}; "
                   "see docker-covenant checks")
