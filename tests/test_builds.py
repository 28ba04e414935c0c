"""Builds on a guarded host: BuildKit's RUN steps are not containers of dockerd's, so a
BuildKit build succeeds while the daemon runs; the classic builder's RUN steps are
ordinary containers, judged and stopped like any other (README.adoc, "Builds")."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import docker
from harness import COMPLIANT, IMAGE, require, unique

DOCKER_CLI = "/usr/bin/docker"  # Debian's docker.io CLI: BuildKit built in, no buildx plugin


def build(host: str, context: Path, tag: str, buildkit: bool) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_HOST": host, "DOCKER_BUILDKIT": "1" if buildkit else "0"}
    return subprocess.run([require(DOCKER_CLI, "docker.io"), "build", "--no-cache", "--network", "host",
                           "-t", tag, str(context)], env=env, capture_output=True, text=True, timeout=600,
                          check=False)


def test_a_buildkit_build_succeeds_while_the_daemon_runs(tmp_path, dockerd, client, covenant_factory,
                                                         journal):
    cov = covenant_factory("debug: yes\n")
    context = tmp_path / "context"
    context.mkdir()
    # the step lasts long enough for the daemon to judge it (it kills within ~50 ms)
    (context / "Dockerfile").write_text(f"FROM {IMAGE}\nRUN sleep 3 && echo built > /built\n")
    tags = [unique("covbuild-kit"), unique("covbuild-classic")]
    try:
        done = build(dockerd.host, context, tags[0], buildkit=True)
        assert done.returncode == 0, done.stdout + done.stderr
        out = client.containers.run(tags[0], ["cat", "/built"], remove=True, network_mode="none", **COMPLIANT)
        assert out == b"built\n"
        assert not [m for m in journal.messages(cov.ident) if "stopping container" in m]
        # control: the classic builder runs its RUN step as a container, which the
        # daemon judges under the default policy (no --cap-drop=all) and kills
        done = build(dockerd.host, context, tags[1], buildkit=False)
        assert done.returncode != 0, done.stdout + done.stderr
        entry = journal.wait_for(cov.ident, "stopping container")
        assert "CV002" in entry["COVENANT_CHECK"], entry
    finally:
        for tag in tags:
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(tag, force=True)
