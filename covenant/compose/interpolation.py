"""``${VAR}`` interpolation as compose-go's template package does it, and ``.env`` as its
dotenv parser reads it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .model import ComposeError, LineDict

NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
BRACED = re.compile(r"([_a-zA-Z][_a-zA-Z0-9]*)(?:(:?[-?+])(.*))?", re.S)


# -- interpolation ------------------------------------------------------------------------------

def interpolate(text: str, env: Mapping[str, str], missing: list[str] | None = None) -> str:
    """``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?err}``,
    ``${VAR?err}``, ``${VAR:+alt}``, ``${VAR+alt}``, defaults themselves interpolated, as
    compose-go's template package reads them. An unset variable without a default is empty
    (its name added to ``missing``, compose warns); ``?`` raises ``ValueError``."""
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch != "$":
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1:i + 2]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            end = _closing_brace(text, i + 2)
            out.append(_braced(text[i + 2:end], env, missing))
            i = end + 1
        elif (m := NAME.match(text, i + 1)) is not None:
            if m.group() not in env and missing is not None:
                missing.append(m.group())
            out.append(env.get(m.group(), ""))
            i = m.end()
        else:
            raise ValueError(f"invalid interpolation format for {text!r}: "
                             "a $ must be $$, $NAME or ${...}")
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth, i = 1, start
    while i < len(text):
        if text.startswith("${", i):
            depth, i = depth + 1, i + 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError(f"invalid interpolation format for {text!r}: unclosed ${{")


def _braced(body: str, env: Mapping[str, str], missing: list[str] | None) -> str:
    m = BRACED.fullmatch(body)
    if m is None:
        raise ValueError(f"invalid interpolation format for ${{{body}}}")
    name, op, rest = m.group(1), m.group(2), m.group(3) or ""
    value, is_set = env.get(name), name in env
    if op is None:
        if not is_set and missing is not None:
            missing.append(name)
        return value or ""
    non_empty = bool(value)
    present = non_empty if op.startswith(":") else is_set
    kind = op[-1]
    if kind == "-":
        return str(value) if present else interpolate(rest, env, missing)
    if kind == "+":
        return interpolate(rest, env, missing) if present else ""
    if not present:  # "?"
        raise ValueError(f"required variable {name} is missing a value: {interpolate(rest, env, missing)}")
    return str(value)


def interpolate_tree(node: Any, env: Mapping[str, str], path: str, line: int, where: str,
                      missing: list[str]) -> Any:
    """Every string value (not keys) interpolated, lines kept for errors."""
    if isinstance(node, LineDict):
        out = LineDict()
        out.line, out.lines = node.line, dict(node.lines)
        for key, value in node.items():
            out[key] = interpolate_tree(value, env, path, node.line_of(str(key)),
                                         f"{where}.{key}".lstrip("."), missing)
        return out
    if isinstance(node, dict):
        return {k: interpolate_tree(v, env, path, line, f"{where}.{k}", missing) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(v, env, path, line, f"{where}[{n}]", missing) for n, v in enumerate(node)]
    if isinstance(node, str):
        try:
            return interpolate(node, env, missing)
        except ValueError as e:
            raise ComposeError(path, line, f"error while interpolating {where}: {e}") from None
    return node


# -- .env -----------------------------------------------------------------------------------------

def read_dotenv(path: Path, env: Mapping[str, str]) -> dict[str, str]:
    """``KEY=VALUE`` lines (``export`` allowed, ``#`` comments, quotes; double-quoted and
    bare values interpolated from ``env`` and the lines above), as compose reads ``.env``."""
    found: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return found
    except OSError as e:
        raise ComposeError(str(path), None, e.strerror or str(e)) from None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, eq, value = line.partition("=")
        key = key.strip()
        if not NAME.fullmatch(key):
            raise ComposeError(str(path), number, f"unexpected character in variable name {key!r}")
        if not eq:
            continue  # a bare name: take it from the environment, which wins anyway
        value = value.strip()
        scope = {**found, **env}
        try:
            if value[:1] in ("'", '"'):
                value = _quoted(value, scope)
            else:
                value = interpolate(re.split(r"\s+#", value, maxsplit=1)[0].strip(), scope)
        except ValueError as e:
            raise ComposeError(str(path), number, str(e)) from None
        found[key] = value
    return found


DOTENV_ESCAPES = {"n": "\n", "r": "\r", "t": "\t"}


def _quoted(value: str, scope: Mapping[str, str]) -> str:
    """A quoted ``.env`` value as compose-go's dotenv parser reads it: up to the first
    quote not escaped by a backslash (what follows is a comment), a backslash kept before
    any other character; in double quotes ``\\n``, ``\\r``, ``\\t`` expanded, other escapes
    unescaped and ``${VAR}`` interpolated. A value whose quote does not close on its line
    (compose reads on, across lines) is refused rather than read otherwise."""
    quote, chars, escaped = value[0], [], False
    for char in value[1:]:
        if char == quote and not escaped:
            break
        if char == "\\" and not escaped:
            escaped = True
            continue
        if escaped and char != quote:
            chars.append("\\")
        chars.append(char)
        escaped = False
    else:
        raise ValueError(f"unterminated quoted value {value!r} (a value across lines is not read here)")
    text = "".join(chars)
    if quote == "'":
        return text
    def unescape(m: re.Match[str]) -> str:
        return DOTENV_ESCAPES.get(m.group(1), "$$" if m.group(1) == "$" else m.group(1))

    text = re.sub(r"\\(.)", unescape, text)
    return interpolate(text, scope)
