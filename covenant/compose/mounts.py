"""What a service mounts, as compose 2.26 sends it (``HostConfig.Binds`` strings and
``Mounts``: volumes, binds, tmpfs, file secrets and configs, ``volumes_from``), and what the
engine would answer about it: the project's volumes with their driver options, the other
services' containers it borrows from, where links inside the project's folder lead."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from typing import Any

from ..reach import Lookups, bind_sources, is_under, mounts
from .model import UNKNOWN_HOME, Model
from .values import Reader, flag, scalar

# -- volumes -------------------------------------------------------------------------------------

PROPAGATIONS = ("shared", "rshared", "slave", "rslave", "private", "rprivate")


def volumes(r: Reader, model: Model) -> tuple[list[str], list[dict[str, Any]]]:
    """(``Binds``, ``Mounts``) as compose 2.26 sends them: a bind that may create its host
    path (every short-syntax bind) as a ``src:dst:opts`` string, everything else as a
    mount; plus the file-based secrets and configs compose binds read-only."""
    binds, specs = [], []
    targets: set[str] = set()
    for entry in r.data.get("volumes") or []:
        volume = _long_volume(r, model, entry)
        target = posixpath.normpath(str(volume.get("target") or ""))
        targets.add(target)
        kind = volume.get("type") or "volume"
        read_only = r.boolean("volumes", volume.get("read_only"), "volumes.read_only")
        bind = volume.get("bind") or {}
        if kind == "bind":
            source = _host_path(r, str(volume.get("source") or ""), model.directory)
            if r.boolean("volumes", bind.get("create_host_path"), "volumes.bind.create_host_path"):
                opts = ["ro" if read_only else "rw"]
                opts += [str(bind[k]) for k in ("selinux", "propagation") if bind.get(k)]
                binds.append(f"{source}:{volume.get('target')}:{','.join(opts)}")
                continue
            spec: dict[str, Any] = {"Type": "bind", "Source": source, "Target": target, "ReadOnly": read_only}
            if bind.get("propagation"):
                spec["BindOptions"] = {"Propagation": str(bind["propagation"])}
            specs.append(spec)
        elif kind == "volume":
            source = str(volume.get("source") or "")
            declared = (model.data.get("volumes") or {}).get(source) if source else None
            if isinstance(declared, dict) and str((declared.get("driver_opts") or {}).get("o")) == "bind":
                # compose 2.26 (buildMountOptions): a volume whose driver_opts say exactly
                # o=bind goes as a bind string naming the volume, which dockerd reads as the volume
                nocopy = r.boolean("volumes", (volume.get("volume") or {}).get("nocopy"),
                                   "volumes.volume.nocopy")
                opts = ["ro" if read_only else "rw"] + (["nocopy"] if nocopy else [])
                binds.append(f"{volume_name(model, source)}:{volume.get('target')}:{','.join(opts)}")
                continue
            specs.append({"Type": "volume", "Source": volume_name(model, source) if source else "",
                          "Target": target, "ReadOnly": read_only})
        elif kind == "tmpfs":
            tmpfs = volume.get("tmpfs") or {}
            spec = {"Type": "tmpfs", "Source": "", "Target": target, "ReadOnly": read_only}
            if tmpfs.get("size"):
                spec["TmpfsOptions"] = {"SizeBytes": r.size("volumes", tmpfs["size"], "volumes.tmpfs.size")}
            specs.append(spec)
        else:
            specs.append({"Type": str(kind), "Source": str(volume.get("source") or ""), "Target": target,
                          "ReadOnly": read_only})
    for key, base, top in (("secrets", "/run/secrets/", "secrets"), ("configs", "/", "configs")):
        for entry in r.data.get(key) or []:
            source = str(entry.get("source") if isinstance(entry, dict) else entry)
            target = str(entry.get("target") or "") if isinstance(entry, dict) else ""
            target = target if target.startswith("/") else base + (target or source)
            defined = (model.data.get(top) or {}).get(source) or {}
            if target in targets or not isinstance(defined, dict) or not defined.get("file"):
                continue
            specs.append({"Type": "bind", "Source": _host_path(r, str(defined["file"]), model.directory, key),
                          "Target": target, "ReadOnly": True})
    return binds, specs


def _long_volume(r: Reader, model: Model, entry: Any) -> Mapping[str, Any]:
    """A short-syntax volume (``src:dst[:opts]``, ``dst``) as compose-go's long form."""
    if isinstance(entry, dict):
        return entry
    parts = str(entry).split(":")
    if len(parts) == 1:
        return {"type": "volume", "target": parts[0]}
    if len(parts) > 3:
        raise r.fail("volumes", f"invalid volume {entry!r}")
    source, target = parts[0], parts[1]
    options = parts[2].split(",") if len(parts) == 3 else []
    is_path = source.startswith(("/", ".", "~"))
    # compose-go reads the options in order, a later one overriding: "ro,rw" is read-write
    modes = [o for o in options if o in ("ro", "rw")]
    out: dict[str, Any] = {"type": "bind" if is_path else "volume", "source": source, "target": target,
                           "read_only": modes[-1:] == ["ro"]}
    if is_path:
        bind: dict[str, Any] = {"create_host_path": True}
        if props := [o for o in options if o in PROPAGATIONS]:
            bind["propagation"] = props[-1]
        if selinux := [o for o in options if o in ("z", "Z")]:
            bind["selinux"] = selinux[-1]
        out["bind"] = bind
    return out


def _host_path(r: Reader, source: str, directory: str, key: str = "volumes") -> str:
    """A bind source as compose resolves it: relative to the project's folder, ``~`` the
    home of whoever deploys (compose-go's ``ExpandUser``), which is refused: from root's
    home a deploy mounts /root/..., from a runner's its own, so it cannot be judged here."""
    if source.startswith("~"):
        source = posixpath.normpath(posixpath.join(UNKNOWN_HOME, source[1:].lstrip("/")))
    if is_under(source, UNKNOWN_HOME):
        raise r.fail(key, f"{source.replace(UNKNOWN_HOME, '~', 1)}: `~` is the home of whoever runs compose, "
                     "which this machine does not know, so the bind cannot be judged")
    return source if source.startswith("/") else posixpath.normpath(posixpath.join(directory, source))


def volume_name(model: Model, key: str) -> str:
    """The engine's name of a project volume: its ``name:``, an external one's key, else
    ``<project>_<key>``; a volume the file does not declare is named as written."""
    declared = (model.data.get("volumes") or {})
    if key not in declared:
        return key
    entry = declared.get(key) or {}
    if isinstance(entry, dict) and entry.get("name"):
        return str(entry["name"])
    if isinstance(entry, dict) and flag(model, entry.get("external"), f"volumes.{key}.external"):
        return key
    return f"{model.name}_{key}"


def volumes_from(r: Reader, names: Mapping[str, str]) -> list[str]:
    """``HostConfig.VolumesFrom`` as compose sends it: the container, *without* the mode.
    compose (2.26, and still in 2025's sources: ``convergence.resolveVolumeFrom``) keeps only
    the name of ``container:X:ro`` and replaces ``service:ro`` by the service container's id,
    so the volumes are read-write whatever the file says: judged so here too."""
    out = []
    for entry in r.strings("volumes_from"):
        spec = entry.split(":")
        if spec[0] == "container" and len(spec) > 1:
            out.append(spec[1])
        elif spec[0] == "service" and len(spec) > 1:
            out.append(names.get(spec[1], spec[1]))
        else:
            out.append(names.get(spec[0], spec[0]))
    return out


# -- what the engine would answer ----------------------------------------------------------------

def volume_lookups(model: Model) -> dict[str, dict[str, Any]]:
    """``docker volume inspect`` of each volume the project creates, by its engine name: its
    driver and ``driver_opts`` (an external volume is not the file's to describe)."""
    out = {}
    for key, declared in (model.data.get("volumes") or {}).items():
        entry = declared or {}
        if not isinstance(entry, dict) or flag(model, entry.get("external"), f"volumes.{key}.external"):
            continue
        name = volume_name(model, str(key))
        out[name] = {"Name": name, "Driver": str(entry.get("driver") or "local"),
                     "Options": {str(k): scalar(v) for k, v in (entry.get("driver_opts") or {}).items()}}
    return out


def real_paths(model: Model, sources: list[str]) -> dict[str, str]:
    """The bind sources inside the project's folder that a symbolic link there leads
    elsewhere, with where: the folder is the checkout the file comes with, so its links are
    the deploy's (``./data`` a link to ``/etc`` is a bind of ``/etc``). Paths outside it
    are the deploy host's, not this machine's to resolve."""
    root = model.directory.rstrip("/") + "/"
    return {path: real for path in sources
            if path.startswith(root) and (real := os.path.realpath(path)) != path}


def container_lookups(model: Model, container: Mapping[str, Any], built: Mapping[str, Mapping[str, Any]],
             names: Mapping[str, str]) -> Lookups | None:
    """The project's volumes this container mounts, and the services' containers it names
    (those with their own mounts resolved, as a created container's ``Mounts`` are), and
    where the symbolic links in the project's folder lead its bind sources."""
    from ..reach import references  # the core's own list of what to look up

    volume_names, refs = references(container)
    volumes = volume_lookups(model)
    found_volumes = {n: volumes[n] for n in volume_names if n in volumes}
    by_name = {names[s]: built[s] for s in built}
    found_containers: dict[str, Mapping[str, Any]] = {}
    pending = list(refs)
    while pending:
        ref = pending.pop(0)
        if ref in found_containers or ref not in by_name:
            continue
        other = by_name[ref]
        other_volumes, other_refs = references(other)
        inner = Lookups(volumes={n: volumes[n] for n in other_volumes if n in volumes})
        inner = Lookups(volumes=inner.volumes, real_paths=real_paths(model, bind_sources(other, inner)))
        found_containers[ref] = {**other, "Mounts": mounts(other, inner)}
        pending += other_refs
    found = Lookups(volumes=found_volumes, containers=found_containers)
    links = real_paths(model, bind_sources(container, found))
    if not found_volumes and not found_containers and not links:
        return None
    return Lookups(volumes=found_volumes, containers=found_containers, real_paths=links)
