"""Reading a compose file as compose v2 reads it: YAML as yaml.v3 (``yamlread``),
``${VAR}`` interpolation from the environment and ``.env`` (``interpolation``), the project
name, and the refusal of a file that ``docker compose up`` would not read alone.

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
from pathlib import Path
from typing import Any

from .interpolation import interpolate_tree, read_dotenv
from .model import UNKNOWN_HOME, ComposeError, LineDict, Model
from .yamlread import parse_yaml

PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
TOOL_TIMEOUT = 60.0
# What ``docker compose up`` reads without ``-f`` (compose-go's cli options, 2.26): the
# first of these in the folder, and the first override beside it, merged over it.
DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
OVERRIDE_FILES = ("compose.override.yml", "compose.override.yaml", "docker-compose.override.yml",
                  "docker-compose.override.yaml")
MERGED_HINT = ("judge what compose merges instead: `docker compose config > merged.yml` where it is deployed "
               "from, then audit merged.yml")


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
    data = interpolate_tree(raw, variables, path, raw.line, "", missing)
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
    # ~ is the deployer's home, not ours: compose expands it to UNKNOWN_HOME, which convert
    # refuses; the docker CLI keeps its own configuration (and plugins) where they are
    home = run_env.get("HOME") or os.path.expanduser("~")
    run_env.setdefault("DOCKER_CONFIG", os.path.join(home, ".docker"))
    run_env["HOME"] = UNKNOWN_HOME
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
