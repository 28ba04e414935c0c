"""Where decisions are written: journald, else syslog on /dev/log, else stderr.

A decision that cannot be written is a decision nobody can audit, so every record
walks down that chain until one sink takes it; a sink that fails is skipped for that
record only, so a journal that comes back is used again.
"""

from __future__ import annotations

import logging
import os
import sys
from logging.handlers import QueueHandler, QueueListener, SysLogHandler
from queue import Full, Queue
from typing import Any

JOURNAL_SOCKET = "/run/systemd/journal/socket"
SYSLOG_SOCKET = "/dev/log"
LOGGER_NAME = "docker-covenant"
CONSOLE_FORMAT = "%(asctime)s %(levelname)s %(message)s"
QUEUE_SIZE = 10_000  # records waiting for a slow sink before they go to stderr directly


class _Strict:
    """Mix-in: let a sink's failure reach the chain instead of printing a traceback."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging API
        raise  # noqa: PLE0704 - re-raises the error emit() is handling


def _journal_handler(ident: str) -> logging.Handler | None:
    if not os.path.exists(JOURNAL_SOCKET):
        return None
    try:
        from systemd.journal import JournalHandler
    except ImportError:
        return None

    class StrictJournal(_Strict, JournalHandler):  # type: ignore[misc]
        pass

    return StrictJournal(SYSLOG_IDENTIFIER=ident)


def _syslog_handler(ident: str) -> logging.Handler | None:
    if not os.path.exists(SYSLOG_SOCKET):
        return None

    class StrictSyslog(_Strict, SysLogHandler):
        pass

    try:
        handler = StrictSyslog(address=SYSLOG_SOCKET, facility=SysLogHandler.LOG_DAEMON)
    except OSError:
        return None
    handler.ident = f"{ident}[{os.getpid()}]: "
    handler.setFormatter(_FieldsFormatter("%(message)s"))
    return handler


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

    def __init__(self, sinks: list[logging.Handler]) -> None:
        super().__init__(logging.DEBUG)
        self.sinks = sinks

    def emit(self, record: logging.LogRecord) -> None:
        for sink in self.sinks[:-1]:
            try:
                sink.emit(record)
                return
            except Exception:  # noqa: BLE001 - any failure means: try the next sink
                continue
        self.sinks[-1].emit(record)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
        super().close()

    @property
    def primary(self) -> str:
        return type(self.sinks[0]).__name__


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
    sinks = [h for h in (_journal_handler(ident), _syslog_handler(ident)) if h is not None]
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
