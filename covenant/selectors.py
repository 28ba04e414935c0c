"""Which containers a selector picks: a name, a name glob, ``image=GLOB``, ``label=KEY[=GLOB]``.

Container sections of the policy and the request rules' ``containers`` use the same
selectors, so they are read and matched here, once, as pure functions. ``user=NAME`` and
``user=@GROUP`` select requests, not containers: only a section key may be one, and no
container is ever selected by it.
"""

from __future__ import annotations

import fnmatch
import re

from .checks import Container, config, container_name

# The engine's own rule for container names (daemon/names: RestrictedNamePattern).
CONTAINER_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
CONTAINER_GLOB = re.compile(r"^[a-zA-Z0-9_.*?\[\]!-]+$")
GLOB_CHARS = frozenset("*?[")


def selector_kind(key: str, users: bool = False) -> tuple[str, str] | None:
    """(kind, pattern) of a selector, or None when it is not one. ``users``: also read
    ``user=NAME`` / ``user=@GROUP`` (section keys)."""
    for prefix in ("image=", "label=", *(("user=",) if users else ())):
        if key.startswith(prefix) and len(key) > len(prefix):
            return prefix[:-1], key[len(prefix):]
    if CONTAINER_NAME.match(key):
        return "name", key.lstrip("/")
    if GLOB_CHARS & set(key) and CONTAINER_GLOB.match(key):
        return "glob", key
    return None


def selects(kind: str, pattern: str, container: Container) -> bool:
    name = container_name(container)
    if kind == "name":
        return name == pattern
    if kind == "glob":
        return fnmatch.fnmatchcase(name, pattern)
    if kind == "image":
        return fnmatch.fnmatchcase(str(config(container).get("Image") or ""), pattern)
    if kind == "label":
        key, eq, value = pattern.partition("=")
        labels = config(container).get("Labels") or {}
        return key in labels and (not eq or fnmatch.fnmatchcase(str(labels[key]), value))
    return False  # "user": a request's, never a container's
