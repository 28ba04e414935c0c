"""Where decisions are written when the journal is not there: syslog, else stderr — never nowhere.

Each daemon here that hides the journal runs in a private mount namespace (unshare)
where the journal's socket folder is replaced, so the host's journal is neither hidden
nor touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Covenant, is_running, run_container, unique, wait_until

from covenant import logs

JOURNALD = "/lib/systemd/systemd-journald"
# The namespaces below mount over /run/systemd/journal: the journal bed makes sure it
# exists (a journal of the host's or the harness's own), also when this file runs alone.
pytestmark = pytest.mark.usefixtures("journal")


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


def journal_entries(journal_dir: str, ident: str) -> list[dict[str, str]]:
    """The entries of ident in a private journal folder, with their fields."""
    out = subprocess.run(["journalctl", "-D", journal_dir, "--no-pager", "-o", "json",
                          f"SYSLOG_IDENTIFIER={ident}"], capture_output=True, text=True, check=False).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_a_journal_that_starts_later_is_used(tmp_path, dockerd, client):
    """Neither the journal's socket nor /dev/log exists when docker-covenant starts: its
    decisions go to stderr. A systemd-journald started afterwards in its mount namespace
    is found at the journal sink's next try (within RETRY_AFTER, 5 s) and then takes
    every decision, with its fields."""
    setup = (f"{HIDE_JOURNAL}\nmount -t tmpfs tmpfs /run/log\n"
             "if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; fi\n"
             "if [ -e /dev/log ]; then mount --bind /dev/null /dev/log; fi")
    cov = in_namespace(tmp_path, dockerd, setup)
    journald = None
    try:
        cov.start()
        before = run_container(client, unique("before-journal"))
        wait_until(lambda: f"{before.name}: stopping container" in cov.output(), 10,
                   what="the decision on stderr")
        assert cov.proc is not None
        journald = subprocess.Popen(["nsenter", "--target", str(cov.proc.pid), "--mount", JOURNALD],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
        pid = cov.proc.pid
        assert wait_until(lambda: _journald_in(pid), 20, what="journald in the namespace") == journald.pid
        root = Path(f"/proc/{journald.pid}/root")  # its view of the files: the namespace's
        wait_until((root / "run/systemd/journal/socket").exists, 20, what="journald's socket")
        journal_dir = str(root / "run/log/journal")
        started = time.monotonic()
        after: list[str] = []

        def killed_in_the_journal() -> list[str]:
            return [e["CONTAINER_NAME"] for e in journal_entries(journal_dir, cov.ident)
                    if e.get("COVENANT_ACTION") == "killed"]

        def one_more_lands() -> bool:
            after.append(run_container(client, unique("after-journal")).name)
            return any(name in after for name in killed_in_the_journal())

        wait_until(one_more_lands, 20, 0.5, what="a decision in the journal started later")
        assert time.monotonic() - started < logs.RETRY_AFTER + 5  # found at the next try
        last = run_container(client, unique("journaled")).name
        wait_until(lambda: last in killed_in_the_journal(), 10, what="the next decision in the journal")
        assert f"{last}: stopping container" not in cov.output()  # debug: no, and the journal took it
        assert before.name not in killed_in_the_journal()  # written to stderr at the time
    finally:
        if journald is not None:
            journald.kill()
            journald.wait()
        cov.close()


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
    """The journal sink speaks journald's native protocol on a socket of its own. Here
    systemd-python (which only the authorization plugin's socket activation imports) is
    made unimportable, so a return to its ``journal.send`` -- which blocked every thread
    while journald was not reading -- fails this test; a message with a newline and the
    fields arrive intact."""
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


def test_debug_copies_no_line_to_stderr_that_is_the_journal(tmp_path, dockerd, client, journal):
    """debug: yes copies each line to stderr. Under systemd (StandardError=journal) stderr
    is the journal, where the copy would be a second entry of every line: run as systemd
    runs it, each line is in the journal once, written with the native protocol."""
    cov = Covenant(tmp_path, dockerd.host, "debug: yes\n")
    stream, env = journal.stream(cov.ident)
    cov.env.update(env)
    try:
        with stream:
            cov.proc = subprocess.Popen(cov.argv, env=cov.env, stdout=subprocess.DEVNULL,
                                        stderr=stream.fileno(), cwd=cov.cwd)
            cov.wait_note("READY=1")
            bad = run_container(client, unique("once"))
            journal.wait_for(cov.ident, f"{bad.name}: stopping container")
            assert cov.stop() == 0
            stream.sendall(b"end of the stream\n")  # journald reads a stream in order
            journal.wait_for(cov.ident, "end of the stream")
        for text in ("docker-covenant starting", f"{bad.name}: all capabilities not dropped",
                     f"{bad.name}: stopping container", "docker-covenant stopped"):
            found = [e["_TRANSPORT"] for e in journal.entries(cov.ident) if text in str(e.get("MESSAGE"))]
            assert found == ["journal"], (text, found)
    finally:
        cov.close()


STUCK_STDERR = """
import logging, sys
from covenant import logs
chain = logs.ChainHandler([logs.StderrSink(logging.Formatter("%(message)s"))])
for i in range(2000):
    chain.handle(logging.makeLogRecord({"msg": "x" * 1000}))
print(chain.lost, flush=True)
sys.stdin.readline()  # the test reads stderr now
chain.handle(logging.makeLogRecord({"msg": "read again"}))
"""


def test_a_stderr_socket_nobody_reads_does_not_hold_the_writer(tmp_path):
    """Under systemd stderr is a socket into journald: frozen, it takes nothing more. The
    writer then waits SEND_TIMEOUT once, not for every record; what it could not write is
    counted and said once stderr is read again."""
    ours, theirs = socket.socketpair()
    try:
        proc = subprocess.Popen([sys.executable, "-c", STUCK_STDERR], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=theirs, text=True,
                                cwd=Path(__file__).resolve().parent.parent)
        theirs.close()
        assert proc.stdout is not None and proc.stdin is not None
        lost = int(proc.stdout.readline())  # 2 MB never fits in the socket: this returns at all
        assert 0 < lost < 2000
        ours.settimeout(0.5)
        with contextlib.suppress(TimeoutError):
            while ours.recv(1 << 20):  # what it wrote before: now there is room again
                pass
        proc.stdin.write("\n")
        proc.stdin.flush()
        received = b""
        ours.settimeout(10)
        while b"were lost" not in received:
            chunk = ours.recv(1 << 20)
            assert chunk, received[-300:]
            received += chunk
        assert received.startswith(b"read again\n"), received
        assert f"{lost} log records were lost".encode() in received
        assert proc.wait(10) == 0
    finally:
        ours.close()
