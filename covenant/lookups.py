"""What the shell looks up for the core: the engine's answers about the volumes and
containers a container references (``reach.references``), handed over as plain data.

Every entry point asks the same questions in the same order; only how it asks differs
(docker-py in the events daemon and ``audit``, the plugin's bounded lookups), so each
passes its own two finders: a reference to the engine's inspect, or None if there is no
such object.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .reach import Lookups, bind_sources, references

MAX_REFERENCED = 8  # containers followed through container:X / --volumes-from chains
Finder = Callable[[str], Mapping[str, Any] | None]
Resolver = Callable[[str], str]
ScanFinder = Callable[[Mapping[str, Any]], Mapping[str, Any] | None]


def look_up(container: Mapping[str, Any], find_container: Finder, find_volume: Finder,
            resolve: Resolver | None = None, scan: ScanFinder | None = None) -> Lookups:
    """Each local named volume the container mounts, and each container it borrows a
    namespace or volumes from (and those containers' own references, a few hops deep).
    Nothing referenced means no call at all; what no longer exists is left out.
    ``resolve`` (the host's ``realpath``, where this process sees the host's files) follows
    the symbolic links of bind sources. ``scan`` gives the image scanner's verdict on the
    container's image (None when none is asked for)."""
    containers: dict[str, Mapping[str, Any]] = {}
    names, pending = references(container)
    while pending and len(containers) < MAX_REFERENCED:
        ref = pending.pop(0)
        if ref in containers or (other := find_container(ref)) is None:
            continue
        containers[ref] = other
        more_names, more_refs = references(other)
        pending += more_refs
        if "Mounts" not in container:  # not created yet: --volumes-from brings these volumes
            names += more_names
    volumes = {n: v for n in dict.fromkeys(names) if (v := find_volume(n)) is not None}
    image_scan = scan(container) if scan is not None else None
    found = Lookups(volumes=volumes, containers=containers, image_scan=image_scan)
    if resolve is None:
        return found
    real = {path: resolved for path in bind_sources(container, found) if (resolved := resolve(path)) != path}
    return Lookups(volumes=volumes, containers=containers, real_paths=real, image_scan=image_scan)
