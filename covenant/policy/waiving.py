"""``waive`` in a container section: the short form (check ids) and the long form (checks,
reason, ticket, owner, until), each validated with its line; ``until`` read as a day
(through its end, UTC) or a timestamp with its zone."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from ..checks import CHECKS, USAGE_CHECKS
from .lines import Lines
from .model import PolicyError, Waiver

WAIVER_KEYS = ("checks", "reason", "ticket", "owner", "until")


def parse_waive(path: str, line: int | None, key: str, value: Any) -> tuple[Waiver, ...]:
    """``waive``: check ids (the short form: no reason, no end), waivers in the long form
    (a mapping with checks, reason, and optionally ticket, owner, until), or a list of both."""
    items = [value] if isinstance(value, (str, Lines)) else value
    if not isinstance(items, list) or not all(isinstance(i, (str, Lines)) for i in items):
        raise PolicyError(path, line, f"{key}.waive: expected a list of check ids or of waivers (checks, "
                          f"reason, ticket, owner, until), got {value!r}")
    ids = [i for i in items if isinstance(i, str)]
    out = [Waiver(_check_ids(path, line, f"{key}.waive", ids), line=line, section=key)] if ids else []
    out += [_long_waiver(path, line, key, i) for i in items if isinstance(i, Lines)]
    return tuple(out)


def _check_ids(path: str, line: int | None, where: str, ids: list[str]) -> frozenset[str]:
    unknown = [i for i in ids if i.upper() not in CHECKS and i.upper() not in USAGE_IDS]
    if unknown:
        raise PolicyError(path, line, f"{where}: unknown check id {unknown[0]!r} "
                          f"(known: {CATALOGUE_RANGE})")
    return frozenset(i.upper() for i in ids)


def _long_waiver(path: str, line: int | None, key: str, value: Lines) -> Waiver:
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
