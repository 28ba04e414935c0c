"""Decode a request body exactly as dockerd's Go ``encoding/json`` does into its structs.

The plugin must judge the configuration dockerd will store, and Go decodes differently
from ``json.loads`` in ways an attacker can use:

* a key matches a struct field exactly, else by Go's case folding (ASCII letters, plus
  U+017F long s for ``s`` and U+212A Kelvin sign for ``k``; nothing else folds to ASCII);
  keys matching no field are ignored;
* a repeated key decodes *into* the value already there: objects merge into structs
  and maps, and an array decodes into the existing slice's elements, element by element;
* ``null`` sets a slice, map or pointer to nil and leaves a bool, number, string or
  struct unchanged;
* a type mismatch does not stop decoding, but fails the whole request (dockerd then
  answers 400 and creates nothing);
* only the first JSON value of the body is read (dockerd 20.10 ignores what follows).

Where Go's result depends on its allocator (a repeated array reaching slice elements a
shorter array left behind, which Go may or may not have reallocated), we do not guess:
``AmbiguousError``. Types are a small schema (``Struct``, ``Slice``, ...) written from
moby's ``api/types`` (20.10 and 26.1); every field of a modelled struct is listed, so
key matching is Go's even for fields no check reads (``SKIP``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

_INT = re.compile(r"-?(0|[1-9][0-9]*)$")
_WS = " \t\n\r"


class DecodeError(ValueError):
    """dockerd would refuse this body (syntax or type error): it creates nothing."""


class AmbiguousError(ValueError):
    """Go's result depends on slice capacity; we refuse to guess."""


class Number(str):
    """A JSON number as its literal text: Go parses it per target type."""


class Pairs(list):  # type: ignore[type-arg]
    """A JSON object as its ordered (key, value) pairs: Go's semantics need every one."""


# -- the schema ------------------------------------------------------------------------------

class GoType:
    def zero(self) -> Any:
        return None


@dataclass(frozen=True)
class Scalar(GoType):
    kind: str  # bool, string, int, uint, float

    def zero(self) -> Any:
        return {"bool": False, "string": "", "float": 0.0}.get(self.kind, 0)


@dataclass(frozen=True)
class Skip(GoType):
    """A field we do not model: any value is accepted and ignored."""


@dataclass(frozen=True)
class StrSlice(GoType):
    """moby's ``strslice.StrSlice``: its own UnmarshalJSON takes a string or an array,
    decoded afresh each time (no element reuse)."""


@dataclass(frozen=True)
class Slice(GoType):
    elem: GoType


@dataclass(frozen=True)
class Map(GoType):
    elem: GoType


@dataclass(frozen=True)
class Ptr(GoType):
    elem: GoType


@dataclass(frozen=True)
class Embedded:
    """An embedded struct (``pointer``: an embedded pointer, allocated on first use)."""

    struct: Struct
    pointer: bool = False


@dataclass(frozen=True)
class Struct(GoType):
    name: str
    members: tuple[tuple[str, GoType] | Embedded, ...]
    fields: dict[str, tuple[tuple[str, ...], GoType]] = field(default_factory=dict, compare=False,
                                                             hash=False, repr=False)
    folded: dict[str, tuple[tuple[str, ...], GoType]] = field(default_factory=dict, compare=False,
                                                             hash=False, repr=False)

    def __post_init__(self) -> None:
        # Go's typeFields: the shallowest field of a name wins; two at the same depth
        # cancel out; the order (depth-first, as declared) decides folding ties.
        found: dict[str, list[tuple[int, tuple[str, ...], GoType]]] = {}
        for depth, path, name, typ in self._flatten((), 0):
            found.setdefault(name, []).append((depth, path, typ))
        for name, candidates in found.items():
            depth = min(c[0] for c in candidates)
            best = [c for c in candidates if c[0] == depth]
            if len(best) == 1:
                self.fields[name] = (best[0][1], best[0][2])
        for name, found_field in self.fields.items():  # the first under folding wins
            self.folded.setdefault(fold(name), found_field)

    def _flatten(self, prefix: tuple[str, ...],
                 depth: int) -> Iterable[tuple[int, tuple[str, ...], str, GoType]]:
        """Fields depth-first in declaration order. A non-pointer embedded struct's fields
        sit in the same dict (as inspect shows them); an embedded pointer gets a
        ``*Name`` key, present once Go allocated it."""
        for member in self.members:
            if isinstance(member, Embedded):
                step = ("*" + member.struct.name,) if member.pointer else ()
                yield from member.struct._flatten((*prefix, *step), depth + 1)
            else:
                yield depth, (*prefix, member[0]), member[0], member[1]

    def zero(self) -> Any:
        return {}

    def lookup(self, key: str) -> tuple[tuple[str, ...], GoType] | None:
        """Go's field matching: the exact name, else the first name equal under folding."""
        if key in self.fields:
            return self.fields[key]
        return self.folded.get(fold(key))


BOOL, STRING, INT, UINT, FLOAT = (Scalar(k) for k in ("bool", "string", "int", "uint", "float"))
SKIP = Skip()


def fold(name: str) -> str:
    """Go's ``foldName``: ASCII upper case, long s and Kelvin sign to ``S`` and ``K``; any
    other non-ASCII rune folds to a non-ASCII one, so it never matches a Docker field."""
    return name.upper().replace("\u017f", "S").replace("\u212a", "K") if name.isascii() else "".join(
        "S" if ch == "\u017f" else "K" if ch == "\u212a" else ch.upper() if ch.isascii() else ch
        for ch in name)


def skipped(*names: str, typ: GoType = SKIP) -> tuple[tuple[str, GoType], ...]:
    return tuple((n, typ) for n in names)


# -- values ------------------------------------------------------------------------------------

@dataclass
class GoSlice:
    """A Go slice: its elements, and how far the backing array was ever filled (elements
    past the length but under that mark are left over from an earlier, longer array)."""

    items: list[Any]
    high: int = 0


# -- decoding --------------------------------------------------------------------------------

def parse(raw: bytes) -> Any:
    """The first JSON value of the body, objects as ``Pairs`` and numbers as ``Number``."""
    text = raw.decode("utf-8", errors="replace")  # Go replaces invalid UTF-8 with U+FFFD
    start = len(text) - len(text.lstrip(_WS))
    decoder = json.JSONDecoder(object_pairs_hook=Pairs, parse_int=Number, parse_float=Number,
                               parse_constant=_no_constant)
    try:
        value, _ = decoder.raw_decode(text, start)
    except json.JSONDecodeError as e:
        raise DecodeError(f"not JSON: {e}") from None
    return value


def _no_constant(name: str) -> Any:
    raise DecodeError(f"not JSON: {name}")


class Decoder:
    """Decodes one parsed value into a schema type, collecting Go's type errors."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def decode(self, value: Any, typ: GoType, into: Any = None) -> Any:  # noqa: PLR0911 - one per kind
        """The Go value after decoding ``value`` into a variable holding ``into``."""
        current = typ.zero() if into is None and not isinstance(typ, (Ptr, Slice, Map, StrSlice)) else into
        if isinstance(typ, Skip):
            return current
        if value is None:
            return None if isinstance(typ, (Ptr, Slice, Map, StrSlice)) else current
        if isinstance(typ, Ptr):
            return self.decode(value, typ.elem, current if current is not None else typ.elem.zero())
        if isinstance(typ, Scalar):
            return self._scalar(value, typ, current)
        if isinstance(typ, StrSlice):
            return self._strslice(value)
        if isinstance(typ, Slice):
            return self._slice(value, typ, current)
        if isinstance(typ, Map):
            return self._map(value, typ, current)
        if isinstance(typ, Struct):
            return self._struct(value, typ, current)
        raise TypeError(typ)

    def _mismatch(self, value: Any, typ: GoType | str) -> None:
        self.errors.append(f"cannot unmarshal {type(value).__name__} into {typ}")

    def _scalar(self, value: Any, typ: Scalar, current: Any) -> Any:
        kind = typ.kind
        if kind == "bool" and isinstance(value, bool):
            return value
        if kind == "string" and isinstance(value, str) and not isinstance(value, Number):
            return value
        if isinstance(value, Number) and kind in ("int", "uint") and len(value) < 25 and _INT.match(value):
            n = int(value)
            if (kind == "int" and -(2 ** 63) <= n < 2 ** 63) or (kind == "uint" and 0 <= n < 2 ** 64):
                return n
        if isinstance(value, Number) and kind == "float":
            return float(value)
        self._mismatch(value, kind)
        return current

    def _strslice(self, value: Any) -> Any:
        if isinstance(value, str) and not isinstance(value, Number):
            return [value]
        if isinstance(value, list) and not isinstance(value, Pairs):
            out = []
            for v in value:
                if v is not None and (not isinstance(v, str) or isinstance(v, Number)):
                    self._mismatch(v, "strslice")
                out.append("" if v is None else str(v))
            return out
        self._mismatch(value, "strslice")
        return None

    def _slice(self, value: Any, typ: Slice, current: GoSlice | None) -> Any:
        if not isinstance(value, list) or isinstance(value, Pairs):
            self._mismatch(value, "slice")
            return current
        if not value:
            return GoSlice([], 0)
        s = current if current is not None else GoSlice([], 0)
        for i, v in enumerate(value):
            if i < len(s.items):
                s.items[i] = self.decode(v, typ.elem, s.items[i])
            elif i < s.high:
                raise AmbiguousError("a repeated array reaches elements an earlier one left behind")
            else:
                s.items.append(self.decode(v, typ.elem, None))
        del s.items[len(value):]
        s.high = max(s.high, len(value))
        return s

    def _map(self, value: Any, typ: Map, current: dict[str, Any] | None) -> Any:
        if not isinstance(value, Pairs):
            self._mismatch(value, "map")
            return current
        out = current if current is not None else {}
        for k, v in value:
            out[k] = self.decode(v, typ.elem, None)  # each element starts from zero
        return out

    def _struct(self, value: Any, typ: Struct, current: dict[str, Any]) -> Any:
        if not isinstance(value, Pairs):
            self._mismatch(value, typ.name)
            return current
        for key, v in value:
            found = typ.lookup(key)
            if found is None:
                continue
            path, ftyp = found
            target = current
            for step in path[:-1]:  # through embedded structs, allocating pointers
                target = target.setdefault(step, {})
            target[path[-1]] = self.decode(v, ftyp, target.get(path[-1]))
        return current


def decode(raw: bytes, typ: GoType) -> Any:
    """Decode a body into ``typ`` as dockerd would; ``DecodeError`` where dockerd fails."""
    decoder = Decoder()
    try:
        value = decoder.decode(parse(raw), typ)
    except RecursionError:
        raise DecodeError("JSON nested too deeply") from None
    if decoder.errors:
        raise DecodeError("json: " + decoder.errors[0])
    return value


def plain(value: Any) -> Any:
    """Go values as plain data (slices as lists; an embedded pointer's fields stay under
    its ``*Name`` key)."""
    if isinstance(value, GoSlice):
        return [plain(v) for v in value.items]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value
