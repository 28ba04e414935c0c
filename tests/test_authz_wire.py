"""The plugin protocol's framing (pure, over a socket pair): what dockerd's plugin client
sends is read exactly, anything else is refused rather than guessed."""

from __future__ import annotations

import socket

import pytest

from covenant.authz.wire import ProtocolError, Reader, response


def reader_of(data: bytes, max_body: int = 1 << 20) -> Reader:
    ours, theirs = socket.socketpair()
    theirs.sendall(data)
    theirs.close()
    return Reader(ours, max_body)


def call(body: bytes, extra: bytes = b"", version: bytes = b"HTTP/1.1") -> bytes:
    return (b"POST /AuthZPlugin.AuthZReq " + version + b"\r\nHost: plugin.moby.localhost\r\n"
            b"Content-Length: %d\r\n" % len(body) + extra + b"\r\n" + body)


def test_consecutive_calls_on_one_connection():
    r = reader_of(call(b'{"a": 1}') + call(b"") + call(b"x" * 200_000))
    first = r.next()
    assert first is not None and (first.method, first.path, first.body, first.keep_alive) == \
        ("POST", "/AuthZPlugin.AuthZReq", b'{"a": 1}', True)
    assert r.next().body == b""
    assert r.next().body == b"x" * 200_000
    assert r.next() is None


def test_connection_close_and_http_1_0():
    assert not reader_of(call(b"{}", b"Connection: close\r\n")).next().keep_alive
    assert not reader_of(call(b"{}", version=b"HTTP/1.0")).next().keep_alive
    assert reader_of(call(b"{}", b"Connection: keep-alive\r\n", b"HTTP/1.0")).next().keep_alive


@pytest.mark.parametrize("data", [
    call(b"{}", b"Transfer-Encoding: chunked\r\n"),
    call(b"{}")[:-1],  # closed inside the body
    b"POST /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    b"POST /x HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n",
    b"POST /x HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n",  # over the limit
    b"POST /x HTTP/1.1\r\nno colon\r\n\r\n",
    b"POST /x\r\n\r\n",
    b"POST /x HTTP/1.1\r\nHost: a",  # closed inside the head
    b"POST /x HTTP/1.1\r\nX: " + b"a" * 70_000,  # a head that never ends
])
def test_what_cannot_be_framed_is_an_error(data):
    with pytest.raises(ProtocolError):
        reader_of(data).next()


def test_response_is_one_whole_message():
    assert response(200, b'{"Allow": true}') == (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.plugins.v1+json\r\n"
        b"Content-Length: 15\r\n\r\n{\"Allow\": true}")
    assert b"Connection: close\r\n" in response(400, b"{}", keep_alive=False)


# -- the server's order of work on one connection --------------------------------------------

def _served(plugin):
    """A connection to ``plugin`` as dockerd holds one: a file to write calls to and read
    answers from."""
    import threading
    ours, theirs = socket.socketpair()
    threading.Thread(target=plugin.converse, args=(ours,), daemon=True).start()
    theirs.settimeout(5)
    return theirs.makefile("rwb")


def _reply(conn) -> bytes:
    length = 0
    while (line := conn.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return conn.read(length)


def _wait_for(cond) -> None:
    import time
    deadline = time.monotonic() + 5
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.01)


def _res(uri: str, status: int = 201, method: str = "POST") -> bytes:
    import json
    body = json.dumps({"RequestMethod": method, "RequestUri": uri, "ResponseStatusCode": status}).encode()
    return (b"POST /AuthZPlugin.AuthZRes HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body)) + body


def _plugin():
    import logging

    from covenant.authz import AuthzPlugin
    from covenant.policy import parse_policy
    return AuthzPlugin(parse_policy("debug: no\n"), logging.getLogger("test-wire"), "/nonexistent.sock",
                       engine=None)  # type: ignore[arg-type]


def test_a_finished_request_is_answered_before_it_is_acted_on():
    """dockerd waits on the AuthZRes answer before it answers its client: the plugin's
    bookkeeping (the gate, quotas, the prefetch a create starts) comes after, and one that
    fails does not cost the connection."""
    import threading
    plugin, acting, seen = _plugin(), threading.Event(), []

    def done(res):
        seen.append(res["RequestUri"])
        acting.wait(5)
        if res["RequestUri"].endswith("fail"):
            raise RuntimeError("bookkeeping failed")
    plugin.done = done
    conn = _served(plugin)
    conn.write(_res("/v1.41/containers/create?name=x"))
    conn.flush()
    assert _reply(conn) == b'{"Allow": true}'  # answered while done() still waits
    assert seen == ["/v1.41/containers/create?name=x"]
    acting.set()
    _wait_for(lambda: len(seen) == 1)
    acting.clear()
    conn.write(_res("/v1.41/containers/json", 200, "GET"))
    conn.flush()
    assert _reply(conn) == b'{"Allow": true}'
    _wait_for(lambda: len(seen) == 2)
    assert seen[1] == "/v1.41/containers/json"
    acting.set()
    del seen[1]
    conn.write(_res("/v1.41/containers/x/start?fail", 204) + _res("/v1.41/containers/y/start", 204))
    conn.flush()
    assert _reply(conn) == b'{"Allow": true}' and _reply(conn) == b'{"Allow": true}'
    _wait_for(lambda: len(seen) == 3)
    assert seen[1:] == ["/v1.41/containers/x/start?fail", "/v1.41/containers/y/start"]


def test_an_update_or_rename_done_discards_prefetched_inspects_before_it_is_answered():
    import threading
    plugin, acting, seen = _plugin(), threading.Event(), []

    def done(res):
        acting.wait(0.3)  # never set: acted on slowly
        seen.append(res["RequestUri"])
    plugin.done = done
    conn = _served(plugin)
    for uri in ("/v1.41/containers/x/update", "/v1.41/containers/x/rename?name=y"):
        conn.write(_res(uri, 200))
        conn.flush()
        assert _reply(conn) == b'{"Allow": true}'
        assert seen[-1] == uri  # acted on before the answer
