"""Where decisions are written: journald, else syslog on /dev/log, else stderr.

A decision that cannot be written is a decision nobody can audit, so every record
walks down that chain until one sink takes it. A sink that fails (or does not take a
record within SEND_TIMEOUT) is skipped for RETRY_AFTER seconds and then tried again,
so a journal that comes back is used again and a stuck one costs one timeout, not one
per record. The journal and syslog sinks are in the chain whether or not their socket
exists at start-up: one that appears later (a journald started after docker-covenant)
is found the same way, at the next try. Records are written by one writer thread off a
bounded queue: the threads that inspect and kill never wait for a log sink.

The journal is written with its native datagram protocol on a socket of our own,
not with systemd-python's ``journal.send``: that call holds the interpreter lock
while journald is not reading, which froze every thread of the daemon -- kills
included -- for as long as the journal was stuck.

Under systemd, stderr is the journal too (the units set ``StandardError=journal``, so
that a start-up error such as an unusable policy file reaches it). A write to a stderr
that is a socket waits at most SEND_TIMEOUT, so a frozen journald holds nothing; and
debug mode's copy of each line to stderr is not made when stderr is the journal
($JOURNAL_STREAM), where it would write every line twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import stat
import struct
import sys
import threading
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


def stderr_is_journal() -> bool:
    """True when stderr is systemd's stream into the journal (StandardError=journal):
    $JOURNAL_STREAM names that stream's device and inode (systemd.exec(5))."""
    stream = os.environ.get("JOURNAL_STREAM")
    if not stream:
        return False
    try:
        st = os.fstat(2)
    except OSError:
        return False
    return stream == f"{st.st_dev}:{st.st_ino}"


class StderrSink(logging.Handler):
    """The last resort, raising when the record was not written. When stderr is a socket
    (the journal's stream under systemd) a record waits at most ``wait`` seconds for room,
    and after one that did not get it none waits until one is written again: a frozen
    journald must hold neither the writer thread nor, with the queue full, a kill."""

    def __init__(self, formatter: logging.Formatter, wait: float = SEND_TIMEOUT) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self.wait = wait
        self.stuck = False
        self.sock: socket.socket | None = None
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(os.fstat(2).st_mode):
                fd = os.dup(2)  # a descriptor of its own on the same stream
                try:
                    self.sock = socket.socket(fileno=fd)
                except OSError:
                    os.close(fd)

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record) + "\n"
        if self.sock is None:
            stream = sys.stderr
            stream.write(text)
            stream.flush()
            return
        data = memoryview(text.encode("utf-8", "replace"))
        deadline = time.monotonic() + (0.0 if self.stuck else self.wait)
        while data:
            try:  # MSG_DONTWAIT: the descriptor's own blocking mode is left as it is
                data = data[self.sock.send(data, socket.MSG_DONTWAIT):]
            except BlockingIOError:
                left = deadline - time.monotonic()
                room = select.poll()
                room.register(self.sock, select.POLLOUT)
                if left <= 0 or not room.poll(left * 1000):
                    self.stuck = True
                    raise TimeoutError("stderr did not take the record") from None
        self.stuck = False

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        super().close()


class _FieldsFormatter(logging.Formatter):
    """Plain syslog has no fields: append the structured ones to the text."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = getattr(record, "covenant_fields", None)
        if fields:
            text += " [" + " ".join(f"{k}={v}" for k, v in fields.items()) + "]"
        return text


class ChainHandler(logging.Handler):
    """Try each sink in order; the last one (stderr) is never skipped. With a console
    (debug mode), a record another sink took is copied to it too. A record even stderr
    did not take is counted, and the count is written with the next record written."""

    def __init__(self, sinks: list[logging.Handler], retry_after: float = RETRY_AFTER,
                 console: logging.Handler | None = None) -> None:
        super().__init__(logging.DEBUG)
        self.sinks = sinks
        self.retry_after = retry_after
        self.console = console
        self._down_until = [0.0] * len(sinks)
        self.lost = 0
        self._lost_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        now = time.monotonic()
        for i, sink in enumerate(self.sinks[:-1]):
            if self._down_until[i] > now:
                continue
            try:
                sink.emit(record)
            except Exception:  # noqa: BLE001 - any failure means: try the next sink
                self._down_until[i] = time.monotonic() + self.retry_after
                continue
            if self.lost:
                self._report_lost(sink)
            if self.console is not None:
                with contextlib.suppress(Exception):  # a copy: the record is written
                    self.console.emit(record)
            return
        try:
            self.sinks[-1].emit(record)
        except Exception:  # noqa: BLE001 - nowhere left to write it: say so later
            self.count_lost()
            return
        if self.lost:
            self._report_lost(self.sinks[-1])

    def count_lost(self) -> None:
        with self._lost_lock:
            self.lost += 1

    def _report_lost(self, sink: logging.Handler) -> None:
        with self._lost_lock:
            lost, self.lost = self.lost, 0
        note = logging.makeLogRecord({
            "name": LOGGER_NAME, "levelno": logging.ERROR, "levelname": "ERROR",
            "msg": "%d log records were lost: no sink took them (journal, syslog and stderr all failed)",
            "args": (lost,), "covenant_fields": {"COVENANT_ACTION": "log-lost"}})
        try:
            sink.emit(note)
        except Exception:  # noqa: BLE001 - counted again, said next time
            with self._lost_lock:
                self.lost += lost

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
        if self.console is not None:
            self.console.close()
        super().close()


class _Queue(QueueHandler):
    """Hands records to the writer thread without ever blocking the caller: a journal that
    is slow must not slow a kill. When the bounded queue is full the record is written to
    stderr at once instead (never waiting for a stderr that is a socket), or else counted
    as lost and the count written later."""

    def __init__(self, queue: Queue[logging.LogRecord], overflow: logging.Handler,
                 chain: ChainHandler) -> None:
        super().__init__(queue)
        self.overflow = overflow
        self.chain = chain
        self.listener: QueueListener | None = None

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except Full:
            try:
                self.overflow.emit(record)
            except Exception:  # noqa: BLE001 - stderr full too: counted, said later
                self.chain.count_lost()

    def close(self) -> None:
        if self.listener is not None:
            self.listener.stop()  # writes out what is queued
            self.listener = None
        self.chain.close()
        self.overflow.close()
        super().close()


def setup(ident: str, debug: bool, logger_name: str = LOGGER_NAME) -> logging.Logger:
    """(Re)configure the daemon's logger; returns it. Safe to call again on reload.
    Call ``shutdown`` before exit so that queued records are written."""
    logger = logging.getLogger(logger_name)
    shutdown(logger)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    plain = logging.Formatter(f"{ident}: " + CONSOLE_FORMAT)
    # copy each line to stderr in debug mode, unless stderr is the journal (that would be twice)
    console = StderrSink(logging.Formatter(CONSOLE_FORMAT)) if debug and not stderr_is_journal() else None
    chain = ChainHandler([JournalSink(ident), SyslogSink(ident), StderrSink(plain)], console=console)
    # the overflow runs on the thread that logs (one that kills): it never waits
    handler = _Queue(Queue(QUEUE_SIZE), StderrSink(plain, wait=0.0), chain)
    handler.listener = QueueListener(handler.queue, chain)
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
