"""YAML as compose-go's yaml.v3 reads it: its scalars, merge keys, a key written twice
refused, every mapping remembering its keys' lines; and the line each service starts on."""

from __future__ import annotations

import re
from typing import Any

import yaml

from .model import ComposeError, LineDict

_BOOL, _INT, _FLOAT = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_TIMESTAMP, _VALUE = "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value"
# Go's strconv.ParseInt(s, 0, 64), which yaml.v3 applies once every "_" is taken out
GO_INT = re.compile(r"[-+]?(?:0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)")
GO_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")


class _Loader(yaml.SafeLoader):
    """Plain scalars as compose-go's yaml.v3 resolves them into untyped values: booleans
    only ``true``/``false`` (any of three cases: ``yes``, ``on``, ``y`` are strings, which
    compose casts where it wants a boolean, so a label ``trusted: yes`` is ``yes``);
    integers as Go's ``ParseInt`` base 0 once ``_`` is taken out (``0x1F``, ``0o17``,
    ``0b11``, ``1_000``, and ``017`` octal: 15, as YAML 1.1); other numbers as floats
    (``09`` is nine); ``80:80`` is a string, not YAML 1.1's base-60 4880 (a port mapping
    left unquoted); a timestamp is a string."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag not in (_BOOL, _INT, _FLOAT, _TIMESTAMP, _VALUE)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Loader.add_implicit_resolver(_INT, re.compile(r"^[-+]?[0-9][0-9a-fA-FxXoObB_]*$"), list("-+0123456789"))
_Loader.add_implicit_resolver(
    _FLOAT, re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9_]+)?"
                       r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), list("-+.0123456789"))


def _construct_number(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    """yaml.v3's reading of a plain scalar that starts like a number: an integer, a float,
    or the text itself."""
    text = str(loader.construct_scalar(node))
    plain = text.replace("_", "") if text[:1] != "." else text
    if GO_INT.fullmatch(plain):
        sign, digits = (-1, plain[1:]) if plain[0] == "-" else (1, plain.lstrip("+"))
        if digits[:2].lower() in ("0x", "0o", "0b"):
            return sign * int(digits, 0)
        return sign * int(digits, 8 if digits[:1] == "0" and len(digits) > 1 else 10)
    if GO_FLOAT.fullmatch(plain):
        return float(plain)
    if re.fullmatch(r"[-+]?\.(?:inf|Inf|INF)", text):
        return float(text.replace(".", ""))
    if re.fullmatch(r"\.(?:nan|NaN|NAN)", text):
        return float("nan")
    return text


def _construct_map(loader: yaml.SafeLoader, node: yaml.MappingNode) -> LineDict:
    seen: set[str] = set()  # a key written twice is an error to compose (yaml.v3), not a merge;
    for key_node, _ in node.value:  # "<<" too (PyYAML would apply both, the later winning)
        if not isinstance(key_node, yaml.ScalarNode):
            continue
        if key_node.value in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"mapping key {key_node.value!r} already defined", key_node.start_mark)
        seen.add(key_node.value)
    loader.flatten_mapping(node)  # merge keys (<<: *anchor), the mapping's own keys winning
    out = LineDict()
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[str(key)] = key_node.start_mark.line + 1
    return out


_Loader.add_constructor(_INT, _construct_number)
_Loader.add_constructor(_FLOAT, _construct_number)
_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)


def parse_yaml(text: str, path: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        if e.problem == "but found another document":
            raise ComposeError(path, mark.line + 1 if mark else None,
                               "several YAML documents, which compose merges and this reader does not: with "
                               "`docker compose` or docker-compose v2 on PATH the merge is judged") from None
        raise ComposeError(path, mark.line + 1 if mark else None,
                           f"not YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise ComposeError(path, None, f"not YAML: {e}") from None


def service_lines(path: str) -> dict[str, int]:
    """The line each service's key is on in the file itself (reports point at it); empty
    when the file does not read as a mapping with ``services``."""
    try:
        with open(path, encoding="utf-8") as f:
            root = yaml.compose(f, Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return {}
    if not isinstance(root, yaml.MappingNode):
        return {}
    for key, value in root.value:
        if key.value == "services" and isinstance(value, yaml.MappingNode):
            return {str(k.value): k.start_mark.line + 1 for k, _ in value.value}
    return {}
