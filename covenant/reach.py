"""What a container can reach, not what it declares: one widened ``docker inspect`` shape.

A named volume whose local driver binds ``/etc`` gives the container ``/etc`` as surely as
``-v /etc:/x``; ``--pid container:X`` gives it the host's PID namespace when X has it. The
checks read one shape, so this module rewrites the inspect data into what the container
actually gets: volumes that are binds in disguise become bind mounts (with the volume's
name noted), borrowed namespaces read as what they borrow, and a configuration not yet
created (the authorization plugin's) gets the ``Mounts`` dockerd would make of it.

Resolving a volume or a referenced container needs the engine: the shell (events daemon,
``audit``, the plugin) asks :func:`references` what to look up, looks it up, and hands the
answers over as plain :class:`Lookups`. Nothing here does I/O; with no lookups the core
judges what the inspect data alone says.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

Inspect = Mapping[str, Any]
# HostConfig fields that may name another container's namespace (``container:X``).
NAMESPACE_FIELDS = ("NetworkMode", "PidMode", "IpcMode", "UTSMode")
MAX_HOPS = 8  # a chain of container: references longer than this is not followed
NETWORK_FILESYSTEMS = frozenset({"tmpfs", "nfs", "nfs4", "cifs", "smb3", "ceph", "glusterfs"})
# Filesystems that show the host kernel's own view wherever they are mounted (dockerd
# mounts a volume in the host's namespaces: a fresh proc lists the host's processes).
KERNEL_FILESYSTEMS = {"proc": "/proc", "sysfs": "/sys", "devtmpfs": "/dev", "cgroup": "/sys/fs/cgroup",
                      "cgroup2": "/sys/fs/cgroup", "debugfs": "/sys/kernel/debug",
                      "securityfs": "/sys/kernel/security", "bpf": "/sys/fs/bpf"}


@dataclass(frozen=True)
class Lookups:
    """What the shell looked up for one container, as the engine answered.

    ``volumes``: ``docker volume inspect`` of each named volume, by name (``Driver``,
    ``Options``). ``containers``: ``docker inspect`` of each container referenced by
    ``container:X`` or ``--volumes-from X``, by the reference as written. ``real_paths``:
    each bind source that is reached through a symbolic link, by its cleaned path, with the
    host path the link leads to (the kernel follows it when the bind is made)."""

    volumes: Mapping[str, Inspect] = field(default_factory=dict)
    containers: Mapping[str, Inspect] = field(default_factory=dict)
    real_paths: Mapping[str, str] = field(default_factory=dict)
    # the image scanner's verdict on the container's image (checks/scan.py), if asked
    image_scan: Mapping[str, Any] | None = None


NO_LOOKUPS = Lookups()


# -- host paths as the kernel reads them ------------------------------------------------------

def clean_path(path: str) -> str:
    """An absolute path as the kernel resolves it lexically: ``//etc``, ``/etc/``,
    ``/./etc`` and ``/usr/../etc`` are all ``/etc`` (``posixpath.normpath`` keeps a leading
    ``//``, which POSIX leaves implementation-defined and Linux reads as ``/``). A relative
    path is taken from ``/`` (dockerd's working directory under systemd)."""
    if not path:
        return path
    return "/" + posixpath.normpath("/" + path).lstrip("/")


def is_under(path: str, prefix: str) -> bool:
    """``path`` is ``prefix`` or inside it (everything is inside ``/``)."""
    path, prefix = clean_path(path), clean_path(prefix)
    return prefix in ("/", path) or path.startswith(prefix + "/")


def reaches(source: str, target: str) -> bool:
    """A bind of host ``source`` exposes host ``target``: the same path, a path inside it,
    or an ancestor of it (a bind of ``/var`` exposes ``/var/lib/docker``). ``/`` as a target
    means the root itself, reached only by a bind of ``/``, not every path there is."""
    source, target = clean_path(source), clean_path(target)
    if target == "/":
        return source == "/"
    return is_under(source, target) or is_under(target, source)


# -- volumes ----------------------------------------------------------------------------------

def volume_sources(driver: str, options: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The host paths a local volume mounts, as bind mounts (moby volume/local and
    moby/sys/mount: an ``o`` token ``bind``/``rbind`` binds ``device`` whatever ``type``
    says, ``ro`` makes it read-only; overlay's ``lowerdir``/``upperdir`` are host paths;
    any other ``device`` of a local filesystem (a block device) is host storage; ``type=proc``,
    ``sysfs``, ``devtmpfs``... mount the host kernel's view). A relative device resolves against dockerd's
    working directory, ``/`` under systemd."""
    if driver not in ("", "local"):
        return []
    tokens = [t for t in str(options.get("o") or "").split(",") if t]
    device, kind = str(options.get("device") or ""), str(options.get("type") or "")
    read_only = "ro" in tokens

    def bind(path: str, ro: bool = read_only) -> dict[str, Any]:
        return {"Type": "bind", "Source": clean_path(path), "Destination": "/", "RW": not ro,
                "Propagation": ""}

    if {"bind", "rbind"} & set(tokens):
        return [] if device in ("", "none") else [bind(device)]
    if kind == "overlay":
        dirs = [t.partition("=") for t in tokens]
        return [bind(p, ro=key == "lowerdir") for key, _, v in dirs if key in ("lowerdir", "upperdir")
                for p in v.split(":") if p]
    if kind in KERNEL_FILESYSTEMS:
        return [bind(KERNEL_FILESYSTEMS[kind])]
    if device not in ("", "none") and kind not in NETWORK_FILESYSTEMS and ":" not in device:
        return [bind(device)]
    return []


def widen_volume_mounts(mounts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``HostConfig.Mounts`` entries of type volume whose inline driver options bind a host
    path, rewritten as the bind mounts they are (the volume is created with those options)."""
    out = []
    for m in mounts:
        driver = (m.get("VolumeOptions") or {}).get("DriverConfig") or {}
        binds = volume_sources(str(driver.get("Name") or ""), driver.get("Options") or {}) \
            if m.get("Type") == "volume" and driver else []
        out += [{"Type": "bind", "Source": b["Source"], "Target": m.get("Target", ""),
                 "ReadOnly": bool(m.get("ReadOnly")) or not b["RW"]} for b in binds] or [m]
    return out


# -- mounts in one shape ----------------------------------------------------------------------

def _host_config(container: Inspect) -> Mapping[str, Any]:
    return container.get("HostConfig") or {}


def declared_mounts(container: Inspect) -> list[dict[str, Any]]:
    """``Mounts`` as inspect lists them; for a configuration not created yet (no ``Mounts``
    key), what dockerd would make of ``HostConfig.Binds`` (``src:dst[:opts]``, a source
    without ``/`` naming a volume) and ``HostConfig.Mounts``."""
    if "Mounts" in container:
        return [dict(m) for m in container.get("Mounts") or []]
    hc = _host_config(container)
    out = [_of_bind_string(b, str(hc.get("VolumeDriver") or "local")) for b in hc.get("Binds") or []]
    for spec in hc.get("Mounts") or []:
        # a volume created on the fly with inline driver options is also what they bind
        inline = [b for b in widen_volume_mounts([spec]) if b is not spec]
        out += [_of_mount_spec(m) for m in (spec, *inline)]
    return [m for m in out if m is not None]


def _of_bind_string(bind: str, driver: str) -> dict[str, Any] | None:
    parts = str(bind).split(":")
    if len(parts) < 2:
        return None
    opts = parts[2].split(",") if len(parts) > 2 else []
    propagation = next((o for o in opts if o in ("shared", "rshared", "slave", "rslave", "private",
                                                 "rprivate")), "")
    entry = {"Destination": parts[1], "RW": "ro" not in opts, "Propagation": propagation}
    if parts[0].startswith("/"):
        return {"Type": "bind", "Source": parts[0], **entry}
    return {"Type": "volume", "Name": parts[0], "Driver": driver, "Source": "", **entry}


def _of_mount_spec(m: Mapping[str, Any]) -> dict[str, Any] | None:
    kind = str(m.get("Type") or "")
    entry = {"Type": kind, "Destination": m.get("Target", ""), "RW": not m.get("ReadOnly"),
             "Propagation": (m.get("BindOptions") or {}).get("Propagation", "")}
    if kind == "bind":
        return {**entry, "Source": m.get("Source", "")}
    if kind == "volume":
        driver = ((m.get("VolumeOptions") or {}).get("DriverConfig") or {}).get("Name") or "local"
        return {**entry, "Name": m.get("Source", ""), "Driver": driver, "Source": ""}
    return {**entry, "Source": m.get("Source", "")}


def _volumes_from(container: Inspect) -> Iterator[tuple[str, bool]]:
    """(reference, read-only) of each ``--volumes-from X[:ro|:rw]``."""
    for entry in _host_config(container).get("VolumesFrom") or []:
        ref, _, mode = str(entry).partition(":")
        yield ref, "ro" in mode.split(",")


def _resolve_volume(mount: dict[str, Any], lookups: Lookups) -> list[dict[str, Any]]:
    """A volume mount as the host paths it binds (noting the volume's name), else as is."""
    if mount.get("Type") != "volume" or str(mount.get("Driver") or "local") != "local":
        return [mount]
    volume = lookups.volumes.get(str(mount.get("Name") or ""))
    if volume is None:
        return [mount]
    binds = volume_sources(str(volume.get("Driver") or "local"), volume.get("Options") or {})
    return [{**b, "Destination": mount.get("Destination", ""), "Name": mount.get("Name", ""),
             "RW": bool(mount.get("RW", True)) and b["RW"], "Propagation": mount.get("Propagation", "")}
            for b in binds] or [mount]


def _mounts_declared_and_borrowed(container: Inspect, lookups: Lookups) -> list[dict[str, Any]]:
    found = declared_mounts(container)
    if "Mounts" not in container:
        for ref, ro in _volumes_from(container):
            for m in (lookups.containers.get(ref) or {}).get("Mounts") or []:
                found.append({**m, "RW": bool(m.get("RW", True)) and not ro})
    return found


def mounts(container: Inspect, lookups: Lookups = NO_LOOKUPS) -> list[dict[str, Any]]:
    """Every mount the container gets, in inspect's shape, volumes resolved to the host
    paths they bind. A created container's ``Mounts`` already hold what ``--volumes-from``
    copied (moby daemon/volumes.go); a configuration not created yet gets the referenced
    containers' mounts here, read-only with ``:ro``."""
    found = _mounts_declared_and_borrowed(container, lookups)
    resolved = [r for m in found for r in _resolve_volume(m, lookups)]
    return [_follow_link(m, lookups.real_paths) for m in resolved]


def _follow_link(mount: dict[str, Any], real_paths: Mapping[str, str]) -> dict[str, Any]:
    """A bind whose source is a symbolic link, as the host path it leads to (``Link``
    keeps the path as written, for the message)."""
    if mount.get("Type") != "bind":
        return mount
    written = clean_path(str(mount.get("Source") or ""))
    real = real_paths.get(written)
    return {**mount, "Source": real, "Link": written} if real and real != written else mount


def bind_sources(container: Inspect, lookups: Lookups = NO_LOOKUPS) -> list[str]:
    """The cleaned host paths of every bind the container gets (volumes resolved): what
    the shell resolves symbolic links of."""
    declared = _mounts_declared_and_borrowed(container, lookups)
    found = [r for m in declared for r in _resolve_volume(m, lookups)]
    return list(dict.fromkeys(clean_path(str(m.get("Source") or "")) for m in found
                              if m.get("Type") == "bind" and m.get("Source")))


# -- namespaces -------------------------------------------------------------------------------

def borrowed_from(container: Inspect, field_name: str) -> str | None:
    """X of ``container:X`` in a namespace field, else None."""
    kind, sep, ref = str(_host_config(container).get(field_name) or "").partition(":")
    return ref if sep and kind == "container" and ref else None


def namespace(container: Inspect, field_name: str, lookups: Lookups) -> tuple[str, str | None]:
    """(mode, the container it was borrowed through) after following ``container:X``
    references to the container that owns the namespace: ``host`` if that one shares the
    host's. An unresolved reference stays ``container:X``."""
    current, first = container, borrowed_from(container, field_name)
    for _ in range(MAX_HOPS):
        ref = borrowed_from(current, field_name)
        if ref is None or ref not in lookups.containers:
            break
        current = lookups.containers[ref]
    mode = str(_host_config(current).get(field_name) or "")
    return mode, first


# -- what the shell must look up, and the widened shape ---------------------------------------

def references(container: Inspect) -> tuple[list[str], list[str]]:
    """(local volume names, container references) whose engine data the core would use."""
    volumes = [str(m.get("Name")) for m in declared_mounts(container)
               if m.get("Type") == "volume" and m.get("Name") and str(m.get("Driver") or "local") == "local"]
    refs = [r for f in NAMESPACE_FIELDS if (r := borrowed_from(container, f)) is not None]
    refs += [ref for ref, _ in _volumes_from(container)]
    return list(dict.fromkeys(volumes)), list(dict.fromkeys(refs))


def widen(container: Inspect, lookups: Lookups | None = None) -> dict[str, Any]:
    """The container as the checks judge it: ``Mounts`` holds every mount with volumes
    resolved; a namespace borrowed from a container that has the host's reads ``host``, the
    reference kept under ``Borrowed`` for the message. The input is not changed."""
    if "Borrowed" in container:  # widened already
        return dict(container)
    lookups = lookups or NO_LOOKUPS
    hc = dict(_host_config(container))
    borrowed: dict[str, str] = {}
    for name in NAMESPACE_FIELDS:
        mode, via = namespace(container, name, lookups)
        if via is not None and mode == "host":
            hc[name], borrowed[name] = "host", via
    widened = {**container, "HostConfig": hc, "Mounts": mounts(container, lookups), "Borrowed": borrowed}
    if lookups.image_scan is not None:
        widened["ImageScan"] = dict(lookups.image_scan)
    return widened
