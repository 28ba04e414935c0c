"""Where decisions are written when the journal is not there: syslog, else stderr — never nowhere.

Each daemon here runs in a private mount namespace (unshare) where the journal's socket
folder is replaced, so the host's journal is neither hidden nor touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Covenant, is_running, run_container, unique, wait_until

JOURNALD = "/lib/systemd/systemd-journald"


def in_namespace(tmp_path: Path, dockerd, setup: str, policy: str = "debug: no\n") -> Covenant:
    """docker-covenant under `unshare --mount` after the shell commands in setup."""
    if not Path("/usr/bin/unshare").exists():
        pytest.fail("unshare (util-linux) is needed for the logging fallback tests")
    cov = Covenant(tmp_path, dockerd.host, policy)
    cov.argv = ["unshare", "--mount", "--propagation", "private", "sh", "-ec", setup + '\nexec "$@"', "sh",
                *cov.argv]
    return cov


HIDE_JOURNAL = "mount -t tmpfs tmpfs /run/systemd/journal"


def test_without_a_journal_decisions_go_to_syslog_with_their_fields(tmp_path, dockerd, client):
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(tmp_path / "devlog"))
    receiver.settimeout(0.2)
    setup = (f"{HIDE_JOURNAL}\ntouch /run/systemd/journal/dev-log\n"
             f"mount --bind {tmp_path / 'devlog'} /run/systemd/journal/dev-log\n"
             f"[ -L /dev/log ] || mount --bind {tmp_path / 'devlog'} /dev/log")
    cov = in_namespace(tmp_path, dockerd, setup)
    lines: list[str] = []

    def received(text: str) -> bool:
        try:
            while True:
                lines.append(receiver.recv(65536).decode())
        except TimeoutError:
            return any(text in line for line in lines)

    try:
        cov.start()
        bad = run_container(client, unique("syslogged"))
        wait_until(lambda: received(f"{bad.name}: stopping container"), 10, what="the syslog line")
        stop = next(line for line in lines if f"{bad.name}: stopping container" in line)
        assert stop.startswith(f"<28>{cov.ident}[")  # facility daemon, priority warning
        assert f"CONTAINER_ID={bad.id}" in stop and "COVENANT_ACTION=killed" in stop
        assert f"CONTAINER_NAME={bad.name}" in stop and "COVENANT_CHECK=CV002,CV003" in stop
        assert f"{bad.name}: stopping container" not in cov.output()  # debug: no, and syslog took it
    finally:
        cov.close()
        receiver.close()


def test_with_neither_journal_nor_syslog_decisions_go_to_stderr(tmp_path, dockerd, client):
    setup = f"{HIDE_JOURNAL}\nif [ -e /dev/log ]; then mount --bind /dev/null /dev/log; fi"
    cov = in_namespace(tmp_path, dockerd, setup)
    try:
        cov.start()
        bad = run_container(client, unique("stderr"))
        wait_until(lambda: f"{bad.name}: stopping container" in cov.output(), 10, what="the stderr line")
        assert f"{bad.name}: all capabilities not dropped" in cov.output()
    finally:
        cov.close()


def _journald_in(pid: int) -> int | None:
    """The systemd-journald sharing pid's mount namespace (the one started in it)."""
    ns = os.readlink(f"/proc/{pid}/ns/mnt")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "cmdline").read_bytes().startswith(JOURNALD.encode()) and \
                    os.readlink(entry / "ns" / "mnt") == ns:
                return int(entry.name)
        except OSError:
            continue
    return None


OWN_JOURNALD = (f"{HIDE_JOURNAL}\nmount -t tmpfs tmpfs /run/log\n"
                "if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; fi\n"
                f"{JOURNALD} </dev/null >/dev/null 2>&1 &\n"
                "while [ ! -S /run/systemd/journal/socket ]; do sleep 0.05; done")


@contextlib.contextmanager
def own_journald(tmp_path: Path, dockerd) -> Iterator[tuple[Covenant, int, str]]:
    """docker-covenant in a namespace with a real systemd-journald of its own, which the
    test may freeze or kill. Yields (daemon, journald's pid, its journal folder)."""
    cov = in_namespace(tmp_path, dockerd, OWN_JOURNALD)
    journald = None
    try:
        cov.start()
        journald = _journald_in(cov.proc.pid)
        assert journald, "no journald in the namespace"
        yield cov, journald, f"/proc/{journald}/root/run/log/journal"
    finally:
        if journald:
            with contextlib.suppress(ProcessLookupError):
                os.kill(journald, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(journald, 0)
        cov.close()


def journal_lines(journal_dir: str, ident: str) -> list[str]:
    """The messages of ident in a private journal folder."""
    return subprocess.run(["journalctl", "-D", journal_dir, "--no-pager", "-o", "cat",
                           f"SYSLOG_IDENTIFIER={ident}"], capture_output=True, text=True,
                          check=False).stdout.splitlines()


def test_journal_that_dies_mid_run_loses_no_decision(tmp_path, dockerd, client):
    """A real journald of its own in the namespace takes the first decision; killed, the
    next decision falls through to stderr (its syslog socket died with it)."""
    with own_journald(tmp_path, dockerd) as (cov, journald, journal_dir):
        first = run_container(client, unique("journaled"))
        wait_until(lambda: f"{first.name}: stopping container" in journal_lines(journal_dir, cov.ident), 10)
        os.kill(journald, signal.SIGKILL)
        wait_until(lambda: not Path(f"/proc/{journald}/cmdline").read_bytes(), 5)
        second = run_container(client, unique("after-journal"))
        wait_until(lambda: f"{second.name}: stopping container" in cov.output(), 10,
                   what="the decision on stderr")
        assert f"{first.name}: stopping container" not in cov.output()  # the journal had taken it


def test_journal_is_written_without_systemd_python(tmp_path, journal):
    """The journal sink speaks journald's native protocol itself; a host without
    systemd-python (which only the sd_notify calls use) still gets structured entries."""
    ident = unique("covtest-nosd")
    code = ("import sys; sys.modules['systemd'] = None\n"
            "from covenant import logs\n"
            f"log = logs.setup({ident!r}, False)\n"
            "log.warning('two\\nlines', extra=logs.fields(CONTAINER_NAME='x', COVENANT_CHECK='CV001'))\n"
            "logs.shutdown(log)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parent.parent)
    entry = wait_until(lambda: journal.entries(ident), 5)[0]
    assert (entry["MESSAGE"], entry["PRIORITY"], entry["CONTAINER_NAME"], entry["COVENANT_CHECK"]) == (
        "two\nlines", "4", "x", "CV001")


def test_a_frozen_journal_does_not_delay_a_kill(tmp_path, dockerd, client):
    """journald stopped (SIGSTOP) under the daemon: violators are still killed at once, and
    their decisions reach stderr after the journal sink's timeout."""
    with own_journald(tmp_path, dockerd) as (cov, journald, _):
        os.kill(journald, signal.SIGSTOP)
        flood = [run_container(client, unique("frozen-journal")) for _ in range(40)]
        for c in flood:  # more than the journal's socket queue holds
            wait_until(lambda c=c: not is_running(c), 5, what=f"{c.name} to be killed")
        wait_until(lambda: all(f"{c.name}: stopping container" in cov.output() for c in flood[-5:]), 15,
                   what="the decisions on stderr")
