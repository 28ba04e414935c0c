"""The Docker engines the end-to-end tests run against: the machine's own docker.io (Debian
bookworm, dockerd 20.10) and Debian trixie's (dockerd 26), unpacked from its packages.

Trixie's packages are fetched with a private apt configuration (its own sources list,
state and cache directories) that leaves the system's apt alone, unpacked with
``dpkg-deb -x`` and kept in a cache outside the checkout, keyed by the packages' file
names (which carry their versions). Trixie's runc needs a newer glibc: both engines run
bookworm's runc. dockerd 26 starts the containerd and shim unpacked beside it (``PATH``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ENGINES = ("20.10", "26")
TRIXIE = "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {mirror} trixie main\n"
PACKAGES = ("docker.io", "containerd")
LISTS_FRESH_FOR = 24 * 3600  # apt lists younger than this are not fetched again


@dataclass(frozen=True)
class EngineBinaries:
    version: str
    dockerd: str
    path: str = ""  # where dockerd finds its containerd and shim; "" = the system's PATH

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.path:
            env["PATH"] = f"{self.path}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
        return env


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "docker-covenant-tests" / "engines"


def engine_binaries(version: str) -> EngineBinaries:
    if version == "20.10":
        found = shutil.which("dockerd")
        if not found:
            raise RuntimeError("dockerd not found: install the Debian package docker.io (.ci/run does it)")
        return EngineBinaries(version, found)
    if version == "26":
        root = trixie_engine(cache_dir())
        return EngineBinaries(version, str(root / "usr" / "sbin" / "dockerd"), str(root / "usr" / "bin"))
    raise ValueError(f"unknown engine {version}")


def _mirror() -> str:
    """The Debian mirror the system's apt uses."""
    for source in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        try:
            text = source.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split("#")[0].split()
            if words and words[0] in ("URIs:", "deb"):
                for word in words[1:]:
                    if word.startswith("http") and "security" not in word:
                        return word.rstrip("/")
    return "http://deb.debian.org/debian"


def _apt(work: Path, *args: str, cwd: Path | None = None) -> str:
    options = [f"-oDir::Etc={work / 'etc'}", f"-oDir::Etc::sourcelist={work / 'etc' / 'sources.list'}",
               f"-oDir::Etc::sourceparts={work / 'etc' / 'sources.list.d'}",
               f"-oDir::Etc::preferencesparts={work / 'etc' / 'preferences.d'}",
               f"-oDir::State={work / 'state'}", f"-oDir::Cache={work / 'cache'}",
               "-oAPT::Sandbox::User=root", "-qq"]
    done = subprocess.run(["apt-get", *options, *args], cwd=cwd, capture_output=True, text=True,
                          check=False, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"apt-get {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def trixie_lists(cache: Path) -> Path:
    """The private apt configuration for trixie, its package lists fetched when missing or
    older than a day; returns its folder (for ``_apt``)."""
    work = cache / "apt-trixie"
    for sub in ("etc/sources.list.d", "etc/preferences.d", "state/lists/partial", "cache/archives/partial"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    (work / "etc" / "sources.list").write_text(TRIXIE.format(mirror=_mirror()))
    lists = list((work / "state" / "lists").glob("*Packages*"))
    if not lists or time.time() - min(p.stat().st_mtime for p in lists) > LISTS_FRESH_FOR:
        _apt(work, "update")
    return work


def trixie_engine(cache: Path) -> Path:
    """The unpacked root of trixie's docker.io and containerd, fetched if not cached."""
    work = trixie_lists(cache)
    uris = _apt(work, "download", "--print-uris", *PACKAGES)
    files = sorted(line.split()[1] for line in uris.splitlines() if line.startswith("'"))
    if len(files) != len(PACKAGES):
        raise RuntimeError(f"expected {len(PACKAGES)} packages from trixie, got: {uris}")
    root = cache / "-".join(f.removesuffix(".deb") for f in files)
    if (root / "usr" / "sbin" / "dockerd").exists():
        return root
    debs = cache / "debs"
    shutil.rmtree(debs, ignore_errors=True)
    debs.mkdir(parents=True)
    _apt(work, "download", *PACKAGES, cwd=debs)
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(partial)], check=True)
    partial.rename(root)
    shutil.rmtree(debs, ignore_errors=True)
    return root
