"""Bounds on the work one IMAP SEARCH may ask of the store: how many keys need a scan of
the messages, and how long worker threads may read sources for it; a client that leaves
stops its scan."""
from __future__ import annotations

import base64
import time

import pytest

from heavy_work import NO_MATCH, fill_heavy_folder, start_heavy_search, wait_for_cpu
from waiting import scaled, wait_until_quiet

# Seconds of thread work a call may take here: long enough for every ordinary search on
# a crowded machine, short enough for the test that runs into it.
WORK_TIME_LIMIT = int(scaled(12))
pytestmark = pytest.mark.gateway_env("imap", max_search_scan_keys="64", worker_time_limit=str(WORK_TIME_LIMIT))

INBOX_SIZE = 300
# Copies of heavy_work's message in the heavy folder: reading all of them takes about 40 s
# on an idle machine, well past the work budget however fast the machine is.
HEAVY_COPIES = 256


def message(i: int) -> bytes:
    """A multipart message of about 10 KB: a quoted-printable text part and a base64 attachment."""
    text = (f"Hello number {i},\r\n" + "the quick brown fox jumps over the lazy dog =\r\n" * 60
            + f"marker-{i}\r\n").encode()
    attachment = base64.encodebytes(bytes(range(256)) * 16).replace(b"\n", b"\r\n")
    return (b"From: sender%d@example.com\r\nTo: demo@localhost\r\nSubject: message %d\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
            b"--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            % (i, i) + text +
            b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + attachment + b"--b--\r\n")


@pytest.fixture(scope="module")
def heavy(env):
    r = env.raw(login=True)
    fill_heavy_folder(r, "Heavy", HEAVY_COPIES)
    r.close()
    return "Heavy"


@pytest.fixture(scope="module")
def inbox(env):
    folder = env.fresh("Big")
    env.rt.call(folder.append_many, [message(i) for i in range(INBOX_SIZE)])
    return "Big"


def timed(r, command: str) -> tuple[list[bytes], float]:
    started = time.monotonic()
    lines = r.cmd(command)
    return lines, time.monotonic() - started


def test_ten_body_keys_are_answered_quickly(env, inbox):
    r = env.raw(login=True)
    r.cmd(f"SELECT {inbox}")
    # Ten keys that all hold for messages 25 and 250 to 259 only.
    words = ("quick", "brown", "fox", "jumps", "over", "lazy", "dog", "hello", "number")
    keys = " ".join(f"BODY {word}" for word in words)
    lines, took = timed(r, f"SEARCH BODY marker-25 {keys}")
    assert lines[-1].startswith(b"r3 OK"), lines
    assert lines[0].split() == [b"*", b"SEARCH", b"26", *(b"%d" % n for n in range(251, 261))]
    assert took < scaled(5), took
    r.close()



def test_thousands_of_body_keys_are_refused_at_once(env, inbox):
    """3,000 BODY keys on a 300-message folder: NO [LIMIT] before any message is read, and
    the connection goes on."""
    r = env.raw(login=True)
    r.cmd(f"SELECT {inbox}")
    keys = " ".join(f"BODY needle{i}" for i in range(3000))
    lines, took = timed(r, f"SEARCH {keys}")
    assert lines[-1].startswith(b"r3 NO [LIMIT]"), lines
    assert took < scaled(5), took
    assert r.cmd("SEARCH BODY marker-299")[0] == b"* SEARCH 300\r\n"
    r.close()


def test_a_search_longer_than_the_work_budget_gets_limit(env, heavy):
    r = env.raw(login=True)
    try:
        r.cmd(f"SELECT {heavy}")
        r.sock.settimeout(scaled(60))
        lines, took = timed(r, f"SEARCH BODY {NO_MATCH}")
        assert lines[-1].startswith(b"r3 NO [LIMIT]"), lines
        assert took < WORK_TIME_LIMIT + scaled(5), took
        assert r.cmd("NOOP")[-1].startswith(b"r4 OK")
    finally:
        r.close()


def test_clients_that_leave_stop_their_searches(env, heavy):
    """The store's workers stop reading sources soon after their clients are gone, long
    before the work budget would have stopped them: the same user, whose share of the
    threads those searches held, is answered at once, and the process goes quiet."""
    pid = env.server.pid()
    hogs = [env.raw(login=True) for _ in range(4)]  # the user's whole share of the threads
    for r in hogs:
        start_heavy_search(r, heavy)
    wait_for_cpu(pid)
    for r in hogs:
        r.close()
    started = time.monotonic()
    r = env.raw(login=True)
    r.cmd(f"SELECT {heavy}")
    assert r.cmd("SEARCH SUBJECT heavy")[-1].startswith(b"r3 OK")
    r.close()
    wait_until_quiet(pid, quiet=0.5, timeout=WORK_TIME_LIMIT)
    assert time.monotonic() - started < WORK_TIME_LIMIT * 0.6


def test_one_users_expensive_searches_leave_threads_for_others(env, heavy):
    """More expensive searches from one user than the store has worker threads: another
    user's SELECT, LIST and STATUS are still answered at once."""
    env.server.cli("user", "add", "other", "--password-stdin", stdin="other-secret\n")
    hogs = [env.raw(login=True) for _ in range(10)]  # the store has 8 threads; one user may hold 4
    for r in hogs:
        r.cmd(f"SELECT {heavy}")  # before any search holds the user's share
    for r in hogs:
        r.send(b"h1 SEARCH TEXT " + NO_MATCH.encode() + b"\r\n")
    try:
        wait_for_cpu(env.server.pid())
        other = env.raw()
        started = time.monotonic()
        assert other.cmd("LOGIN other other-secret")[-1].startswith(b"r1 OK")
        assert other.cmd('LIST "" "*"')[-1].startswith(b"r2 OK")
        assert other.cmd("STATUS INBOX (MESSAGES)")[-1].startswith(b"r3 OK")
        assert other.cmd("SELECT INBOX")[-1].startswith(b"r4 OK")
        took = time.monotonic() - started
        assert took < scaled(5), took
        other.close()
    finally:
        for r in hogs:
            r.close()
    wait_until_quiet(env.server.pid(), quiet=0.5, timeout=WORK_TIME_LIMIT)
