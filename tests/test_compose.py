"""Compose files judged before deploy (issue 15): the pure reading and conversion, on files
shaped like real projects'. What compose itself makes of the same files, and what the
engine creates from them, is compared in ``test_compose_engine.py``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from covenant.compose import ComposeError, ComposeService, services
from covenant.compose.interpolation import interpolate
from covenant.compose.keys import not_judged
from covenant.compose.loading import load, normalise_project_name
from covenant.policy.loading import parse_policy

STRICT = parse_policy("profile: strict\n'*':\n  bind_mount_prefixes: [/srv]\n", "<test>")


def project(tmp_path: Path, text: str, dotenv: str = "", folder: str = "shop") -> str:
    where = tmp_path / folder
    where.mkdir(exist_ok=True)
    (where / "docker-compose.yml").write_text(textwrap.dedent(text))
    if dotenv:
        (where / ".env").write_text(textwrap.dedent(dotenv))
    return str(where / "docker-compose.yml")


def by_service(found: list[ComposeService]) -> dict[str, ComposeService]:
    return {s.service: s for s in found}


def checks(s: ComposeService, policy=STRICT) -> list[str]:
    return [v.check for v in policy.decide(s.container, s.lookups).violations]


def messages(s: ComposeService, policy=STRICT) -> list[str]:
    return [v.message for v in policy.decide(s.container, s.lookups).violations]


WEBAPP = """\
    x-hardened: &hardened
      cap_drop: [ALL]
      security_opt: ["no-new-privileges:true"]
      read_only: true
      user: "${APP_UID:-1000}"
      pids_limit: 100
      mem_limit: 256m
      restart: on-failure:3
    services:
      web:
        <<: *hardened
        image: registry.example.com/shop/web:${TAG:-latest}
        ports: ["127.0.0.1:8080:80", 443:443]
        volumes: [./static:/srv/static:ro]
        labels: [team=shop]
      worker:
        <<: *hardened
        build: ./worker
        read_only: false
        command: ["sh", "-c", "echo $$HOME"]
      db:
        image: postgres:${PG_VERSION-16}
        container_name: ${DB_NAME:?set DB_NAME in .env}
        volumes:
          - pgdata:/var/lib/postgresql/data
          - type: bind
            source: /var/run/docker.sock
            target: /var/run/docker.sock
            read_only: true
        deploy:
          resources:
            limits: {cpus: "0.5", memory: 1G, pids: 200}
          restart_policy: {condition: on-failure, max_attempts: 10}
    volumes:
      pgdata:
        driver: local
        driver_opts: {type: none, o: bind, device: "${DATA_ROOT}/pg"}
    """


def test_a_web_project_with_anchors_build_and_env(tmp_path: Path) -> None:
    path = project(tmp_path, WEBAPP, dotenv="DB_NAME=shop-db\nDATA_ROOT=/etc\nTAG=3.1 # pinned\n")
    found = by_service(services(path, env={"APP_UID": "", "PG_VERSION": ""}, model="own"))
    web, worker, db = found["web"], found["worker"], found["db"]
    assert [web.name, worker.name, db.name] == ["shop-web-1", "shop-worker-1", "shop-db"]
    # merge keys: the anchor's settings, the service's own winning
    assert web.container["HostConfig"]["CapDrop"] == ["ALL"] and web.container["HostConfig"]["ReadonlyRootfs"]
    assert worker.container["HostConfig"]["ReadonlyRootfs"] is False
    # ${APP_UID:-1000}: set but empty takes the default; ${PG_VERSION-16}: set, so empty
    assert web.container["Config"]["User"] == "1000"
    assert db.container["Config"]["Image"] == "postgres:"
    assert web.container["Config"]["Image"] == "registry.example.com/shop/web:3.1"  # .env, comment cut
    assert worker.container["Config"]["Image"] == "shop-worker"  # build-only: <project>-<service>
    assert web.container["Config"]["Labels"]["team"] == "shop"
    assert web.container["Config"]["Labels"]["com.docker.compose.project"] == "shop"
    assert web.container["Config"]["Labels"]["com.docker.compose.service"] == "web"
    assert web.container["HostConfig"]["Binds"] == [f"{tmp_path}/shop/static:/srv/static:ro"]
    assert web.container["HostConfig"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
        "443/tcp": [{"HostIp": "", "HostPort": "443"}]}
    hc = db.container["HostConfig"]
    assert (hc["Memory"], hc["NanoCpus"], hc["PidsLimit"]) == (1 << 30, 500_000_000, 200)
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 10}
    # the named volume binds the host's /etc (driver_opts, through Lookups): judged as that bind
    assert db.lookups is not None and db.lookups.volumes["shop_pgdata"]["Options"]["device"] == "/etc/pg"
    assert "shop-db: sensitive host directory mounted read-write: /etc/pg (volume shop_pgdata)" \
        in messages(db)
    assert "shop-db: Docker socket mounted: /var/run/docker.sock" in messages(db)
    assert "shop-db: restart policy not limited (on-failure:10)" not in messages(db)  # strict: not on
    assert checks(web) == ["CV008", "CV028"]  # 443 below 1024; ./static outside /srv
    assert "CV017" not in checks(worker)  # strict does not require a read-only root
    assert worker.lookups is None


def test_interpolation_as_compose_reads_it() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("$SET ${SET} $$SET $${SET}", env) == "x x $SET ${SET}"
    assert interpolate("${EMPTY:-d} ${EMPTY-d} ${UNSET-d} ${UNSET:-${SET}y}", env) == "d  d xy"
    assert interpolate("${SET:+alt} ${EMPTY:+alt} ${EMPTY+alt}", env) == "alt  alt"
    missing: list[str] = []
    assert interpolate("a${NOPE}b$NOPE2", env, missing) == "ab" and missing == ["NOPE", "NOPE2"]
    with pytest.raises(ValueError, match="required variable EMPTY is missing a value: give it"):
        interpolate("${EMPTY:?give it}", env)
    assert interpolate("${EMPTY?give it}", env) == ""
    with pytest.raises(ValueError, match="invalid interpolation"):
        interpolate("cost: $5", env)


def test_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = project(tmp_path, WEBAPP)  # no .env: DB_NAME unset
    with pytest.raises(ComposeError, match=r"docker-compose.yml:23: error while interpolating "
                                           r"services.db.container_name: required variable DB_NAME"):
        services(path, env={}, model="own")
    bad = project(tmp_path, "services:\n  web:\n    image: [unclosed\n", folder="bad")
    with pytest.raises(ComposeError, match=r"docker-compose.yml:4: not YAML"):
        services(bad, env={}, model="own")
    dup = project(tmp_path, "services:\n  web:\n    image: a\n    image: b\n", folder="dup")
    with pytest.raises(ComposeError, match=r":4: not YAML: mapping key 'image' already defined"):
        services(dup, env={}, model="own")
    size = project(tmp_path, "services:\n  web:\n    image: a\n    mem_limit: lots\n", folder="size")
    with pytest.raises(ComposeError, match=r":4: services.web.mem_limit: invalid size"):
        services(size, env={}, model="own")
    with pytest.raises(ComposeError, match="no such file"):
        services(str(tmp_path / "nothing.yml"), env={}, model="own")


def test_project_name_precedence(tmp_path: Path) -> None:
    path = project(tmp_path, "name: named\nservices:\n  web: {image: a}\n", folder="My_App.v2")
    assert services(path, "cli", env={"COMPOSE_PROJECT_NAME": "envname"}, model="own")[0].name == "cli-web-1"
    assert services(path, env={"COMPOSE_PROJECT_NAME": "envname"}, model="own")[0].name == "envname-web-1"
    assert services(path, env={}, model="own")[0].name == "named-web-1"
    unnamed = project(tmp_path, "services:\n  web: {image: a}\n", folder="My_App.v2")
    assert services(unnamed, env={}, model="own")[0].name == "my_appv2-web-1"
    assert normalise_project_name("-My App") == "myapp"
    (tmp_path / "My_App.v2" / ".env").write_text("COMPOSE_PROJECT_NAME=fromdotenv\n")
    assert services(unnamed, env={}, model="own")[0].name == "fromdotenv-web-1"
    with pytest.raises(ComposeError, match="invalid project name 'Bad'"):
        services(unnamed, "Bad", env={}, model="own")


def test_yaml_1_2_numbers_and_port_syntax(tmp_path: Path) -> None:
    path = project(tmp_path, """\
        services:
          web:
            image: a
            ports:
              - 80:80
              - "[::1]:53:53/udp"
              - 9000-9001:9100-9101
              - "7000"
              - {target: 22, published: 2222, host_ip: 10.0.0.1}
        """)
    ports = services(path, env={}, model="own")[0].container["HostConfig"]["PortBindings"]
    assert ports == {"80/tcp": [{"HostIp": "", "HostPort": "80"}],
                     "53/udp": [{"HostIp": "::1", "HostPort": "53"}],
                     "9100/tcp": [{"HostIp": "", "HostPort": "9000"}],
                     "9101/tcp": [{"HostIp": "", "HostPort": "9001"}],
                     "7000/tcp": [{"HostIp": "", "HostPort": ""}],
                     "22/tcp": [{"HostIp": "10.0.0.1", "HostPort": "2222"}]}


def test_privileges_namespaces_through_services_and_unmasked_proc(tmp_path: Path) -> None:
    path = project(tmp_path, """\
        services:
          agent:
            image: agent
            network_mode: host
            pid: host
            privileged: true
            cap_add: [SYS_ADMIN]
            security_opt: [seccomp:unconfined, systempaths=unconfined, "label:disable"]
            devices: ["/dev/fuse"]
            cgroup_parent: batch.slice
            healthcheck: {disable: true}
            ulimits: {nofile: {soft: 1024, hard: 2048}}
          side:
            image: side
            network_mode: "service:agent"
            pid: "service:agent"
            volumes_from: ["agent:ro"]
            tmpfs: [/run]
            scale: 2
        """)
    found = services(path, env={}, model="own")
    assert [s.name for s in found] == ["shop-agent-1", "shop-side-1", "shop-side-2"]
    agent, side = found[0], found[1]
    hc = agent.container["HostConfig"]
    assert hc["SecurityOpt"] == ["seccomp:unconfined", "label:disable"]
    assert (hc["MaskedPaths"], hc["ReadonlyPaths"]) == ([], [])  # as compose sends systempaths=unconfined
    assert hc["Devices"] == [{"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse",
                              "CgroupPermissions": "rwm"}]
    assert agent.container["Config"]["Healthcheck"] == {"Test": ["NONE"]}
    policy = parse_policy("profile: cis\n", "<test>")
    assert {"CV001", "CV010", "CV011", "CV019", "CV021", "CV022", "CV024", "CV032", "CV033"} <= set(
        checks(agent, policy))
    assert side.container["HostConfig"]["NetworkMode"] == "container:shop-agent-1"
    assert side.lookups is not None and "shop-agent-1" in side.lookups.containers
    found = messages(side, policy)
    assert "shop-side-1: host network namespace shared (through container shop-agent-1)" in found
    assert "shop-side-1: host PID namespace shared (through container shop-agent-1)" in found
    assert side.container["HostConfig"]["Tmpfs"] == {"/run": ""}


def test_long_volumes_secrets_and_named_binds(tmp_path: Path) -> None:
    path = project(tmp_path, """\
        services:
          app:
            image: app
            volumes:
              - type: bind
                source: ./shared
                target: /shared
                bind: {propagation: rshared}
              - {type: volume, source: logs, target: /logs}
              - {type: volume, source: ext, target: /ext}
              - {type: tmpfs, target: /cache, tmpfs: {size: 1m}}
              - /anonymous
            secrets: [token]
        volumes:
          logs:
            name: central-logs
            driver_opts: {type: none, o: "bind,ro", device: /var/log}
          ext: {external: true}
        secrets:
          token: {file: ./token.txt}
        """)
    app = services(path, env={}, model="own")[0]
    specs = app.container["HostConfig"]["Mounts"]
    assert specs == [
        {"Type": "bind", "Source": f"{tmp_path}/shop/shared", "Target": "/shared", "ReadOnly": False,
         "BindOptions": {"Propagation": "rshared"}},
        {"Type": "volume", "Source": "central-logs", "Target": "/logs", "ReadOnly": False},
        {"Type": "volume", "Source": "ext", "Target": "/ext", "ReadOnly": False},
        {"Type": "tmpfs", "Source": "", "Target": "/cache", "ReadOnly": False,
         "TmpfsOptions": {"SizeBytes": 1 << 20}},
        {"Type": "volume", "Source": "", "Target": "/anonymous", "ReadOnly": False},
        {"Type": "bind", "Source": f"{tmp_path}/shop/token.txt", "Target": "/run/secrets/token",
         "ReadOnly": True}]
    # an external volume is not the file's to describe: judged as a volume
    assert app.lookups is not None and list(app.lookups.volumes) == ["central-logs"]
    policy = parse_policy("profile: cis\n'*':\n  bind_mount_prefixes: [/srv]\n", "<test>")
    found = messages(app, policy)
    assert "shop-app-1: shared mount propagation: /shared" in found
    assert (f"shop-app-1: bind mount outside the allowed host paths: {tmp_path}/shop/shared, "
            f"{tmp_path}/shop/token.txt, /var/log (volume central-logs)") in found
    assert not any("sensitive" in m for m in found)  # /var/log is not sensitive, and read-only anyway


def test_keys_not_judged_fail_closed(tmp_path: Path) -> None:
    """A key that may change the container but is not judged makes the file one that
    cannot be judged (exit status 2), not a pass with a note: ``extends`` made a privileged
    service's copy pass, ``include`` brought in services never judged."""
    path = project(tmp_path, """\
        include: [other.yml]
        x-defaults: {}
        services:
          web:
            image: a
            extends: {service: base}
            x-note: ignored by compose
            environment: [A=1]
            deploy: {replicas: 1, resources: {}, endpoint_mode: vip, placement: {}}
            storage_opt: {size: 1G}
          base:
            image: b
            privileged: true
            post_start: [{command: id, privileged: true}]
        """)
    assert not_judged(load(path, env={}, model="own")) == ["include (top level)", "web.extends",
                                                           "base.post_start"]
    with pytest.raises(ComposeError) as e:
        services(path, env={}, model="own")
    assert str(e.value) == (
        f"{path}:1: not judged, and compose may change the container with it: include (top level), "
        "web.extends, base.post_start (compose itself resolves `extends` and `include`: with "
        "`docker compose` or docker-compose v2 on PATH they are judged)")
    clean = project(tmp_path, "services:\n  web:\n    image: a\n    deploy: {mode: global, bogus: 1}\n",
                    folder="other")
    with pytest.raises(ComposeError, match=r"docker-compose.yml:4: not judged.*: web.deploy.bogus$"):
        services(clean, env={}, model="own")


def test_gpus_are_device_requests(tmp_path: Path) -> None:
    """``gpus`` (read by compose 2.26, sent by later ones) as the device requests compose
    sends for it: CV019, not a key passed over."""
    path = project(tmp_path, """\
        services:
          one: {image: a, gpus: all}
          two: {image: a, gpus: [{driver: nvidia, count: 2, capabilities: [compute]}, {device_ids: ["0"]}]}
        """)
    found = by_service(services(path, env={}, model="own"))
    assert found["one"].container["HostConfig"]["DeviceRequests"] == [
        {"Driver": "", "Count": -1, "DeviceIDs": None, "Capabilities": [["gpu"]], "Options": None}]
    assert [(d["Driver"], d["Count"], d["DeviceIDs"], d["Capabilities"])
            for d in found["two"].container["HostConfig"]["DeviceRequests"]] == [
        ("nvidia", 2, None, [["compute", "gpu"]]), ("", 0, ["0"], [["gpu"]])]
    assert all("CV019" in checks(s) for s in found.values())


def test_selectors_see_the_compose_name_image_and_labels(tmp_path: Path) -> None:
    path = project(tmp_path, """\
        services:
          web: {image: "registry.example.com/web:1", labels: {tier: front}, privileged: true}
          api: {image: api, privileged: true}
          cache: {image: redis, privileged: true, container_name: cache}
        """)
    policy = parse_policy("shop-api-1:\n  privileged: yes\nimage=registry.example.com/*:\n  privileged: yes\n"
                          "label=tier=back:\n  privileged: yes\n", "<test>")
    found = by_service(services(path, env={}, model="own"))
    assert "CV001" not in checks(found["web"], policy)
    assert "CV001" not in checks(found["api"], policy)
    assert "CV001" in checks(found["cache"], policy)


def test_dotenv_as_compose_reads_it(tmp_path: Path) -> None:
    path = project(tmp_path, "services:\n  web:\n    image: \"$A|$B|$C|$D|$E|$F\"\n", dotenv="""\
        # a comment
        export A=plain # cut
        B='single $A # kept'
        C="double ${A}\\n"
        D=${A}-more
        E=
        F=from-file
        """)
    image = services(path, env={"F": "from-environment"}, model="own")[0].container["Config"]["Image"]
    assert image == "plain|single $A # kept|double plain\n|plain-more||from-environment"


def test_dotenv_quotes_end_at_the_first_unescaped_quote(tmp_path: Path) -> None:
    """A quoted value ends at its first unescaped quote, what follows being a comment (as
    compose's dotenv reads it): ``"/etc" # "x"`` is /etc, not ``/etc" # "x`` -- a host path
    judged under another name would have been a sensitive mount passed over."""
    path = project(tmp_path, "services:\n  web:\n    image: busybox\n    volumes: [\"${SRC}:/x\"]\n"
                   "    labels: {a: \"$A\", b: \"$B\", c: \"$C\"}\n", dotenv="""\
        SRC="/etc" # the "host" one
        A="tab\\there \\"q\\" \\\\ \\$HOME"
        B='it\\'s' # kept
        C="${SRC}"
        """)
    web = services(path, env={}, model="own")[0]
    assert web.container["HostConfig"]["Binds"] == ["/etc:/x:rw"]
    labels = web.container["Config"]["Labels"]
    assert (labels["a"], labels["b"], labels["c"]) == ('tab\there "q" \\ $HOME', "it's", "/etc")
    assert "CV007" in checks(web)
    (tmp_path / "shop" / ".env").write_text('SRC="/etc\n')
    with pytest.raises(ComposeError, match=r"\.env:1: unterminated quoted value"):
        services(path, env={}, model="own")


def test_booleans_as_compose_casts_them(tmp_path: Path) -> None:
    """A string boolean (``"false"``, ``${RO}``) is compose's ``toBoolean``, not Python's
    truth of a non-empty string: a read-write bind of /etc written ``read_only: "false"``
    and a bind volume marked ``external: "false"`` were both passed over."""
    path = project(tmp_path, """\
        services:
          web:
            image: busybox
            privileged: "${PRIV:-off}"
            volumes:
              - {type: bind, source: /etc, target: /x, read_only: "${RO:-false}"}
              - {type: bind, source: /srv/a, target: /a, read_only: "Yes"}
              - hostdata:/data
        volumes:
          hostdata:
            external: "false"
            driver_opts: {type: none, o: bind, device: /var/run/docker.sock}
        """)
    web = services(path, env={}, model="own")[0]
    assert [(m["Source"], m["ReadOnly"]) for m in web.container["HostConfig"]["Mounts"]] == [
        ("/etc", False), ("/srv/a", True)]
    assert web.container["HostConfig"]["Privileged"] is False
    assert {"CV007", "CV026"} <= set(checks(web))
    assert services(path, env={"PRIV": "ON"}, model="own")[0].container["HostConfig"]["Privileged"] is True
    with pytest.raises(ComposeError, match=r"services\.web\.privileged: expected a boolean, got 'maybe'"):
        services(path, env={"PRIV": "maybe"}, model="own")


def test_short_volume_options_a_later_one_wins(tmp_path: Path) -> None:
    """compose-go reads ``ro,rw`` as read-write and ``slave,rshared`` as rshared (the last
    wins); the first was taken, so /etc read-write and shared propagation went unseen."""
    path = project(tmp_path, """\
        services:
          web:
            image: busybox
            volumes: ["/etc:/x:ro,rw", "/srv/a:/a:rw,ro", "/srv/b:/b:slave,rshared", "/srv/c:/c:z,Z"]
        """)
    web = services(path, env={}, model="own")[0]
    assert web.container["HostConfig"]["Binds"] == ["/etc:/x:rw", "/srv/a:/a:ro", "/srv/b:/b:rw,rshared",
                                                    "/srv/c:/c:rw,Z"]
    assert {"CV007", "CV020"} <= set(checks(web))


def test_symbolic_links_in_the_project_folder_are_followed(tmp_path: Path) -> None:
    """A bind source reached through a link in the project's folder (the checkout the file
    comes with) is judged as where the link leads, as dockerd mounts it: ``./conf`` a link
    to /etc is a bind of /etc. A path outside the folder is the deploy host's, left as
    written."""
    path = project(tmp_path, """\
        services:
          web: {image: busybox, volumes: ["./conf:/x", "./deep/../conf/ssh:/y:ro", "/srv/x:/z"]}
          side: {image: busybox, volumes_from: [web], read_only: true}
        """)
    (tmp_path / "shop" / "conf").symlink_to("/etc")
    (tmp_path / "shop" / "deep").mkdir()
    found = by_service(services(path, env={}, model="own"))
    assert found["web"].lookups is not None
    assert found["web"].lookups.real_paths == {f"{tmp_path}/shop/conf": "/etc",
                                               f"{tmp_path}/shop/conf/ssh": "/etc/ssh"}
    assert any("sensitive host directory mounted read-write: /etc" in m for m in messages(found["web"]))
    assert any("/etc" in m and "sensitive" in m for m in messages(found["side"]))


@pytest.mark.parametrize(("files", "dotenv", "error"), [
    ({"compose.override.yaml": "services:\n  web: {privileged: true}\n"}, "",
     "`docker compose up` in {folder} merges compose.override.yaml over this file, and that is not judged"),
    ({"docker-compose.override.yml": "services: {}\n"}, "", "merges docker-compose.override.yml"),
    ({"compose.yaml": "services:\n  web: {image: a, privileged: true}\n"}, "",
     "`docker compose up` in {folder} reads compose.yaml, not this file"),
    ({"evil.yml": "services:\n  web: {pid: host}\n"}, "COMPOSE_FILE=docker-compose.yml:evil.yml\n",
     "COMPOSE_FILE=docker-compose.yml:evil.yml (.env or the environment) has `docker compose up` read "
     "{folder}/docker-compose.yml, {folder}/evil.yml, not this file alone"),
    ({"evil.yml": "services: {}\n"}, "COMPOSE_FILE=evil.yml\n",
     "read {folder}/evil.yml, not this file alone"),
])
def test_files_compose_reads_with_it_fail_closed(tmp_path: Path, files: dict[str, str], dotenv: str,
                                                  error: str) -> None:
    """``docker compose up`` in the folder merges an override file over a default-named one,
    picks ``compose.yaml`` over ``docker-compose.yml``, and reads ``COMPOSE_FILE`` from
    ``.env``: each deployed a privileged container while this file alone was judged."""
    path = project(tmp_path, "services:\n  web: {image: a}\n", dotenv=dotenv)
    folder = tmp_path / "shop"
    for name, text in files.items():
        (folder / name).write_text(text)
    with pytest.raises(ComposeError) as e:
        services(path, env={}, model="own")
    assert error.format(folder=folder) in str(e.value)


def test_other_files_that_do_not_change_what_is_deployed(tmp_path: Path) -> None:
    """A file of another name is deployed with ``-f``: the default files beside it, or a
    ``COMPOSE_FILE`` that does not list it, are not its; ``COMPOSE_FILE`` naming exactly
    the file is fine."""
    path = project(tmp_path, "services:\n  web: {image: a}\n", dotenv="COMPOSE_FILE=./docker-compose.yml\n")
    assert [s.name for s in services(path, env={}, model="own")] == ["shop-web-1"]
    folder = tmp_path / "shop"
    (folder / "prod.yml").write_text("services:\n  web: {image: b}\n")
    (folder / "compose.override.yaml").write_text("services: {}\n")
    prod = services(str(folder / "prod.yml"), env={}, model="own")
    assert [s.container["Config"]["Image"] for s in prod] == ["b"]


def test_two_merge_keys_are_refused_as_compose_does(tmp_path: Path) -> None:
    """yaml.v3 refuses a second ``<<`` in a mapping (compose 2.26: mapping key "<<" already
    defined); PyYAML applied both, so our reader judged a file compose would not deploy."""
    path = project(tmp_path, """\
        x-a: &a {privileged: true}
        x-b: &b {privileged: false}
        services:
          web:
            <<: *a
            <<: *b
            image: busybox
        """)
    with pytest.raises(ComposeError, match=r"docker-compose\.yml:6: not YAML: mapping key '<<' already"):
        services(path, env={}, model="own")


def test_scalars_as_yaml_v3_resolves_them(tmp_path: Path) -> None:
    """compose-go's yaml.v3 makes ``yes``/``on`` strings and ``0`` -prefixed integers
    octal: ``published: 01777`` is port 1023 (was 1777, so CV008 passed), a label
    ``trusted: yes`` is ``yes`` (was ``true``, which a section ``label=trusted=true`` would
    have relaxed), a service named ``on`` is ``on``."""
    path = project(tmp_path, """\
        services:
          on:
            image: a
            privileged: yes
            read_only: off
            labels: {trusted: yes, a: on, b: True, c: 0o17, d: 1_000, e: 0x1F, f: 1e3, g: 012, h: 09,
                     i: 2001-12-14}
            ports: [{target: 80, published: 01777}]
        """)
    web = services(path, env={}, model="own")[0]
    assert web.name == "shop-on-1"
    labels = web.container["Config"]["Labels"]
    assert [labels[k] for k in ["trusted", "a", "b", "c", "d", "e", "f", "g", "h", "i"]] == [
        "yes", "on", "true", "15", "1000", "31", "1000", "10", "9", "2001-12-14"]
    hc = web.container["HostConfig"]
    assert (hc["Privileged"], hc["ReadonlyRootfs"]) == (True, False)
    assert hc["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "1023"}]}
    relaxed = parse_policy("profile: strict\nlabel=trusted=true:\n  privileged: yes\n", "<test>")
    assert {"CV001", "CV008"} <= set(checks(web, relaxed))


def test_a_name_that_interpolates_to_nothing_is_refused(tmp_path: Path) -> None:
    """``name: ${UNSET}`` is refused by compose (project name must not be empty), not the
    folder's name."""
    path = project(tmp_path, "name: ${UNSET}\nservices:\n  web: {image: a}\n")
    with pytest.raises(ComposeError, match=r"invalid project name '' \(name:\)"):
        services(path, env={}, model="own")


def test_several_documents_fail_closed(tmp_path: Path) -> None:
    """compose 2.26 merges a file's YAML documents (the second can make the service
    privileged); our reader does not, and says so (exit status 2)."""
    path = project(tmp_path, "services:\n  web: {image: a}\n---\nservices:\n  web: {privileged: true}\n")
    with pytest.raises(ComposeError, match=r"docker-compose\.yml:3: several YAML documents, which compose"):
        services(path, env={}, model="own")


def test_a_default_name_that_is_a_link_is_still_compose_s_default(tmp_path: Path) -> None:
    """``docker-compose.yml`` a link to ``deploy/prod.yml``: compose in the link's folder
    reads it, and merges the override beside it."""
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "prod.yml").write_text("services:\n  web: {image: a}\n")
    (tmp_path / "docker-compose.yml").symlink_to(tmp_path / "deploy" / "prod.yml")
    (tmp_path / "docker-compose.override.yml").write_text("services:\n  web: {privileged: true}\n")
    with pytest.raises(ComposeError, match=r"merges docker-compose\.override\.yml over this file"):
        services(str(tmp_path / "docker-compose.yml"), env={}, model="own")


def test_a_linked_file_is_read_from_the_link_s_folder(tmp_path: Path) -> None:
    """compose reads ``-f docker-compose.yml``, a link to ``deploy/prod.yml``, from the
    link's folder: its ``.env`` (``SRC=/etc`` there, ``/srv`` beside the target), relative
    paths, the project's name. Our reader followed the link: /srv judged, /etc mounted."""
    (tmp_path / "shop" / "deploy").mkdir(parents=True)
    (tmp_path / "shop" / "deploy" / "prod.yml").write_text(
        'services:\n  web: {image: a, volumes: ["${SRC}:/x", "./data:/d"]}\n')
    (tmp_path / "shop" / "deploy" / ".env").write_text("SRC=/srv\n")
    (tmp_path / "shop" / ".env").write_text("SRC=/etc\n")
    link = tmp_path / "shop" / "docker-compose.yml"
    link.symlink_to(tmp_path / "shop" / "deploy" / "prod.yml")
    web = services(str(link), env={}, model="own")[0]
    assert web.name == "shop-web-1"
    assert web.container["HostConfig"]["Binds"] == ["/etc:/x:rw", f"{tmp_path}/shop/data:/d:rw"]
    assert web.container["Config"]["Labels"]["com.docker.compose.project.config_files"] == str(link)


def test_containers_outside_the_project_fail_closed(tmp_path: Path) -> None:
    """``pid: container:X`` borrowed the host's PID namespace when X had it, and
    ``volumes_from`` X's binds: X is not the file's, so the service cannot be judged (it
    passed before). A container of the project, by its name, is followed as ever."""
    path = project(tmp_path, """\
        services:
          web: {image: a, pid: "container:host-pid-thing"}
        """)
    with pytest.raises(ComposeError, match=r":2: services\.web\.pid: container:host-pid-thing is not a "
                                           "container of this project"):
        services(path, env={}, model="own")
    path = project(tmp_path, """\
        services:
          web: {image: a, volumes_from: ["container:legacy:ro"]}
        """)
    with pytest.raises(ComposeError, match=r"services\.web\.volumes_from: legacy is not a container"):
        services(path, env={}, model="own")
    path = project(tmp_path, """\
        services:
          web: {image: a, pid: host, container_name: pidhost}
          side: {image: a, pid: "container:pidhost", volumes_from: ["container:pidhost"]}
        """)
    assert "CV011" in checks(by_service(services(path, env={}, model="own"))["side"])


def test_a_bind_from_home_fails_closed(tmp_path: Path) -> None:
    """``~`` is the home of whoever runs compose: ``~/.ssh`` was judged as this machine's
    (a CI runner's /home/runner/.ssh, harmless) while a deploy as root mounted /root/.ssh
    read-write. Not known here, so refused, in volumes and secret files alike."""
    for text in ('services:\n  web: {image: a, volumes: ["~/.ssh:/ssh"]}\n',
                 "services:\n  web: {image: a, volumes: [{type: bind, source: ~/, target: /h}]}\n",
                 "services:\n  web: {image: a, secrets: [k]}\nsecrets:\n  k: {file: ~/.ssh/id_rsa}\n"):
        path = project(tmp_path, text)
        with pytest.raises(ComposeError, match=r"services\.web\.(volumes|secrets): ~.*: `~` is the home of "
                                               "whoever runs compose"):
            services(path, env={"HOME": "/home/runner"}, model="own")
