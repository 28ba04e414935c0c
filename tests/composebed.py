"""Compose v2 for the end-to-end tests: Debian trixie's ``docker-compose`` (a Go binary).

Fetched as ``engines.py`` fetches dockerd 26: trixie's package lists under a private apt
configuration (the system's apt is left alone), the package downloaded and unpacked with
``dpkg-deb -x``, kept under ``~/.cache/docker-covenant-tests/compose/`` keyed by the
package's file name (its version). It depends on libc6 only, so nothing else comes along.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from engines import _apt, cache_dir, trixie_lists

PACKAGE = "docker-compose"


def compose_cache() -> Path:
    return cache_dir().parent / "compose"


def compose_binary() -> str:
    """The path of trixie's docker-compose (v2), fetched and unpacked if not cached."""
    work = trixie_lists(cache_dir())
    uris = _apt(work, "download", "--print-uris", PACKAGE)
    files = [line.split()[1] for line in uris.splitlines() if line.startswith("'")]
    if len(files) != 1:
        raise RuntimeError(f"expected one {PACKAGE} package from trixie, got: {uris}")
    root = compose_cache() / files[0].removesuffix(".deb")
    found = _binary(root)
    if found:
        return found
    debs = compose_cache() / "debs"
    shutil.rmtree(debs, ignore_errors=True)
    debs.mkdir(parents=True)
    _apt(work, "download", PACKAGE, cwd=debs)
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(partial)], check=True)
    partial.rename(root)
    shutil.rmtree(debs, ignore_errors=True)
    found = _binary(root)
    if not found:
        raise RuntimeError(f"no docker-compose binary in {root}")
    return found


def _binary(root: Path) -> str | None:
    for candidate in ("usr/libexec/docker/cli-plugins/docker-compose", "usr/bin/docker-compose"):
        path = root / candidate
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return None
