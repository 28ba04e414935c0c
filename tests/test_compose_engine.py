"""``audit --compose`` against what compose really creates (issue 15).

Compose v2 is Debian trixie's ``docker-compose`` (``composebed.py``). The same project is
brought up with it on the suite's private dockerd, and for every service the verdict on
our compose-derived container must be the verdict on ``docker inspect`` of the container
compose created (with the engine's lookups, as ``audit`` makes them). Our own reader's
model must equal compose's ``config --format json`` on the same files. Both engines: compose
negotiates a newer API with dockerd 26 (and changes what it sends with it), and the
comparison costs a few seconds each.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from composebed import compose_binary
from harness import IMAGE, REPO
from test_reports import validate_sarif

from covenant.compose import ComposeError, services
from covenant.enforce import look_up
from covenant.engine import DockerEngine
from covenant.policy.loading import parse_policy

ONE_ENGINE = pytest.mark.parametrize("engine", ["20.10"], indirect=True, ids=["dockerd-20.10"])

PROJECT = """\
    x-hardened: &hardened
      cap_drop: [ALL]
      security_opt: ["no-new-privileges:true"]
      read_only: true
      restart: "on-failure:3"
    services:
      web:
        <<: *hardened
        image: busybox
        command: [sleep, "600"]
        network_mode: none
        user: "${WEB_USER:-1000}:1000"
        ports: ["127.0.0.1:8080:80", "443:443/udp"]
        mem_limit: 64m
        cpus: 0.5
        pids_limit: 100
        ulimits: {nofile: {soft: 1024, hard: 2048}}
        healthcheck: {test: "true", interval: 30s}
        labels: [team=shop]
        tmpfs: /tmp:size=1m
        shm_size: 16m
        volumes:
          - ./html:/srv/html:ro
          - data:/data
          - hostdata:/hostdata
        secrets: [token]
      worker:
        build: .
        command: [sleep, "600"]
        privileged: true
        cap_add: [SYS_ADMIN]
        security_opt: ["seccomp:unconfined", systempaths=unconfined]
        network_mode: host
        pid: host
        ipc: host
        userns_mode: host
        devices: ["/dev/null:/dev/xnull:r"]
        deploy:
          resources:
            limits: {memory: 128M, cpus: "0.25", pids: 50}
          restart_policy: {condition: on-failure, max_attempts: 2}
        healthcheck: {disable: true}
        environment: {PASS: $$notvar}
      side:
        image: busybox:${TAG-latest}
        container_name: ${SIDE_NAME}
        command: [sleep, "600"]
        network_mode: "service:web"
        pid: "service:worker"
        volumes_from: ["web:ro"]
        read_only: true
        labels: {trusted: yes, mode: 0644}
    volumes:
      data: {}
      hostdata:
        driver: local
        driver_opts: {type: none, o: bind, device: "${OUTSIDE}"}
    secrets:
      token: {file: ./token.txt}
    """


@pytest.fixture(scope="module")
def compose() -> str:
    return compose_binary()


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A project folder: the compose file, ``.env``, a Dockerfile, the bind sources."""
    where = tmp_path / "Shop.App"
    where.mkdir()
    (where / "docker-compose.yml").write_text(textwrap.dedent(PROJECT))
    outside = tmp_path / "outside"
    outside.mkdir()
    (where / ".env").write_text(f"SIDE_NAME=shop-sidecar\nOUTSIDE={outside}\n")
    (where / "Dockerfile").write_text("FROM busybox\n")
    (where / "html").mkdir()
    (where / "token.txt").write_text("secret\n")
    return where


def policy_for(shop: Path):
    """CIS with a few house rules, selecting by compose's name, image and label."""
    return parse_policy(textwrap.dedent(f"""\
        debug: no
        profile: cis
        '*':
          apparmor_required: no
          non_root_required: yes
          bind_mount_prefixes: [{shop}]
          sensitive_paths: [{shop.parent / "outside"}]
        label=team=shop:
          waive: [CV009]
        shopapp-worker-1:
          privileged: yes
        image=shopapp-*:
          allowed_images: ['busybox*']
        """), "<test>")


def run_compose(compose: str, shop: Path, host: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_HOST": host, "DOCKER_BUILDKIT": "0", "TAG": "latest"}
    env.pop("COMPOSE_PROJECT_NAME", None)
    return subprocess.run([compose, "-f", str(shop / "docker-compose.yml"), *args], capture_output=True,
                          text=True, env=env, timeout=180, check=False, cwd=shop)


@pytest.fixture
def brought_up(compose: str, shop: Path, dockerd, client) -> Iterator[Path]:
    """The project up on the private dockerd (busybox tagged as the file names it); down
    with its volumes and image after."""
    client.images.get(IMAGE).tag("busybox", "latest")
    try:
        up = run_compose(compose, shop, dockerd.host, "up", "-d", "--no-color")
        assert up.returncode == 0, up.stderr
        yield shop
    finally:
        down = run_compose(compose, shop, dockerd.host, "down", "-v", "--rmi", "local", "--timeout", "0")
        assert down.returncode == 0, down.stderr
        client.images.remove("busybox:latest")


def verdict(decision, ids: dict[str, str]) -> list[tuple[str, str]]:
    """(check, message) with container ids written as the names compose gave them."""
    return [(v.check, re.sub("|".join(ids) or "^$", lambda m: ids[m.group()], v.message))
            for v in decision.violations]


def test_each_service_gets_the_verdict_of_the_container_compose_creates(brought_up: Path, dockerd) -> None:
    env = {**os.environ, "TAG": "latest"}
    env.pop("COMPOSE_PROJECT_NAME", None)
    ours = services(str(brought_up / "docker-compose.yml"), env=env, model="own")
    assert [s.name for s in ours] == ["shop-sidecar", "shopapp-web-1", "shopapp-worker-1"]
    policy = policy_for(brought_up)
    engine = DockerEngine(host=dockerd.host, timeout=30.0)
    real = {s.name: engine.container(s.name) for s in ours}
    ids = {c["Id"]: name for name, c in real.items()}
    expected = {}
    for s in ours:
        created = real[s.name]
        assert created["State"]["Running"], s.name
        theirs = verdict(policy.decide(created, look_up(engine, created)), ids)
        mine = verdict(policy.decide(s.container, s.lookups), ids)
        assert mine == theirs, s.name
        expected[s.service] = [c for c, _ in mine]
    # the verdicts are not vacuous: each service breaks what it was written to break
    assert expected == {
        # web's volumes, read-write: compose drops volumes_from's ":ro"; worker's PID namespace
        "side": ["CV002", "CV003", "CV007", "CV011", "CV015", "CV016", "CV023", "CV024", "CV025", "CV027",
                 "CV028"],
        # the bind volume of a sensitive path outside the prefixes, port 443, ulimits; CV009
        # waived by its label
        "web": ["CV007", "CV008", "CV028", "CV032"],
        # privileged allowed by compose's container name; its image (<project>-worker) by none
        "worker": ["CV002", "CV003", "CV006", "CV010", "CV011", "CV012", "CV014", "CV017", "CV019", "CV021",
                   "CV023", "CV024", "CV027", "CV029", "CV033"]}
    # and the fields compose sent are the ones we derived
    for s in ours:
        created = real[s.name]
        for key in ("Privileged", "CapAdd", "CapDrop", "ReadonlyRootfs", "Memory", "NanoCpus", "PidsLimit",
                    "ShmSize", "PortBindings", "RestartPolicy", "Devices", "Tmpfs", "UsernsMode",
                    "SecurityOpt", "CgroupParent"):
            want, got = s.container["HostConfig"].get(key), created["HostConfig"].get(key)
            if key == "ShmSize" and not want:
                want = 64 << 20  # dockerd's default, filled in at create
            if key == "SecurityOpt" and "label=disable" not in (want or []):
                got = [o for o in got or [] if o != "label=disable"]  # dockerd's, for privileged or host PID
            if key == "RestartPolicy":  # compose sends "" for none; dockerd 26 stores it as "no"
                want, got = ({**p, "Name": p["Name"] or "no"} for p in (want, got))
            assert (want or None) == (got or None), (s.name, key, want, got)
        for key in ("NetworkMode", "PidMode", "IpcMode"):  # container:<id> as container:<name>
            got = re.sub("|".join(ids), lambda m: ids[m.group()], created["HostConfig"].get(key) or "")
            if s.container["HostConfig"][key]:  # unset: dockerd's default (IpcMode private or shareable)
                assert s.container["HostConfig"][key] == got, (s.name, key)
        assert sorted(s.container["HostConfig"]["Ulimits"] or [], key=lambda u: u["Name"]) == sorted(
            created["HostConfig"]["Ulimits"] or [], key=lambda u: u["Name"]), s.name
        if "MaskedPaths" in s.container["HostConfig"]:  # systempaths=unconfined
            hc = created["HostConfig"]
            assert hc["MaskedPaths"] == hc["ReadonlyPaths"] == [], s.name
        # binds as compose sends them (short syntax as strings, the rest as mounts), in any order
        binds = sorted(s.container["HostConfig"]["Binds"] or [])
        assert binds == sorted(created["HostConfig"]["Binds"] or []), s.name
        sent = {(m["Type"], m["Source"], m["Target"], bool(m.get("ReadOnly")))
                for m in created["HostConfig"].get("Mounts") or []}
        assert {(m["Type"], m["Source"], m["Target"], m["ReadOnly"])
                for m in s.container["HostConfig"]["Mounts"] or []} == sent, s.name
        for key in ("Image", "User", "Healthcheck"):
            assert s.container["Config"].get(key) == created["Config"].get(key), (s.name, key)
        labels = created["Config"]["Labels"]
        assert {k: v for k, v in s.container["Config"]["Labels"].items()} == {
            k: labels[k] for k in s.container["Config"]["Labels"]}, s.name


# Corners of the syntax: ports without a host port or with host ranges (01777: octal, as yaml.v3
# reads it), $$ and :+ in labels, yes and 0644 as yaml.v3 reads them (a string, octal 420),
# a quoted .env value with a #, network priorities and names, replicas, . and .. in binds,
# nocopy, external volumes, configs, volumes_from a container with :ro, service: IPC.
EDGE = """\
name: "${PNAME:-edge}"
services:
  a:
    image: "nginx@sha256:0000000000000000000000000000000000000000000000000000000000000000"
    cap_add: [net_admin, CAP_SYS_TIME]
    ports:
      - "127.0.0.1::80"
      - "8000-8002:81"
      - 9090
      - "53:53/udp"
      - target: 443
        host_ip: "::"
        published: 8443-8444
        protocol: tcp
      - {target: 8080, published: 01777}
    labels:
      price: "$$5"
      alt: "${SET:+yes}"
      quoted: ${QUOTED}
      flag: yes
      mode: 0644
      big: 1_000
    networks:
      front: {priority: 10}
      back: {priority: 100}
    ulimits: {nproc: 65535, nofile: {soft: 20000, hard: 40000}}
    healthcheck: {test: [CMD-SHELL, "wget -q localhost"], start_period: 5s, timeout: 1m30s, retries: 2}
    deploy: {restart_policy: {condition: on-failure, max_attempts: 4}, replicas: 2}
    tmpfs: [/run, /tmp:size=64m]
    sysctls: {net.ipv4.ip_unprivileged_port_start: 0}
    configs: [app]
    user: nobody
    read_only: yes
    volumes:
      - ./cache:/cache:z
      - type: volume
        source: vol
        target: /v
        volume: {nocopy: true}
      - ./rel/../dir:/dir:ro,rshared
  b:
    build: {context: ./b}
    network_mode: "service:a"
    ipc: "service:a"
    volumes_from: ["container:edge-a-1:ro", "a"]
    security_opt: ["apparmor=unconfined", "label=type:svirt_t"]
    cpu_shares: 512
    mem_limit: 1gb
    cgroup: private
    pid: "container:edge-a-2"
networks:
  front: {}
  back: {name: custom-back}
configs:
  app: {file: ./app.conf}
volumes:
  vol: {external: true, name: shared-vol}
"""


def test_our_reader_matches_compose_config(compose: str, shop: Path, tmp_path: Path) -> None:
    """On the same files, our reader's model converts to exactly what compose's own
    normalised model (``config --format json``) converts to."""
    env = {**os.environ, "TAG": "latest", "PATH": f"{Path(compose).parent}:{os.environ.get('PATH', '')}"}
    env.pop("COMPOSE_PROJECT_NAME", None)
    other = tmp_path / "other"
    other.mkdir()
    (other / "docker-compose.yml").write_text(textwrap.dedent("""\
        name: ${PROJECT:-fleet}
        services:
          api:
            build: {context: ., dockerfile: Dockerfile}
            ports: [8000-8001:8000-8001, "[::1]:53:53/udp", {target: 22, published: 2222}]
            volumes:
              - type: bind
                source: /var/run/docker.sock
                target: /var/run/docker.sock
                bind: {propagation: rshared}
              - logs:/logs:ro
            sysctls: [net.core.somaxconn=1024]
            mem_limit: 1.5g
            cpus: 1
            restart: unless-stopped
            healthcheck: {test: [CMD, "true"], interval: 1m30s, retries: 3}
          cache:
            image: redis
            deploy: {resources: {reservations: {devices: [{capabilities: [gpu], count: 1}]}}}
        volumes:
          logs: {name: fleet-logs, driver_opts: {type: none, o: "bind,ro", device: /var/log}}
        """))
    edge = tmp_path / "edge"
    edge.mkdir()
    (edge / "compose.yaml").write_text(EDGE)
    (edge / ".env").write_text('QUOTED="a b # not a comment"\nSET=1\n')
    # a file named through a link: compose reads it from the link's folder (its .env, its
    # relative paths, its name), not the target's
    linked = tmp_path / "linked"
    (linked / "deploy").mkdir(parents=True)
    (linked / "deploy" / "prod.yml").write_text(
        'services:\n  web: {image: a, volumes: ["${SRC}:/x", "./d:/d"]}\n')
    (linked / "deploy" / ".env").write_text("SRC=/srv\n")
    (linked / ".env").write_text("SRC=/etc\n")
    (linked / "docker-compose.yml").symlink_to(linked / "deploy" / "prod.yml")
    for path in (shop / "docker-compose.yml", other / "docker-compose.yml", edge / "compose.yaml",
                 linked / "docker-compose.yml"):
        mine = services(str(path), env=env, model="own")
        theirs = services(str(path), env=env, model="tool")
        assert [s.name for s in mine] == [s.name for s in theirs]
        for a, b in zip(mine, theirs, strict=True):
            assert a.container == b.container, a.name
            assert a.lookups == b.lookups, a.name
    # a namespace or volumes borrowed from a container the project does not create, or a
    # bind from ~ (whoever deploys): what they are is the host's to know, so both readers
    # refuse the file
    for inside, outside in (('pid: "container:edge-a-2"', "pid: container:legacy"),
                            ('network_mode: "service:a"', "network_mode: container:vpn"),
                            ('ipc: "service:a"', "ipc: container:legacy"),
                            ('volumes_from: ["container:edge-a-1:ro", "a"]',
                             'volumes_from: ["container:legacy:ro"]'),
                            ("- ./cache:/cache:z", "- ~/cache:/cache:z"),
                            ("configs: [app]", "configs: [app]\n    secrets: [key]")):
        secrets = "secrets:\n  key: {file: ~/.ssh/k}\n" if "secrets" in outside else ""
        (edge / "compose.yaml").write_text(EDGE.replace(inside, outside) + secrets)
        for model in ("own", "tool"):
            with pytest.raises(ComposeError, match=r"(is not a container of this project|`~` is the home of "
                               "whoever runs compose, which this machine does not know)") as e:
                services(str(edge / "compose.yaml"), env=env, model=model)
            assert "services.b." in str(e.value) or "~/" in str(e.value), (model, str(e.value))


def audit(shop: Path, *args: str, path: str = "", policy: str = "debug: no\nprofile: cis\n"):
    (shop / "policy.yml").write_text(policy)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TAG": "latest", "DOCKER_HOST": "unix:///nonexistent.sock",
           "PATH": path or "/usr/sbin:/usr/bin:/sbin:/bin"}
    env.pop("COMPOSE_PROJECT_NAME", None)
    command = [sys.executable, "-m", "covenant", "audit", "--config", str(shop / "policy.yml"), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False,
                          cwd=shop)


def test_audit_compose_exit_status_and_output(compose: str, shop: Path) -> None:
    file = str(shop / "docker-compose.yml")
    own = audit(shop, "--compose", file)
    assert own.returncode == 1, own.stderr
    assert "model from docker-covenant's own reader (compose not installed)" in own.stderr
    assert "project shopapp, 3 containers" in own.stderr
    lines = own.stdout.splitlines()
    assert lines[0].split() == ["CONTAINER", "CHECK", "CIS", "SEVERITY", "MESSAGE"]
    assert any(line.split()[:2] == ["shopapp-worker-1", "CV001"] for line in lines)
    assert lines[-1] == "3 containers, 3 violating"

    # SARIF for a pipeline: each finding located on its service's line in the file
    sarif = audit(shop, "--compose", file, "--format", "sarif")
    assert sarif.returncode == 1, sarif.stderr
    report = json.loads(sarif.stdout)
    validate_sarif(report)
    text = (shop / "docker-compose.yml").read_text().splitlines()
    located = {(r["locations"][0]["logicalLocations"][0]["name"],
                text[r["locations"][0]["physicalLocation"]["region"]["startLine"] - 1].strip())
               for r in report["runs"][0]["results"]}
    assert ("shopapp-worker-1", "worker:") in located and all(
        line.endswith(":") for _, line in located)
    assert all(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == file
               for r in report["runs"][0]["results"])

    with_tool = audit(shop, "--compose", file, "--format", "json", "-p", "ci",
                      path=f"{Path(compose).parent}:/usr/sbin:/usr/bin:/sbin:/bin")
    assert with_tool.returncode == 1, with_tool.stderr
    assert f"model from `{compose} config`" in with_tool.stderr
    report = {r["name"]: r for r in json.loads(with_tool.stdout)}
    assert set(report) == {"ci-web-1", "ci-worker-1", "shop-sidecar"}
    assert report["ci-worker-1"]["service"] == "worker" and report["ci-worker-1"]["image"] == "ci-worker"

    clean = shop / "clean.yml"
    clean.write_text("services:\n  ok:\n    image: busybox\n    cap_drop: [ALL]\n"
                     "    security_opt: [no-new-privileges]\n    stop_signal: SIGTERM\n"
                     "    storage_opt: {size: 1G}\n")
    passed = audit(shop, "--compose", str(clean), policy="debug: no\n")
    assert (passed.returncode, passed.stdout) == (0, "1 containers, all compliant\n"), passed.stderr
    assert "not judged" not in passed.stderr  # storage_opt: a disk quota, which no check reads

    broken = shop / "broken.yml"
    broken.write_text("services:\n  web:\n    image: ${NEEDED:?set NEEDED}\n")
    failed = audit(shop, "--compose", str(broken))
    assert failed.returncode == 2
    assert (f"{broken}:3: error while interpolating services.web.image: required variable NEEDED is "
            "missing a value: set NEEDED") in failed.stderr
    unknown = shop / "unknown.yml"
    unknown.write_text("services:\n  ok:\n    image: busybox\n    bogus: 1\n")
    closed = audit(shop, "--compose", str(unknown))  # fails closed, as compose itself does below
    assert closed.returncode == 2, closed.stderr
    assert (f"{unknown}:4: not judged, and compose may change the container with it: ok.bogus"
            in closed.stderr)
    with_compose = f"{Path(compose).parent}:/usr/sbin:/usr/bin:/sbin:/bin"
    refused = audit(shop, "--compose", str(unknown), path=with_compose)
    assert refused.returncode == 2, refused.stderr  # compose itself refuses a key it does not know
    assert f"{compose} config: " in refused.stderr and "bogus" in refused.stderr
    missing = audit(shop, "--compose", str(shop / "nothing.yml"))
    assert missing.returncode == 2 and "nothing.yml: no such file" in missing.stderr


def test_extends_fails_closed_on_our_reader_and_is_judged_by_compose(compose: str, shop: Path) -> None:
    """Our reader cannot resolve ``extends`` and says so (exit 2); compose resolves it, and
    the copy of a privileged service is judged privileged."""
    extended = shop / "extended.yml"
    extended.write_text("services:\n  base:\n    image: busybox\n    privileged: true\n"
                        "  copy:\n    extends: base\n")
    closed = audit(shop, "--compose", str(extended), policy="debug: no\n")
    assert closed.returncode == 2 and "copy.extends (compose itself resolves" in closed.stderr, closed.stderr
    resolved = audit(shop, "--compose", str(extended), "--format", "json", policy="debug: no\n",
                     path=f"{Path(compose).parent}:/usr/sbin:/usr/bin:/sbin:/bin")
    assert resolved.returncode == 1, resolved.stderr
    assert {r["name"]: "CV001" in [v["check"] for v in r["violations"]]
            for r in json.loads(resolved.stdout)} == {"shopapp-base-1": True, "shopapp-copy-1": True}


@pytest.mark.parametrize(("files", "dotenv"), [
    ({"compose.override.yaml": "services:\n  web: {privileged: true}\n"}, ""),
    ({"compose.yaml": "services:\n  web: {image: busybox, privileged: true}\n"}, ""),
    ({"evil.yml": "services:\n  web: {privileged: true}\n"}, "COMPOSE_FILE=docker-compose.yml:evil.yml\n"),
], ids=["override", "compose.yaml-first", "COMPOSE_FILE"])
def test_files_compose_reads_beside_the_judged_one_fail_closed(compose: str, tmp_path: Path,
                                                              files: dict[str, str], dotenv: str) -> None:
    """What ``docker compose up`` reads in the folder (compose itself, without ``-f``) is
    privileged where the judged file is not: both readers refuse to judge the file alone."""
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "docker-compose.yml").write_text("services:\n  web: {image: busybox}\n")
    (folder / ".env").write_text(dotenv)
    for name, text in files.items():
        (folder / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    read = subprocess.run([compose, "config", "--format", "json"], capture_output=True, text=True, env=env,
                          cwd=folder, timeout=60, check=True)
    assert json.loads(read.stdout)["services"]["web"]["privileged"] is True  # what up would create
    with_compose = f"{Path(compose).parent}:/usr/sbin:/usr/bin:/sbin:/bin"
    for path in ("", with_compose):
        judged = audit(folder, "--compose", str(folder / "docker-compose.yml"), path=path)
        assert judged.returncode == 2, judged.stderr
        assert "`docker compose up`" in judged.stderr and "this file" in judged.stderr, judged.stderr


BYPASSES = """\
services:
  rorw:
    image: busybox
    command: [sleep, "600"]
    volumes: ["${OUTSIDE}:/x:ro,rw"]
  strings:
    image: busybox
    command: [sleep, "600"]
    volumes:
      - {type: bind, source: "${OUTSIDE}", target: /x, read_only: "${RO:-false}"}
      - hostdata:/data
  link:
    image: busybox
    command: [sleep, "600"]
    volumes: [./conf:/conf]
volumes:
  hostdata:
    external: "false"
    driver_opts: {type: none, o: bind, device: "${OUTSIDE}"}
"""


@ONE_ENGINE
def test_former_bypasses_get_the_verdict_of_the_container_compose_creates(compose: str, tmp_path: Path,
                                                                        dockerd, client) -> None:
    """Files once judged compliant by our reader while compose created a container with a
    sensitive host path read-write: ``ro,rw`` (the last option wins), a ``"false"`` string
    (compose's toBoolean), ``external: "false"``, a link in the project folder. Each
    container compose creates gets our verdict, from both readers."""
    folder = tmp_path / "proj"
    folder.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (folder / "compose.yaml").write_text(BYPASSES)
    (folder / ".env").write_text(f"OUTSIDE={outside}\n")
    (folder / "conf").symlink_to(outside)
    policy = parse_policy(f"debug: no\n'*':\n  sensitive_mounts_forbidden: yes\n"
                          f"  sensitive_paths: [{outside}]\n", "<test>")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    tool_env = {**env, "PATH": f"{Path(compose).parent}:{env.get('PATH', '')}"}
    ours = {s.name: s for s in services(str(folder / "compose.yaml"), env=env, model="own")}
    theirs = {s.name: s for s in services(str(folder / "compose.yaml"), env=tool_env, model="tool")}
    client.images.get(IMAGE).tag("busybox", "latest")
    run = {**env, "DOCKER_HOST": dockerd.host}
    try:
        up = subprocess.run([compose, "up", "-d", "--no-color"], capture_output=True, text=True, env=run,
                            cwd=folder, timeout=180, check=False)
        assert up.returncode == 0, up.stderr
        engine = DockerEngine(host=dockerd.host, timeout=30.0)
        for name, s in ours.items():
            created = engine.container(name)
            real = [v.check for v in policy.decide(created, look_up(engine, created)).violations]
            assert "CV007" in real, name
            assert [v.check for v in policy.decide(s.container, s.lookups).violations] == real, name
            assert [v.check for v in policy.decide(theirs[name].container, theirs[name].lookups).violations] \
                == real, name
    finally:
        down = subprocess.run([compose, "down", "-v", "--timeout", "0"], capture_output=True, text=True,
                              env=run, cwd=folder, timeout=180, check=False)
        client.images.remove("busybox:latest")
        assert down.returncode == 0, down.stderr
