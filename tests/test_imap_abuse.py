"""Hostile or broken IMAP clients against the real gateway: overlong lines, literal
sizes, garbage, a client that never reads its answers, and idle connections."""
from __future__ import annotations

import os
import select
import socket
import time

import pytest

from waiting import wait_until_quiet

from harness import rss_kb
from imap_env import standalone, stop
from raw_clients import RawIMAP

pytestmark = pytest.mark.gateway_env("imap", tls=True)


def test_overlong_lines_get_toobig_and_the_third_closes(env):
    raw = env.raw()
    long_line = b"a1 NOOP " + b"x" * 70000 + b"\r\n"
    raw.send(long_line + b"a2 NOOP\r\n")
    assert raw.readline().startswith(b"a1 BAD [TOOBIG]")
    assert raw.readline().startswith(b"a2 OK")
    raw.send(long_line + long_line)
    assert raw.readline().startswith(b"a1 BAD [TOOBIG]")
    assert raw.readline().startswith(b"a1 BAD [TOOBIG]")
    assert raw.readline().startswith(b"* BYE")
    assert raw.file.readline() == b""  # closed
    raw.close()


def test_literals_before_login_are_small(env):
    raw = env.raw()
    raw.send(b"a LOGIN {9000}\r\n")
    assert raw.readline().startswith(b"a BAD [TOOBIG]")  # no "+": nothing more is read
    raw.send(b"b LOGIN {5000+}\r\n" + b"u" * 5000 + b" pw\r\nc NOOP\r\n")
    assert raw.readline().startswith(b"b BAD [TOOBIG]")  # LITERAL-: at most 4096
    assert raw.readline().startswith(b"c OK")
    raw.close()


def test_garbage_and_absurd_input_keeps_the_connection_healthy(env):
    env.fresh("Empty", 0)
    raw = env.raw(login=True)
    assert raw.cmd("SELECT Empty")[-1].startswith(b"r2 OK")
    for text in (b"SEARCH {-100}", b'LOGIN "a\x00b" c', b"FETCH " + b"(" * 5000 + b"FLAGS",
                 b"FOO BAR", b"UID NOOP", b"STATUS", b'LIST "" "\x00"'):
        lines = raw.cmd(text)
        assert b" BAD " in lines[-1], (text, lines)
    raw.send(b"\x00\xff\xfe\r\n")
    assert raw.readline().startswith(b"* BAD")
    raw.send(b"x APPEND Empty {99999999999999999999}\r\n")
    assert raw.readline().startswith(b"x NO [TOOBIG]")
    raw.send(b"y APPEND Empty {99999999999999999999+}\r\n")
    assert raw.readline().startswith(b"y BAD [TOOBIG]")
    assert raw.readline().startswith(b"* BYE")  # too large even to skip
    raw.close()
    raw = env.raw(login=True)
    assert raw.cmd("EXPUNGE")[-1].startswith(b"r2 BAD")  # wrong state
    assert raw.cmd("NOOP")[-1].startswith(b"r3 OK")
    raw.close()


def test_a_client_that_never_reads_costs_bounded_memory(env):
    """Pipelined commands whose answers nobody reads: the gateway stops reading the
    socket instead of buffering the answers, and answers everything once read again."""
    pid = env.server.pid()
    raw = env.raw(login=True)
    # A small receive window, so the kernel holds little of the unread answers.
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    before = rss_kb(pid)
    command = b"t CAPABILITY\r\n"
    count = 150_000  # about 22 MB of answers
    payload = command * count
    raw.sock.setblocking(False)
    sent = 0
    deadline = time.monotonic() + 20
    while sent < len(payload) and time.monotonic() < deadline:
        try:
            sent += raw.sock.send(payload[sent:sent + 65536])
        except BlockingIOError:
            select.select([], [raw.sock], [], 0.5)  # until the gateway reads some again
    wait_until_quiet(pid)
    grown = rss_kb(pid) - before
    print(f"sent {sent} bytes of commands; the gateway grew by {grown} KB")
    assert grown < 12_000, f"gateway grew by {grown} KB while the client did not read"
    # The rest goes once the client reads: every command is answered.
    raw.sock.setblocking(True)
    raw.sock.settimeout(30)
    answered = 0
    buffered = b""
    while answered < count:
        if sent < len(payload):
            try:
                raw.sock.setblocking(False)
                sent += raw.sock.send(payload[sent:sent + 65536])
            except BlockingIOError:
                pass
            finally:
                raw.sock.setblocking(True)
                raw.sock.settimeout(30)
        chunk = raw.sock.recv(1 << 20)
        assert chunk, "connection closed"
        buffered += chunk
        answered += buffered.count(b"\r\nt OK")
        buffered = buffered[-8:]
    raw.close()


def test_idle_timeouts_say_bye(env, tmp_path):
    proc, port = standalone(env, tmp_path, "imap_listen=127.0.0.1:0", "imap_login_timeout=1", "imap_timeout=2")
    try:
        raw = RawIMAP(port)
        start = time.monotonic()
        assert raw.readline().startswith(b"* BYE Autologout")
        assert 0.8 < time.monotonic() - start < 5
        raw.close()
        raw = RawIMAP(port)
        raw.cmd(f"LOGIN demo {env.password}")
        time.sleep(1.2)  # most of the 2 s idle time passes on purpose
        assert raw.cmd("NOOP")[-1].startswith(b"r2 OK")  # activity restarts the clock
        start = time.monotonic()
        assert raw.readline().startswith(b"* BYE Autologout")
        assert 1.5 < time.monotonic() - start < 6
        raw.close()
    finally:
        stop(proc)
    assert os.path.isdir(tmp_path)
