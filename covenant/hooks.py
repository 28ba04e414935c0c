"""The ``webhook`` setting of a policy and the document it sends: plain data, no I/O.

A webhook tells another system (a chat channel, an incident tool) about decisions as they
are taken. Which decisions, where, and how hard to try are policy data, validated here so
that a bad value is refused at load with its file and line like any other; the sending
(a queue and a thread that never hold up a kill) is ``webhook.py``'s.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from .checks.model import Violation

# What the events daemon decides (``Enforcer``): the decision's action, or the outcome of
# a stop (``gone``: it had ended first, ``failed``: the engine refused or was unreachable).
KINDS = ("killed", "stopped", "warned", "allowed", "gone", "failed", "error", "denied")
KEYS = ("url", "on", "timeout", "retries", "queue")
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s)$")
MAX_TIMEOUT, MAX_RETRIES, MAX_QUEUE = 60.0, 10, 100_000


class HookError(Exception):
    """A webhook setting that cannot be used: ``key`` names the offending key (None: the
    mapping itself), so the policy loader can give its line."""

    def __init__(self, key: str | None, message: str) -> None:
        self.key = key
        super().__init__(message)


@dataclass(frozen=True)
class Webhook:
    """Where decisions of the listed kinds are POSTed, and how hard to try: ``timeout``
    seconds for each connect and each read, ``retries`` more attempts after the first
    (with a backoff that doubles from 0.5 s), at most ``queue`` documents waiting."""

    url: str
    on: tuple[str, ...] = ("killed", "stopped")
    timeout: float = 2.0
    retries: int = 3
    queue: int = 1000

    def describe(self) -> dict[str, Any]:
        return {"url": self.url, "on": list(self.on), "timeout": self.timeout, "retries": self.retries,
                "queue": self.queue}


def duration(value: Any) -> float | None:
    """Seconds from ``2s``, ``500ms``, ``1.5s`` or a plain number; None if not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    number = float(match.group(1))
    return number / 1000 if match.group(2) == "ms" else number


def parse_webhook(value: Any) -> Webhook:
    """The ``webhook`` mapping as written; raises ``HookError`` naming the bad key."""
    if not isinstance(value, Mapping):
        raise HookError(None, f"webhook: expected a mapping with url (and {', '.join(KEYS[1:])}); "
                              f"got {value!r}")
    unknown = [k for k in value if k not in KEYS]
    if unknown:
        raise HookError(str(unknown[0]), f"webhook: unknown key {unknown[0]!r} (known: {', '.join(KEYS)})")
    url = value.get("url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise HookError("url" if "url" in value else None,
                        f"webhook.url: expected an http:// or https:// URL, got {url!r}")
    on = value.get("on", list(Webhook.on))
    if isinstance(on, str):
        on = [on]
    if not isinstance(on, list) or not on or not all(isinstance(k, str) and k in KINDS for k in on):
        raise HookError("on", f"webhook.on: expected a list of: {', '.join(KINDS)}; got {on!r}")
    timeout = duration(value.get("timeout", Webhook.timeout))
    if timeout is None or not 0 < timeout <= MAX_TIMEOUT:
        raise HookError("timeout", f"webhook.timeout: expected a duration above 0 and at most "
                                   f"{MAX_TIMEOUT:g}s (2s, 500ms), got {value.get('timeout')!r}")
    retries = value.get("retries", Webhook.retries)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
        raise HookError("retries", f"webhook.retries: expected a whole number from 0 to {MAX_RETRIES}, "
                                   f"got {retries!r}")
    size = value.get("queue", Webhook.queue)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_QUEUE:
        raise HookError("queue", f"webhook.queue: expected a whole number from 1 to {MAX_QUEUE}, "
                                 f"got {size!r}")
    return Webhook(str(url), tuple(dict.fromkeys(on)), timeout, retries, size)


def document(*, action: str, container_id: str, name: str, image: str, violations: Iterable[Violation],
             mode: str, host: str, when: float) -> dict[str, Any]:
    """The JSON document POSTed for one decision."""
    return {
        "action": action,
        "container": {"id": container_id, "name": name, "image": image},
        "checks": [{"check": v.check, "message": v.message} for v in violations],
        "mode": mode,
        "host": host,
        "time": datetime.fromtimestamp(when, timezone.utc).isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"),
    }
