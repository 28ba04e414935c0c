"""Webhooks (issue 13, item 2): the policy's `webhook` mapping, and the daemon POSTing its
decisions to a local HTTP server the test starts, without ever holding up a kill."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from harness import COMPLIANT, is_running, run_container, unique, wait_until
from test_operate import free_port, samples

from covenant.checks.model import Violation
from covenant.hooks import Webhook, document, parse_webhook
from covenant.metrics import Metrics
from covenant.policy import PolicyError, parse_policy
from covenant.webhook import Notifier


class Receiver:
    """A local HTTP server that records each POST; ``mode`` ok answers 204, error 500, and
    hang holds the request until the test ends."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode, self.posts, self.release = mode, [], threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's name for the handler of POST
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.posts.append((time.monotonic(), self.headers.get("Content-Type"), json.loads(body)))
                if receiver.mode == "hang":
                    receiver.release.wait(60)
                    return
                self.send_response({"error": 500, "redirect": 302}.get(receiver.mode, 204))
                if receiver.mode == "redirect":
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:  # what urllib would send after a redirect
                receiver.posts.append((time.monotonic(), None, {"GET": self.path}))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook/secret-token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_factory():
    made: list[Receiver] = []

    def make(mode: str = "ok") -> Receiver:
        made.append(Receiver(mode))
        return made[-1]

    yield make
    for r in made:
        r.close()


def start(covenant_factory, receiver: Receiver, hook: str) -> tuple[Any, str]:
    url = f"http://127.0.0.1:{free_port()}"
    cov = covenant_factory(f"debug: no\nmetrics_address: '{url[7:]}'\n"
                           f"webhook:\n  url: {receiver.url}\n{hook}")
    return cov, url


def stamp(text: str) -> float:
    """A dockerd timestamp (nanoseconds, Z) as seconds since the epoch."""
    head, _, fraction = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(head).replace(tzinfo=timezone.utc).timestamp() + float(f"0.{fraction or 0}")


def count(url: str, result: str) -> float:
    return samples(url).get(("covenant_webhooks_total", (("result", result),)), 0.0)


def test_a_killed_violator_is_posted(client, covenant_factory, receiver_factory, journal):
    receiver = receiver_factory()
    cov, url = start(covenant_factory, receiver, "  on: [killed]\n")
    good = run_container(client, unique("hook-ok"), **COMPLIANT)
    bad = run_container(client, unique("hook-bad"))
    wait_until(lambda: receiver.posts, 10, what="the webhook's POST")
    bad.reload()
    assert not is_running(bad)
    _, ctype, doc = receiver.posts[0]
    assert ctype == "application/json"
    assert doc["action"] == "killed" and doc["mode"] == "enforce" and doc["host"] == socket.gethostname()
    assert doc["container"] == {"id": bad.id, "name": bad.name, "image": "covenant-test/busybox:1"}
    assert doc["checks"] == [{"check": "CV002", "message": f"{bad.name}: all capabilities not dropped"},
                             {"check": "CV003", "message": f"{bad.name}: no security options has been set"}]
    sent_at = datetime.fromisoformat(doc["time"].replace("Z", "+00:00")).timestamp()
    assert abs(sent_at - time.time()) < 30
    journal.wait_for(cov.ident, f"{good.name}: allowed")
    time.sleep(0.5)
    assert len(receiver.posts) == 1  # the allowed container is not a kind it asked for
    assert count(url, "sent") == 1
    assert "secret-token" not in " ".join(journal.messages(cov.ident))  # the URL's path is not logged


def test_stopped_allowed_and_warned_are_posted_when_listed(client, covenant_factory, receiver_factory):
    receiver = receiver_factory()
    first, _ = start(covenant_factory, receiver, "  on: [stopped, allowed]\naction: stop\nstop_timeout: 0\n")
    good = run_container(client, unique("hook-ok"), **COMPLIANT)
    bad = run_container(client, unique("hook-stop"))
    wait_until(lambda: len(receiver.posts) >= 2, 10, what="two POSTs")
    got = {doc["container"]["name"]: doc for _, _, doc in receiver.posts}
    assert got[good.name]["action"] == "allowed" and got[good.name]["checks"] == []
    assert got[bad.name]["action"] == "stopped"
    bad.reload()
    assert not is_running(bad)

    assert first.stop() == 0  # one daemon at a time on the engine

    warned = receiver_factory()
    start(covenant_factory, warned, "  on: [warned]\nmode: warn\n")
    tolerated = run_container(client, unique("hook-warn"))
    wait_until(lambda: warned.posts, 10, what="the warned POST")
    assert [(d["action"], d["mode"], d["container"]["id"]) for _, _, d in warned.posts] == [
        ("warned", "warn", tolerated.id)]
    tolerated.reload()
    assert is_running(tolerated)


def test_a_hanging_receiver_delays_no_kill_and_its_failure_is_counted(client, covenant_factory,
                                                                     receiver_factory, journal):
    receiver = receiver_factory("hang")
    cov, url = start(covenant_factory, receiver, "  timeout: 5s\n  retries: 1\n")
    first = run_container(client, unique("hang-1"))
    wait_until(lambda: receiver.posts, 10, what="the first POST, which hangs")
    # the sender is now stuck for 5 s + 0.5 s + 5 s; a second violator is killed meanwhile,
    # as dockerd's own clock shows (not this busy test's)
    second = run_container(client, unique("hang-2"))
    wait_until(lambda: (second.reload(), not is_running(second))[1], 15, what="the second kill")
    state = second.attrs["State"]
    assert stamp(state["FinishedAt"]) - stamp(state["StartedAt"]) < 5
    assert len(receiver.posts) == 1
    first.reload()
    assert not is_running(first)
    wait_until(lambda: count(url, "failed") >= 1, 30, what="the first document counted as failed")
    assert samples(url)[("covenant_webhook_retries_total", ())] >= 1
    entry = journal.wait_for(cov.ident, f"{first.name}: webhook failed after 2 attempt(s)")
    assert entry["COVENANT_ACTION"] == "webhook-failed"


def test_an_erroring_receiver_is_retried_then_counted(client, covenant_factory, receiver_factory, journal):
    receiver = receiver_factory("error")
    cov, url = start(covenant_factory, receiver, "  retries: 2\n")
    bad = run_container(client, unique("err"))
    journal.wait_for(cov.ident, f"{bad.name}: webhook failed after 3 attempt(s): HTTP 500", timeout=20)
    bad.reload()
    assert not is_running(bad)
    kill = journal.entries(cov.ident, CONTAINER_NAME=bad.name, COVENANT_ACTION="killed")
    failure = journal.entries(cov.ident, CONTAINER_NAME=bad.name, COVENANT_ACTION="webhook-failed")
    # the kill came first; the attempts after it (the document is made once the kill was sent)
    assert int(kill[0]["__REALTIME_TIMESTAMP"]) < int(failure[0]["__REALTIME_TIMESTAMP"])
    assert len(receiver.posts) == 3
    gaps = [b[0] - a[0] for a, b in zip(receiver.posts, receiver.posts[1:])]
    assert gaps[0] >= 0.4 and gaps[1] >= 0.9  # backoff 0.5 s, then 1 s
    assert count(url, "failed") == 1 and count(url, "sent") == 0
    assert samples(url)[("covenant_webhook_retries_total", ())] == 2


def test_a_full_queue_drops_and_counts(client, covenant_factory, receiver_factory, journal):
    receiver = receiver_factory("hang")
    cov, url = start(covenant_factory, receiver, "  timeout: 20s\n  retries: 0\n  queue: 1\n")
    bad = [run_container(client, unique(f"full-{i}")) for i in range(4)]
    for c in bad:
        wait_until(lambda c=c: (c.reload(), not is_running(c))[1], 10, what=f"{c.name} killed")
    # one document in flight (hanging), one queued, the rest dropped (three if the sender had
    # not yet taken the first when all four were offered)
    wait_until(lambda: count(url, "dropped") >= 2, 10, what="documents dropped")
    assert 2 <= count(url, "dropped") <= 3 and len(receiver.posts) == 1
    journal.wait_for(cov.ident, "webhook: 1 document(s) dropped (queue full, queue of 1)")


def test_a_redirect_is_a_failure_not_a_get(receiver_factory):
    """urllib would follow a 302 to a POST with a GET, without the document."""
    receiver = receiver_factory("redirect")
    metrics = Metrics()
    notifier = Notifier(Webhook(receiver.url, ("killed",), 2.0, 0, 10), logging.getLogger("covtest"), metrics)
    try:
        notifier.offer({"action": "killed", "container": {"id": "x", "name": "n", "image": "i"}})
        notifier.offer({"action": "allowed", "container": {"id": "y", "name": "m", "image": "i"}})
        wait_until(lambda: metrics.registry.get_sample_value("covenant_webhooks_total", {"result": "failed"}),
                   10, what="the redirect counted as failed")
    finally:
        notifier.close()
    assert len(receiver.posts) == 1  # no GET followed it; the allowed one is not wanted


# -- the policy and the document, without Docker -----------------------------------------------------------

def test_webhook_settings_and_their_defaults():
    hook = parse_policy("webhook:\n  url: https://hooks.example.com/x\n").webhook
    assert hook == Webhook("https://hooks.example.com/x", ("killed", "stopped"), 2.0, 3, 1000)
    full = parse_webhook({"url": "http://127.0.0.1:9/h", "on": ["killed", "warned", "failed"],
                          "timeout": "500ms", "retries": 0, "queue": 5})
    assert full == Webhook("http://127.0.0.1:9/h", ("killed", "warned", "failed"), 0.5, 0, 5)
    assert parse_webhook({"url": "http://h/", "timeout": 1.5}).timeout == 1.5
    policy = parse_policy("webhook:\n  url: http://h/\n")
    assert policy.describe()["webhook"] == {"url": "http://h/", "on": ["killed", "stopped"], "timeout": 2.0,
                                            "retries": 3, "queue": 1000}
    assert parse_policy("debug: no\n").webhook is None
    # YAML 1.1 reads a bare `on` as true; quoted or not, it is the list of kinds
    for key in ("on", "'on'"):
        assert parse_policy(f"webhook:\n  url: http://h/\n  {key}: [warned]\n").webhook.on == ("warned",)


@pytest.mark.parametrize(("text", "error"), [
    ("webhook: yes\n", "p.yml:1: webhook: expected a mapping"),
    ("webhook:\n  on: [killed]\n", "p.yml:1: webhook.url: expected an http:// or https:// URL, got None"),
    ("webhook:\n  url: ftp://h/\n", "p.yml:2: webhook.url: expected an http:// or https:// URL"),
    ("webhook:\n  url: http://h/\n  on: [killed, refused]\n",
     "p.yml:3: webhook.on: expected a list of: killed"),
    ("webhook:\n  url: http://h/\n  on: killed\n  'on': warned\n", "p.yml:3: webhook: duplicate key 'on'"),
    ("webhook:\n  url: http://h/\n  on: []\n", "p.yml:3: webhook.on: expected a list"),
    ("webhook:\n  url: http://h/\n  timeout: 2 s\n", "p.yml:3: webhook.timeout: expected a duration"),
    ("webhook:\n  url: http://h/\n  timeout: 0s\n", "p.yml:3: webhook.timeout: expected a duration"),
    ("webhook:\n  url: http://h/\n  retries: -1\n", "p.yml:3: webhook.retries: expected a whole number"),
    ("webhook:\n  url: http://h/\n  retries: yes\n", "p.yml:3: webhook.retries: expected a whole number"),
    ("webhook:\n  url: http://h/\n  queue: 0\n", "p.yml:3: webhook.queue: expected a whole number"),
    ("debug: no\nwebhook:\n  url: http://h/\n  retry: 3\n", "p.yml:4: webhook: unknown key 'retry'"),
])
def test_webhook_errors_name_file_and_line(text, error):
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p.yml")
    assert str(caught.value).startswith(error)


def test_the_document():
    doc = document(action="killed", container_id="abc", name="web", image="img:1",
                   violations=[Violation("CV001", "web: privileged set but not allowed")], mode="enforce",
                   host="h1", when=0.25)
    assert doc == {"action": "killed", "container": {"id": "abc", "name": "web", "image": "img:1"},
                   "checks": [{"check": "CV001", "message": "web: privileged set but not allowed"}],
                   "mode": "enforce", "host": "h1", "time": "1970-01-01T00:00:00.250Z"}


def test_the_plugins_refusals_are_posted(bed, plugin_policy, receiver_factory):
    """denied: a create the plugin refuses (a check) and an API call a rule refuses, each
    posted with the request; nothing ran (docker inspect finds no such container)."""
    from test_authz import docker, exists

    receiver = receiver_factory()
    plugin_policy(f"webhook:\n  url: {receiver.url}\n  on: [denied]\n"
                  "api_rules:\n  - name: no-volume-rm\n    deny: DELETE /volumes/*\n")
    name = unique("hook-denied")
    refused = docker(bed, "run", "-d", "--network", "none", "--privileged", "--name", name,
                     "covenant-test/busybox:1", "sleep", "60")
    assert refused.returncode != 0 and not exists(bed, name)
    assert docker(bed, "volume", "create", "hookvol").returncode == 0
    assert docker(bed, "volume", "rm", "hookvol").returncode != 0
    wait_until(lambda: len(receiver.posts) >= 2, 10, what="two webhook POSTs")
    create, rule = (doc for _, _, doc in receiver.posts[:2])
    assert create["action"] == "denied" and create["container"]["name"] == name
    assert [c["check"] for c in create["checks"]] == ["CV001", "CV002", "CV003"]
    assert create["request"]["method"] == "POST" and "/containers/create" in create["request"]["uri"]
    assert rule["action"] == "denied" and rule["checks"][0]["check"] == "rule:no-volume-rm"
    assert rule["request"] == {"method": "DELETE", "uri": rule["request"]["uri"]}
    assert rule["request"]["uri"].endswith("/volumes/hookvol")
