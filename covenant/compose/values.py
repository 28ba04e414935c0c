"""Reading one service's values as compose does: strings and lists, mappings or
``KEY=VALUE`` lists, booleans as compose-go casts them, sizes (go-units) and durations (Go),
each failing with the file and the service's line."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .model import ComposeError, LineDict, Model

UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
DURATION = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")
DURATION_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9,
               "h": 3600 * 10**9}
UNSET: Any = object()  # a value not given: read the key's own


class Reader:
    """Reads one service's values, failing with the file and line of the service."""

    def __init__(self, model: Model, service: str, data: Mapping[str, Any]) -> None:
        self.model, self.service, self.data = model, service, data

    def line(self, key: str = "") -> int | None:
        if isinstance(self.data, LineDict):
            return self.data.line_of(key) if key else self.data.line
        return None

    def fail(self, key: str, message: str) -> ComposeError:
        return ComposeError(self.model.path, self.line(key), f"services.{self.service}.{key}: {message}")

    def strings(self, key: str) -> list[str]:
        value = self.data.get(key)
        if value is None:
            return []
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return [str(value)]
        if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
            return [str(v) for v in value]
        raise self.fail(key, "expected a string or a list of strings")

    def mapping(self, key: str, sep: str = "=") -> dict[str, str]:
        """A ``{k: v}`` mapping or a ``["k=v", ...]`` list, values as strings."""
        value = self.data.get(key)
        if value is None:
            return {}
        if isinstance(value, dict):
            return {str(k): scalar(v) for k, v in value.items()}
        if isinstance(value, list):
            out = {}
            for item in value:
                k, _, v = str(item).partition(sep)
                out[k.strip()] = v.strip()
            return out
        raise self.fail(key, "expected a mapping or a list of KEY=VALUE")

    def boolean(self, key: str, value: Any = UNSET, where: str = "") -> bool:
        value = self.data.get(key, False) if value is UNSET else value
        try:
            return to_bool(value)
        except ValueError as e:
            raise self.fail(where or key, str(e)) from None

    def size(self, key: str, value: Any = UNSET, where: str = "") -> int:
        value = self.data.get(key) if value is UNSET else value
        try:
            return to_bytes(value)
        except ValueError as e:
            raise self.fail(where or key, str(e)) from None

    def number(self, key: str, value: Any = UNSET, where: str = "") -> float:
        value = self.data.get(key) if value is UNSET else value
        try:
            return float(value or 0)
        except (TypeError, ValueError):
            raise self.fail(where or key, f"expected a number, got {value!r}") from None

    def integer(self, key: str, value: Any = UNSET, where: str = "") -> int:
        value = self.data.get(key) if value is UNSET else value
        if isinstance(value, bool):
            raise self.fail(where or key, f"expected an integer, got {value!r}")
        try:
            return int(value or 0)
        except (TypeError, ValueError):
            raise self.fail(where or key, f"expected an integer, got {value!r}") from None


def scalar(value: Any) -> str:
    """A value as the string compose makes of it (Go's formatting: ``1e3`` is ``1000``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return "" if value is None else str(value)


TRUE, FALSE = ("y", "yes", "true", "on"), ("n", "no", "false", "off")


def to_bool(value: Any) -> bool:
    """A boolean as compose reads one: YAML's, or a string (``${RO}``, ``"false"``) as
    compose-go's ``toBoolean`` casts it -- ``y``/``yes``/``true``/``on`` and ``n``/``no``/
    ``false``/``off`` in any case; anything else refused (never Python's truth of a
    non-empty string, which made ``read_only: "false"`` read-only). Absent is false."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.lower() in TRUE + FALSE:
        return value.lower() in TRUE
    raise ValueError(f"expected a boolean, got {value!r}")


def flag(model: Model, value: Any, where: str) -> bool:
    try:
        return to_bool(value)
    except ValueError as e:
        raise ComposeError(model.path, None, f"{where}: {e}") from None


def to_bytes(value: Any) -> int:
    """go-units ``RAMInBytes``, which compose applies to sizes: ``64m``, ``1.5GiB``, ``512``
    (binary multiples, any case, optional ``b``/``ib``)."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise ValueError(f"expected a size, got {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtTpP]?)[iI]?[bB]?\s*", str(value))
    if m is None:
        raise ValueError(f"invalid size: {value!r}")
    return int(float(m.group(1)) * UNITS[m.group(2).lower()])


def to_nanoseconds(value: Any) -> int:
    """A Go duration as compose reads one (``1m30s``, ``500ms``); a bare number is seconds."""
    if value is None or value == "":
        return 0
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value * 10**9)
    text = str(value).strip()
    parts = DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid duration: {value!r}")
    return int(sum(float(n) * DURATION_NS[u] for n, u in parts))
