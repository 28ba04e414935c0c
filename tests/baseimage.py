"""A stand-in for ``python:3.11-slim-bookworm`` made from Debian packages: no registry is
reachable from the test machines, so the project's Dockerfile is built on this.

``debootstrap --variant=minbase`` from the mirror the system's apt uses, Debian's python3
3.11 with pip, venv and the Python headers, linked into ``/usr/local/bin`` as the official
image has them, without the EXTERNALLY-MANAGED marker (the official image's pip installs
system-wide), with the slim images' dpkg excludes. The rootfs is kept as a tar in a cache
outside the checkout, keyed by the suite, the mirror, the package list and RECIPE, and
imported into a private dockerd under the official image's name.

HTTPS is intercepted on the test machines, so the image trusts the host's CA store (a
``pip install`` in a build trusts only what the image holds). That is a quirk of the
test machine and lives here, never in the product's Dockerfile.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import docker
from engines import _mirror

SUITE = "bookworm"
PACKAGES = ("python3", "python3-pip", "python3-venv", "python3-dev")
RECIPE = "3"  # bump when make_rootfs changes what it makes
TAG = "python:3.11-slim-bookworm"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
# The slim images' /etc/dpkg/dpkg.cfg.d/docker: later apt installs skip these too.
DPKG_EXCLUDES = """path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
"""
CHANGES = ["ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
           "ENV LANG=C.UTF-8", 'CMD ["python3"]']


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "docker-covenant-tests" / "base-images"


def cache_key(mirror: str) -> str:
    ca = hashlib.sha256(HOST_CA.read_bytes()).hexdigest() if HOST_CA.exists() else "none"
    text = "\n".join([SUITE, mirror, *PACKAGES, RECIPE, ca])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def make_rootfs(rootfs: Path, mirror: str) -> None:
    debootstrap = shutil.which("debootstrap")
    if not debootstrap:
        raise RuntimeError("debootstrap not found: install the Debian package debootstrap "
                           "(.ci/run does it; see README.adoc, Testing)")
    done = subprocess.run([debootstrap, "--variant=minbase", f"--include={','.join(PACKAGES)}",
                           SUITE, str(rootfs), mirror], capture_output=True, text=True, check=False,
                          timeout=1200)
    if done.returncode != 0:
        raise RuntimeError(f"debootstrap failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    (rootfs / "etc/dpkg/dpkg.cfg.d/docker").write_text(DPKG_EXCLUDES)
    for gone in ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
                 "var/cache/apt/archives", "var/lib/apt/lists"):
        shutil.rmtree(rootfs / gone, ignore_errors=True)
    (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
    (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
    for marker in (rootfs / "usr/lib").glob("python3*/EXTERNALLY-MANAGED"):
        marker.unlink()
    local = rootfs / "usr/local/bin"
    for name, target in (("python", "python3"), ("python3", "python3"), ("python3.11", "python3.11"),
                         ("pip", "pip3"), ("pip3", "pip3")):
        link = local / name
        link.unlink(missing_ok=True)
        link.symlink_to(f"/usr/bin/{target}")
    if HOST_CA.exists():  # the test machine's interception CA, for pip inside a build
        ca = rootfs / "etc/ssl/certs/ca-certificates.crt"
        ca.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(HOST_CA, ca)
    # debootstrap leaves the host's resolv.conf and hostname: an image gets its own
    for leftover in ("etc/resolv.conf", "etc/hostname"):
        (rootfs / leftover).unlink(missing_ok=True)


def base_image_tar() -> Path:
    """The cached tar of the stand-in's rootfs, made if missing."""
    mirror = _mirror()
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    tar = cache / f"python-3.11-slim-bookworm-{cache_key(mirror)}.tar"
    if tar.exists():
        return tar
    work = Path(tempfile.mkdtemp(prefix="covbase-", dir=cache))
    try:
        rootfs = work / "rootfs"
        make_rootfs(rootfs, mirror)
        partial = work / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(partial), "."], check=True)
        partial.rename(tar)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tar


def import_base_image(client: docker.DockerClient) -> str:
    """Import the stand-in into ``client``'s engine as python:3.11-slim-bookworm."""
    repo, _, tag = TAG.partition(":")
    client.api.import_image_from_file(str(base_image_tar()), repository=repo, tag=tag, changes=CHANGES)
    return TAG
