"""HTTP/1.1 framing of the plugin protocol, as dockerd's plugin client speaks it.

dockerd calls the plugin twice for every API request (AuthZReq before, AuthZRes after),
on connections it keeps open. ``http.server`` parses each request's headers with the
``email`` package and answers in several writes: measured, that cost more per call than
everything else a ``docker ps`` makes the plugin do (see bench/authz.py). So requests are
framed here, strictly: a request line, headers, a ``Content-Length`` body. Anything else
(chunked bodies, oversized heads, a bad length) is a protocol error: the connection gets
a 400, which dockerd's plugin client reports as a failed call, and the request is denied.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

MAX_HEAD = 64 * 1024
CONTENT_TYPE = b"application/vnd.docker.plugins.v1+json"


class ProtocolError(ValueError):
    """Not a request of the plugin protocol we can frame."""


@dataclass(frozen=True)
class PluginCall:
    method: str
    path: str
    body: bytes
    keep_alive: bool


class Reader:
    """Reads consecutive requests from one connection."""

    def __init__(self, sock: socket.socket, max_body: int) -> None:
        self.sock, self.max_body = sock, max_body
        self.buf = b""

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buf += chunk
        return bool(chunk)

    def next(self) -> PluginCall | None:
        """The next request, or None when dockerd closed the connection between requests."""
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            if len(self.buf) > MAX_HEAD:
                raise ProtocolError("request head too long")
            if not self._fill():
                if self.buf:
                    raise ProtocolError("connection closed inside a request")
                return None
        head, self.buf = self.buf[:end], self.buf[end + 4:]
        method, path, length, keep_alive = parse_head(head, self.max_body)
        chunks, have = [self.buf], len(self.buf)
        while have < length:
            chunk = self.sock.recv(min(1 << 20, length - have))
            if not chunk:
                raise ProtocolError("connection closed inside a body")
            chunks.append(chunk)
            have += len(chunk)
        data = b"".join(chunks)
        body, self.buf = data[:length], data[length:]
        return PluginCall(method, path, body, keep_alive)


def parse_head(head: bytes, max_body: int) -> tuple[str, str, int, bool]:
    """(method, path, Content-Length, keep-alive) of a request head."""
    call_line, *lines = head.split(b"\r\n")
    parts = call_line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise ProtocolError(f"bad request line {call_line[:80]!r}")
    length, keep_alive = 0, parts[2] == b"HTTP/1.1"
    for line in lines:
        name, sep, value = line.partition(b":")
        if not sep:
            raise ProtocolError(f"bad header line {line[:80]!r}")
        name, value = name.strip().lower(), value.strip()
        if name == b"content-length":
            if not value.isdigit() or int(value) > max_body:
                raise ProtocolError(f"Content-Length {value[:20]!r}")
            length = int(value)
        elif name == b"transfer-encoding":
            raise ProtocolError("a body without a Content-Length")
        elif name == b"connection":
            keep_alive = value.lower() != b"close" and (keep_alive or value.lower() == b"keep-alive")
    return parts[0].decode("latin-1"), parts[1].decode("latin-1"), length, keep_alive


def response(status: int, body: bytes, keep_alive: bool = True) -> bytes:
    """One whole response, written with one send."""
    reason = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed"}[status]
    return b"".join((b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n" %
                     (status, reason, CONTENT_TYPE, len(body)),
                     b"" if keep_alive else b"Connection: close\r\n", b"\r\n", body))
