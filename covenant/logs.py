"""Where decisions are written: journald, else syslog on /dev/log, else stderr.

A decision that cannot be written is a decision nobody can audit, so every record
walks down that chain until one sink takes it. A sink that fails (or does not take a
record within SEND_TIMEOUT) is skipped for RETRY_AFTER seconds and then tried again,
so a journal that comes back is used again and a stuck one costs one timeout, not one
per record. Records are written by one writer thread off a bounded queue: the threads
that inspect and kill never wait for a log sink.

The journal is written with its native datagram protocol on a socket of our own,
not with systemd-python's ``journal.send``: that call holds the interpreter lock
while journald is not reading, which froze every thread of the daemon -- kills
included -- for as long as the journal was stuck.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import sys
import time
from logging.handlers import QueueHandler, QueueListener, SysLogHandler
from queue import Full, Queue
from typing import Any

JOURNAL_SOCKET = "/run/systemd/journal/socket"
SYSLOG_SOCKET = "/dev/log"
LOGGER_NAME = "docker-covenant"
CONSOLE_FORMAT = "%(asctime)s %(levelname)s %(message)s"
QUEUE_SIZE = 10_000  # records waiting for a slow sink before they go to stderr directly
SEND_TIMEOUT = 0.5  # seconds a sink may take to accept one record
RETRY_AFTER = 5.0  # seconds a failed sink is skipped


def _priority(levelno: int) -> int:
    """syslog(3) priority of a logging level."""
    for limit, priority in ((logging.DEBUG, 7), (logging.INFO, 6), (logging.WARNING, 4),
                            (logging.ERROR, 3), (logging.CRITICAL, 2)):
        if levelno <= limit:
            return priority
    return 1


def journal_datagram(fields: dict[str, Any]) -> bytes:
    """Encode fields in journald's native protocol (a value with a newline is length-prefixed)."""
    out = bytearray()
    for key, value in fields.items():
        data = str(value).encode("utf-8", "replace")
        if b"\n" in data:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


class JournalSink(logging.Handler):
    """One record, one datagram to journald; raises when the journal does not take it."""

    def __init__(self, ident: str, path: str = JOURNAL_SOCKET, timeout: float = SEND_TIMEOUT) -> None:
        super().__init__()
        self.ident, self.path = ident, path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.settimeout(timeout)

    def emit(self, record: logging.LogRecord) -> None:
        fields: dict[str, Any] = {
            "MESSAGE": self.format(record), "PRIORITY": _priority(record.levelno),
            "SYSLOG_IDENTIFIER": self.ident, "SYSLOG_PID": os.getpid(),
            "CODE_FILE": record.pathname, "CODE_LINE": record.lineno, "CODE_FUNC": record.funcName,
            "THREAD_NAME": record.threadName,
            **getattr(record, "covenant_fields", {}),
        }
        self.sock.sendto(journal_datagram(fields), self.path)

    def close(self) -> None:
        self.sock.close()
        super().close()


class SyslogSink(SysLogHandler):
    """RFC 3164 over /dev/log, with a send timeout, raising when it does not take a record."""

    def __init__(self, ident: str, path: str = SYSLOG_SOCKET, timeout: float = SEND_TIMEOUT) -> None:
        self.timeout = timeout
        super().__init__(address=path, facility=SysLogHandler.LOG_DAEMON)
        self.ident = f"{ident}[{os.getpid()}]: "
        self.setFormatter(_FieldsFormatter("%(message)s"))

    def _connect_unixsocket(self, address: Any) -> None:
        super()._connect_unixsocket(address)  # type: ignore[misc]
        self.socket.settimeout(self.timeout)  # type: ignore[attr-defined]

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging API
        raise  # noqa: PLE0704 - re-raises the error emit() is handling: the chain moves on


def _journal_sink(ident: str) -> logging.Handler | None:
    return JournalSink(ident) if os.path.exists(JOURNAL_SOCKET) else None


def _syslog_sink(ident: str) -> logging.Handler | None:
    if not os.path.exists(SYSLOG_SOCKET):
        return None
    try:
        return SyslogSink(ident)
    except OSError:
        return None


class _FieldsFormatter(logging.Formatter):
    """Plain syslog has no fields: append the structured ones to the text."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = getattr(record, "covenant_fields", None)
        if fields:
            text += " [" + " ".join(f"{k}={v}" for k, v in fields.items()) + "]"
        return text


class ChainHandler(logging.Handler):
    """Try each sink in order; the last one (stderr) is never skipped."""

    def __init__(self, sinks: list[logging.Handler], retry_after: float = RETRY_AFTER) -> None:
        super().__init__(logging.DEBUG)
        self.sinks = sinks
        self.retry_after = retry_after
        self._down_until = [0.0] * len(sinks)

    def emit(self, record: logging.LogRecord) -> None:
        now = time.monotonic()
        for i, sink in enumerate(self.sinks[:-1]):
            if self._down_until[i] > now:
                continue
            try:
                sink.emit(record)
                return
            except Exception:  # noqa: BLE001 - any failure means: try the next sink
                self._down_until[i] = time.monotonic() + self.retry_after
        self.sinks[-1].emit(record)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
        super().close()



class _Queue(QueueHandler):
    """Hands records to the writer thread without ever blocking the caller: a journal that
    is slow must not slow a kill. When the bounded queue is full the record is written to
    stderr at once instead -- late or elsewhere, but never lost."""

    def __init__(self, queue: Queue[logging.LogRecord], overflow: logging.Handler) -> None:
        super().__init__(queue)
        self.overflow = overflow
        self.listener: QueueListener | None = None

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except Full:
            self.overflow.emit(record)

    def close(self) -> None:
        if self.listener is not None:
            self.listener.stop()  # writes out what is queued
            self.listener = None
        super().close()


def setup(ident: str, debug: bool, logger_name: str = LOGGER_NAME) -> logging.Logger:
    """(Re)configure the daemon's logger; returns it. Safe to call again on reload.
    Call ``shutdown`` before exit so that queued records are written."""
    logger = logging.getLogger(logger_name)
    shutdown(logger)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(logging.Formatter(f"{ident}: " + CONSOLE_FORMAT))
    sinks = [h for h in (_journal_sink(ident), _syslog_sink(ident)) if h is not None]
    writers: list[logging.Handler] = [ChainHandler([*sinks, stderr])]
    if debug and sinks:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter(CONSOLE_FORMAT))
        writers.append(console)
    handler = _Queue(Queue(QUEUE_SIZE), stderr)
    handler.listener = QueueListener(handler.queue, *writers)
    handler.listener.start()
    logger.addHandler(handler)
    return logger


def shutdown(logger: logging.Logger) -> None:
    """Write out queued records and close the sinks."""
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` for a record: journal fields by name, and the same for plain syslog."""
    clean = {k: v for k, v in values.items() if v not in (None, "")}
    return {**clean, "covenant_fields": clean}
