"""COMPRESS=DEFLATE (RFC 4978) against a real `groupware serve`: the RFC's exchange, the bytes
on the wire of a whole-folder download of text mail with and without it, a client that stops
reading a compressed download (backpressure), input that inflates to far more than it is, and
imaplib with a deflate layer as a client library would add it."""
from __future__ import annotations

import imaplib
import os
import re
import socket
import time
import zlib

import pytest

from debian import email_corpus
from harness import rss_kb
from imap_env import Env
from waiting import wait_until_quiet

pytestmark = pytest.mark.gateway_env("imap", server_connections="2", environment={"MALLOC_ARENA_MAX": "1"})


class DeflateClient:
    """A raw IMAP socket that turns compression on and counts the octets on the wire."""

    def __init__(self, env: Env, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(60)
        self.sock.connect(("127.0.0.1", env.port))
        self.wire = 0
        self.buffer = b""
        self.deflate: zlib._Compress | None = None
        self.inflate: zlib._Decompress | None = None
        self.n = 0
        self.readline()  # greeting
        assert self.cmd(f"LOGIN demo {env.password}")[-1].split()[1] == b"OK"

    def send(self, data: bytes) -> None:
        if self.deflate is not None:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("closed")
        self.wire += len(chunk)
        self.buffer += self.inflate.decompress(chunk) if self.inflate is not None else chunk

    def readline(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._fill()
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line + b"\r\n"

    def read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def until(self, tag: bytes) -> list[bytes]:
        lines = []
        while True:
            line = self.readline()
            lines.append(line)
            literal = re.search(rb"\{(\d+)\}\r\n$", line)
            if literal:
                lines.append(self.read(int(literal.group(1))))
            if line.startswith(tag + b" "):
                return lines

    def cmd(self, text: str) -> list[bytes]:
        self.n += 1
        tag = b"r%d" % self.n
        self.send(tag + b" " + text.encode() + b"\r\n")
        return self.until(tag)

    def compress(self) -> list[bytes]:
        lines = self.cmd("COMPRESS DEFLATE")
        if lines[-1].split()[1] == b"OK":
            self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
            self.inflate = zlib.decompressobj(-15)
            self.buffer = self.inflate.decompress(self.buffer)
        return lines

    def close(self) -> None:
        self.sock.close()


def test_rfc4978_exchange(env):
    client = DeflateClient(env)
    assert b"COMPRESS=DEFLATE" in client.cmd("CAPABILITY")[0].split()
    assert client.cmd("COMPRESS NOTHING")[-1].startswith(b"r3 BAD")
    assert client.compress()[-1] == b"r4 OK DEFLATE active\r\n"
    # Everything from here on is compressed, both ways.
    assert client.cmd("NOOP")[-1].startswith(b"r5 OK")
    caps = client.cmd("CAPABILITY")[0].split()
    assert b"COMPRESS=DEFLATE" not in caps and b"IMAP4rev1" in caps
    assert client.cmd("COMPRESS DEFLATE")[-1].startswith(b"r7 NO [COMPRESSIONACTIVE]")
    # A literal, an APPEND, a SELECT: the connection works as ever.
    message = b"From: a@example.com\r\nSubject: deflated\r\n\r\nbody\r\n"
    env.fresh("Deflated")
    client.send(b"a APPEND Deflated {%d}\r\n" % len(message))
    assert client.readline().startswith(b"+ ")
    client.send(message + b"\r\n")
    assert client.until(b"a")[-1].startswith(b"a OK [APPENDUID")
    assert client.cmd("SELECT Deflated")[-1].startswith(b"r8 OK")
    assert message in client.cmd("FETCH 1 BODY.PEEK[]")
    assert client.cmd("LOGOUT")[0].startswith(b"* BYE")
    client.close()
    # Not before login.
    raw = env.raw()
    assert raw.cmd("COMPRESS DEFLATE")[-1].startswith(b"r1 BAD")
    assert b"COMPRESS=DEFLATE" not in raw.cmd("CAPABILITY")[0]
    raw.close()


def download(client: DeflateClient) -> list[bytes]:
    lines = client.cmd("FETCH 1:* BODY.PEEK[]")
    assert lines[-1].split()[1] == b"OK"
    return [part for part, line in zip(lines[1:], lines) if re.search(rb"\{\d+\}\r\n$", line)]


def test_text_mail_compresses_by_more_than_half(env):
    files = email_corpus()
    sources = [open(name, "rb").read() for name in files] * 4
    folder = env.fresh("Corpus")
    env.rt.call(folder.append_many, sources)
    plain = DeflateClient(env)
    plain.cmd("EXAMINE Corpus")
    start = plain.wire
    started = time.perf_counter()
    assert download(plain) == sources
    plain_bytes, plain_time = plain.wire - start, time.perf_counter() - started
    deflated = DeflateClient(env)
    deflated.compress()
    deflated.cmd("EXAMINE Corpus")
    start = deflated.wire
    started = time.perf_counter()
    assert download(deflated) == sources
    deflated_bytes, deflated_time = deflated.wire - start, time.perf_counter() - started
    print(f"\nFETCH 1:* BODY.PEEK[] of {len(sources)} text messages: {plain_bytes} octets in "
          f"{plain_time:.2f} s, with COMPRESS {deflated_bytes} octets ({deflated_bytes / plain_bytes:.0%}) "
          f"in {deflated_time:.2f} s")
    assert deflated_bytes < plain_bytes / 2
    plain.close()
    deflated.close()


def test_a_client_that_stops_reading_holds_the_download_back(env):
    # Random octets do not compress: what the client does not read waits in the gateway.
    sources = [b"Subject: %d\r\n\r\n" % i + os.urandom(300_000).hex().encode() for i in range(100)]
    folder = env.fresh("Stalled")
    for start in range(0, len(sources), 20):
        env.rt.call(folder.append_many, sources[start:start + 20])
    pid = env.server.pid()
    before = rss_kb(pid)
    client = DeflateClient(env, rcvbuf=32768)
    client.compress()
    client.cmd("EXAMINE Stalled")
    client.send(b"d FETCH 1:* BODY.PEEK[]\r\n")
    wait_until_quiet(pid)
    grown = rss_kb(pid) - before
    total_kb = sum(map(len, sources)) // 1024
    print(f"\na stalled compressed download of {total_kb} KB: the gateway grew by {grown} KB")
    assert grown < 24_000, f"gateway grew by {grown} KB"
    assert client.wire < 8 * 1024 * 1024
    got = []
    while True:
        line = client.readline()
        if line.startswith(b"d "):
            assert line.startswith(b"d OK"), line
            break
        got.append(client.read(int(re.search(rb"\{(\d+)\}\r\n$", line).group(1))))
        assert client.readline() == b")\r\n"
    assert got == sources
    client.close()


def test_input_that_inflates_to_far_more_is_read_a_bit_at_a_time(env):
    pid = env.server.pid()
    client = DeflateClient(env)
    client.compress()
    before = rss_kb(pid)
    # 256 MB of one line, a few hundred KB on the wire: refused as too long, never held.
    line = b"x " + b"a" * (1 << 20)
    deflate = client.deflate
    wire = b""
    for _ in range(256):
        wire += deflate.compress(line[2:] if wire else line)
    wire += deflate.compress(b"\r\n") + deflate.flush(zlib.Z_SYNC_FLUSH)
    assert len(wire) < 1024 * 1024
    client.sock.sendall(wire)
    assert client.readline().startswith(b"x BAD [TOOBIG]")
    assert client.cmd("NOOP")[-1].startswith(b"r3 OK")
    grown = rss_kb(pid) - before
    print(f"\n256 MB inflated from {len(wire)} octets: the gateway grew by {grown} KB")
    assert grown < 24_000
    # Data that is no deflate stream ends the connection.
    client.sock.sendall(b"\xff" * 64)
    with pytest.raises(ConnectionError):
        while True:
            client.readline()
    client.close()


class DeflateIMAP4(imaplib.IMAP4):
    """imaplib with the deflate layer a client library adds after COMPRESS DEFLATE."""

    def compress(self) -> None:
        typ, data = self._simple_command("COMPRESS", "DEFLATE")
        assert typ == "OK", data
        self._deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self._inflate = zlib.decompressobj(-15)
        self._plain = b""

    def send(self, data: bytes) -> None:
        if hasattr(self, "_deflate"):
            data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise imaplib.IMAP4.abort("socket closed")
        self._plain += self._inflate.decompress(chunk)

    def read(self, size: int) -> bytes:
        if not hasattr(self, "_inflate"):
            return super().read(size)
        while len(self._plain) < size:
            self._more()
        data, self._plain = self._plain[:size], self._plain[size:]
        return data

    def readline(self) -> bytes:
        if not hasattr(self, "_inflate"):
            return super().readline()
        while b"\n" not in self._plain:
            self._more()
        line, _, self._plain = self._plain.partition(b"\n")
        return line + b"\n"


def test_imaplib_with_a_deflate_layer(env):
    imaplib.Commands.setdefault("COMPRESS", ("AUTH", "SELECTED"))
    folder = env.fresh("Library", 3)
    client = DeflateIMAP4("127.0.0.1", env.port, timeout=20)
    client.login("demo", env.password)
    client.compress()
    assert client.select("Library") == ("OK", [b"3"])
    typ, data = client.fetch("1:3", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK" and [item[1].strip() for item in data if isinstance(item, tuple)] == \
        [b"Subject: 0", b"Subject: 1", b"Subject: 2"]
    assert client.append("Library", None, None, b"Subject: more\r\n\r\nx\r\n")[0] == "OK"
    assert len(env.rt.call(folder.query, ["uid"])[1]["uid"]) == 4
    client.logout()
