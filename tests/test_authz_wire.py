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
