"""Reading a compose file as compose v2 reads it: YAML 1.2 scalars, anchors and merge keys,
``${VAR}`` interpolation from the environment and ``.env``, and the project name.

Two ways to the same model. Where ``docker compose`` (the CLI plugin) or ``docker-compose``
v2 is on ``PATH``, its ``config --format json`` output *is* compose's own normalised model,
so nothing of compose's reading can be got wrong here. Without it (a CI image with only
Python), our own reader below does what compose does to the file before it creates
anything; ``convert`` accepts both shapes (raw short syntax and compose's long one).

Errors are :class:`ComposeError` with ``FILE:LINE`` where the file has a line to blame.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
BRACED = re.compile(r"([_a-zA-Z][_a-zA-Z0-9]*)(?:(:?[-?+])(.*))?", re.S)
PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
TOOL_TIMEOUT = 60.0
# What ``docker compose up`` reads without ``-f`` (compose-go's cli options, 2.26): the
# first of these in the folder, and the first override beside it, merged over it.
DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
OVERRIDE_FILES = ("compose.override.yml", "compose.override.yaml", "docker-compose.override.yml",
                  "docker-compose.override.yaml")
MERGED_HINT = ("judge what compose merges instead: `docker compose config > merged.yml` where it is deployed "
               "from, then audit merged.yml")


class ComposeError(Exception):
    """A compose file that cannot be judged; ``str()`` is ``FILE[:LINE]: message``."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path, self.line, self.message = path, line, message
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")


class LineDict(dict[str, Any]):
    """A YAML mapping that remembers the line of each key, for errors that name one."""

    line: int = 0
    lines: dict[str, int]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lines = {}

    def line_of(self, key: str) -> int:
        return self.lines.get(key, self.line)


@dataclass(frozen=True)
class Model:
    """A compose project as plain data: compose's model (``services``, ``volumes``,
    ``networks``, ``secrets``, ``configs``), its name, the folder relative paths are taken
    from, and where the model came from (``tool``: the command that normalised it, or
    empty for our own reader). ``warnings``: what compose would warn about (a variable not
    set), to be shown once."""

    path: str
    name: str
    directory: str
    data: Mapping[str, Any]
    tool: str = ""
    warnings: tuple[str, ...] = field(default_factory=tuple)


# -- YAML as compose-go's yaml.v3 reads it ------------------------------------------------------

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


def _interpolate_tree(node: Any, env: Mapping[str, str], path: str, line: int, where: str,
                      missing: list[str]) -> Any:
    """Every string value (not keys) interpolated, lines kept for errors."""
    if isinstance(node, LineDict):
        out = LineDict()
        out.line, out.lines = node.line, dict(node.lines)
        for key, value in node.items():
            out[key] = _interpolate_tree(value, env, path, node.line_of(str(key)),
                                         f"{where}.{key}".lstrip("."), missing)
        return out
    if isinstance(node, dict):
        return {k: _interpolate_tree(v, env, path, line, f"{where}.{k}", missing) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate_tree(v, env, path, line, f"{where}[{n}]", missing) for n, v in enumerate(node)]
    if isinstance(node, str):
        try:
            return interpolate(node, env, missing)
        except ValueError as e:
            raise ComposeError(path, line, f"error while interpolating {where}: {e}") from None
    return node


# -- .env and the project name ------------------------------------------------------------------

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


def normalise_project_name(name: str) -> str:
    """compose-go's ``NormalizeProjectName``: lower case, only ``a-z0-9_-``, no leading
    ``_`` or ``-`` (a folder called ``My App`` is project ``myapp``)."""
    return re.sub(r"[^-_a-z0-9]+", "", name.lower()).lstrip("_-")


def _explicit_name(name: str, path: str, source: str) -> str:
    if not PROJECT_NAME.match(name):
        raise ComposeError(path, None, f"invalid project name {name!r} ({source}): it must contain only "
                           "lower case letters, digits, dashes and underscores, and start with a letter or "
                           "digit")
    return name


# -- the two readers ----------------------------------------------------------------------------

def environment(path: str, env: Mapping[str, str] | None) -> dict[str, str]:
    """The variables the file is interpolated with: ``.env`` beside it, overridden by the
    environment (compose's precedence)."""
    base = dict(os.environ if env is None else env)
    return {**read_dotenv(Path(os.path.abspath(path)).parent / ".env", base), **base}


def own_model(path: str, project_name: str | None = None, env: Mapping[str, str] | None = None) -> Model:
    """The compose file read by our own reader: what compose does to it before creating
    anything (YAML, merge keys, interpolation, the project name); short syntax is left to
    ``convert``, which reads both."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ComposeError(path, None, e.strerror or str(e)) from None
    except UnicodeDecodeError:
        raise ComposeError(path, None, "not UTF-8 text") from None
    raw = parse_yaml(text, path)
    if not isinstance(raw, LineDict):
        raise ComposeError(path, 1, "a compose file must be a mapping with a `services` key")
    variables = environment(path, env)
    missing: list[str] = []
    data = _interpolate_tree(raw, variables, path, raw.line, "", missing)
    services = data.get("services")
    if not isinstance(services, dict) or not services:
        raise ComposeError(path, data.line_of("services") if "services" in data else 1,
                           "services must be a mapping of at least one service")
    for name, service in services.items():
        if not isinstance(service, dict):
            raise ComposeError(path, services.line_of(name) if isinstance(services, LineDict) else None,
                               f"services.{name} must be a mapping")
    directory = os.path.dirname(os.path.abspath(path))  # as named: compose does not follow a link
    if project_name:
        name = _explicit_name(project_name, path, "--project-name")
    elif variables.get("COMPOSE_PROJECT_NAME"):
        name = _explicit_name(variables["COMPOSE_PROJECT_NAME"], path, "COMPOSE_PROJECT_NAME")
    elif "name" in data:  # written but empty (an unset variable): compose refuses it too
        name = _explicit_name(str(data["name"] or ""), path, "name:")
    else:
        name = normalise_project_name(Path(directory).name)
    warnings = tuple(f"the {v} variable is not set; defaulting to a blank string"
                     for v in dict.fromkeys(missing))
    return Model(path=path, name=name, directory=directory, data=data, warnings=warnings)


def find_tool(env: Mapping[str, str] | None = None) -> list[str] | None:
    """``docker compose`` (the CLI plugin), else ``docker-compose`` if it is v2; None when
    neither is on ``PATH`` (v1, the Python one, normalises differently and is not used)."""
    search = (env or os.environ).get("PATH")
    for command in (["docker", "compose"], ["docker-compose"]):
        binary = shutil.which(command[0], path=search)
        if binary is None:
            continue
        try:
            done = subprocess.run([binary, *command[1:], "version", "--short"], capture_output=True,
                                  text=True, timeout=TOOL_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        version = done.stdout.strip().lstrip("v")
        if done.returncode == 0 and version[:1].isdigit() and int(version.split(".")[0]) >= 2:
            return [binary, *command[1:]]
    return None


def tool_model(tool: list[str], path: str, project_name: str | None = None,
               env: Mapping[str, str] | None = None) -> Model:
    """compose's own normalised model: ``config --format json`` with every profile on (a
    pipeline judges every service, not only those ``up`` would start by default)."""
    command = [*tool, "-f", path, *(["-p", project_name] if project_name else []), "--profile", "*",
               "config", "--format", "json"]
    run_env = dict(os.environ if env is None else env)
    run_env.setdefault("PATH", os.environ.get("PATH", "/usr/bin:/bin"))
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False,
                              env=run_env)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ComposeError(path, None, f"{' '.join(tool)} config failed: {e}") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if "level=warning" not in line]
        message = " ".join(lines).strip() or f"exit status {done.returncode}"
        raise ComposeError(path, None, f"{' '.join(tool)} config: {message}")
    try:
        data = _unescape(json.loads(done.stdout))
    except json.JSONDecodeError as e:
        raise ComposeError(path, None, f"{' '.join(tool)} config: not JSON: {e.msg}") from None
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        raise ComposeError(path, None, f"{' '.join(tool)} config: no services in its output")
    warnings = tuple(line for line in done.stderr.splitlines() if "level=warning" in line)
    return Model(path=path, name=str(data.get("name") or ""),
                 directory=os.path.dirname(os.path.abspath(path)), data=data, tool=" ".join(tool),
                 warnings=warnings)


def _unescape(node: Any) -> Any:
    """``config`` writes a literal ``$`` as ``$$`` (its output is a compose file again)."""
    if isinstance(node, dict):
        return {k: _unescape(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_unescape(v) for v in node]
    return node.replace("$$", "$") if isinstance(node, str) else node


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


def refuse_other_files(path: str, env: Mapping[str, str] | None) -> None:
    """Fail closed when ``docker compose up`` in the file's folder would not create the
    containers of this file alone: ``COMPOSE_FILE`` (``.env`` or the environment) naming
    other files, an override file beside a default-named one (merged over it), or another
    default-named file that compose picks first. Each can make the deployed container
    privileged while this file is judged compliant. A file of another name, which
    ``COMPOSE_FILE`` does not list, is deployed with ``-f`` (alone)."""
    here = Path(os.path.abspath(path))  # as named: a link called compose.yaml is compose's default
    folder = here.parent
    variables = environment(path, env)
    if listed := variables.get("COMPOSE_FILE"):
        separator = variables.get("COMPOSE_PATH_SEPARATOR") or os.pathsep
        files = [Path(os.path.abspath(folder / f)) for f in listed.split(separator) if f]
        # a file it does not name, and not compose's default, is deployed with -f alone
        if files != [here] and (here in files or here.name in DEFAULT_FILES):
            raise ComposeError(path, None, f"COMPOSE_FILE={listed} (.env or the environment) has `docker "
                               f"compose up` read {', '.join(map(str, files))}, not this file alone: "
                               f"{MERGED_HINT}")
        return
    if here.name not in DEFAULT_FILES:
        return  # deployed with -f: only this file
    first = next(name for name in DEFAULT_FILES if (folder / name).is_file())
    if first != here.name:
        raise ComposeError(path, None, f"`docker compose up` in {folder} reads {first}, not this file "
                           "(compose picks the first of compose.yaml, compose.yml, docker-compose.yml, "
                           "docker-compose.yaml)")
    if overrides := [name for name in OVERRIDE_FILES if (folder / name).is_file()]:
        raise ComposeError(path, None, f"`docker compose up` in {folder} merges {overrides[0]} over this "
                           f"file, and that is not judged: {MERGED_HINT}")


def load(path: str, project_name: str | None = None, env: Mapping[str, str] | None = None,
         model: str = "auto") -> Model:
    """The project's model: ``model="auto"`` asks compose itself where it is installed,
    ``"own"`` always reads the file here, ``"tool"`` requires compose. Refused when
    compose, run in the file's folder, would read other files with it
    (:func:`refuse_other_files`)."""
    if model not in ("auto", "own", "tool"):
        raise ValueError(model)
    if not os.path.isfile(path):
        raise ComposeError(path, None, "no such file")
    refuse_other_files(path, env)
    tool = find_tool(env) if model != "own" else None
    if tool is not None:
        return tool_model(tool, path, project_name, env)
    if model == "tool":
        raise ComposeError(path, None, "neither `docker compose` nor docker-compose v2 is on PATH")
    return own_model(path, project_name, env)
