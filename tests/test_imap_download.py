"""Whole-folder downloads (`FETCH 1:* BODY.PEEK[]`) by clients that stop reading.

The gateway reads sources a few MB ahead of what a client takes, and a stalled
client holds no connection to the store: with more stalled downloads than the
gateway has store connections, other sessions still log in and read mail, the
gateway stays within a bounded amount of memory, and every download completes
byte for byte once its client reads again.
"""
from __future__ import annotations

import socket
import time

import pytest

from harness import rss_kb
from imap_env import Env
from raw_clients import RawIMAP
from waiting import wait_until_quiet

# One malloc arena: what is measured is our buffering, not how many per-thread arenas glibc
# happened to open for the blob-reading threads (which alone varies the RSS by tens of MB).
pytestmark = pytest.mark.gateway_env("imap", server_connections="2", environment={"MALLOC_ARENA_MAX": "1"})

MESSAGES = 300
STALLED = 3  # more than the gateway's store connections


def source(i: int) -> bytes:
    line = b"%05d the quick brown fox jumps over the lazy dog, and back again.\r\n" % i
    return b"Subject: download %d\r\n\r\n" % i + line * (100_000 // len(line))


def stalled_client(env: Env) -> RawIMAP:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", env.port))
    raw = RawIMAP(env.port, sock=sock)
    assert raw.cmd(f"LOGIN demo {env.password}")[-1].startswith(b"r1 OK")
    assert raw.cmd("EXAMINE bulk")[-1].startswith(b"r2 OK")
    raw.send(b"d FETCH 1:* BODY.PEEK[]\r\n")
    return raw


def read_download(raw: RawIMAP) -> list[bytes]:
    bodies = []
    while True:
        line = raw.readline()
        if line.startswith(b"d "):
            assert line.startswith(b"d OK"), line
            return bodies
        size = int(line[line.rindex(b"{") + 1:line.rindex(b"}")])
        bodies.append(raw.file.read(size))
        assert raw.readline() == b")\r\n"


def test_stalled_downloads_hold_neither_connections_nor_memory(env):
    sources = [source(i) for i in range(MESSAGES)]
    folder = env.fresh("bulk")
    for start in range(0, MESSAGES, 100):
        env.rt.call(folder.append_many, sources[start:start + 100])
    pid = env.server.pid()
    before = rss_kb(pid)
    stalled = [stalled_client(env) for _ in range(STALLED)]
    wait_until_quiet(pid)  # each download runs until its client's window and our read-ahead are full
    grown = rss_kb(pid) - before
    folder_kb = sum(map(len, sources)) // 1024
    print(f"{STALLED} stalled downloads of {folder_kb} KB each: the gateway grew by {grown} KB")
    assert grown < 16_000 * STALLED, f"gateway grew by {grown} KB"

    # Another session is served meanwhile, though every store connection has had a stalled stream.
    started = time.monotonic()
    other = env.raw(login=True)
    other.cmd("EXAMINE bulk")
    lines = other.cmd("FETCH 300 (BODY.PEEK[])")
    assert lines[-1].startswith(b"r3 OK") and sources[-1] in b"".join(lines)
    assert time.monotonic() - started < 10
    other.close()

    for raw in stalled:
        assert read_download(raw) == sources
        raw.close()
