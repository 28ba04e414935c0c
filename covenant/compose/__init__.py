"""Compose files judged before deploy: each service as the container compose v2 would create.

``loading`` reads the file (compose's own ``config`` where installed, else our reader:
``yamlread`` for YAML and merge keys, ``interpolation`` for ``${VAR}`` and ``.env``, then the
project name) into a ``model.Model``; ``convert`` makes each service the ``docker
inspect``-shaped data and :class:`~covenant.reach.Lookups` the one evaluator,
``Policy.decide``, reads (``keys``: what is judged, what is refused; ``values``: reading
one value; ``hostconfig`` and ``mounts``: the fields). This package does no engine I/O and
imports nothing of the daemon's shell: ``audit --compose`` and ``docker-covenant test`` call
:func:`services` (or :func:`audit_rows`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TextIO

from ..policy import Policy
from ..reports import rows
from .convert import ComposeService, convert
from .keys import JUDGED, NO_EFFECT
from .loading import load
from .model import ComposeError, Model
from .yamlread import service_lines

__all__ = ["JUDGED", "NO_EFFECT", "ComposeError", "ComposeService", "Model", "audit_rows", "load",
           "services"]


def services(path: str, project_name: str | None = None, env: Mapping[str, str] | None = None,
             *, model: str = "auto") -> list[ComposeService]:
    """Every container the compose file's services would create, judged-ready.

    ``project_name`` is ``--project-name``; otherwise ``COMPOSE_PROJECT_NAME`` (from ``env``,
    default ``os.environ``, or ``.env`` beside the file), the file's ``name:``, the folder's
    name. ``model``: ``auto`` uses compose's own ``config`` when installed, ``own`` never."""
    return convert(load(path, project_name, env, model))


def audit_rows(policy: Policy, path: str, project_name: str | None = None,
               env: Mapping[str, str] | None = None, notes: TextIO | None = None,
               model: str = "auto") -> list[dict[str, Any]]:
    """``audit --compose``: one row per container, in ``audit``'s row shape (so its table
    and JSON serve unchanged), each naming its service, file and the service's line there
    (SARIF's location). ``notes`` gets one line
    saying whose model was judged, then compose's warnings. A key that may change the
    container but is not judged is a :class:`ComposeError` (exit status 2)."""
    project = load(path, project_name, env, model)
    found = convert(project)
    if notes is not None:
        reader = (f"`{project.tool} config`" if project.tool
                  else "docker-covenant's own reader (compose not installed)")
        notes.write(f"docker-covenant: compose: {path}: project {project.name}, {len(found)} containers, "
                    f"model from {reader}\n")
        for warning in project.warnings:
            notes.write(f"docker-covenant: compose: warning: {warning}\n")
    lines = service_lines(path)
    judged = rows(policy.decide(s.container, s.lookups) for s in found)
    return [{**row, "service": s.service, "file": path,
             **({"line": lines[s.service]} if s.service in lines else {})} for s, row in zip(found, judged)]
