"""Soak: `groupware serve` under a mixed concurrent load, every answer checked, its
resources sampled.

Starts a real `groupware serve` on SQLite in a temporary data directory and runs
`--clients` clients (default 200) for `--seconds` (default 600), all in one asyncio
loop (they think between commands, so the load is a rate the server has to keep up
with, and the client's own CPU share is printed to show it is not the bottleneck):

  * IMAP idlers: one per user, SELECT INBOX and IDLE; every message delivered over LMTP
    must be pushed to its user's idler (`* N EXISTS`) and is then fetched and checked;
    the idler expunges old mail so that the inbox stays small;
  * IMAP command loops in folders of their own: SELECT, APPEND, FETCH (flags, listing
    items, whole bodies compared byte for byte), STORE, SEARCH (flags, subject, body),
    EXPUNGE, LIST, STATUS, NOOP, and now and then a new login;
  * POP3 sessions on maildrops of their own: STAT, UIDL, LIST, RETR (compared with what
    was delivered), TOP, DELE, QUIT;
  * CalDAV clients on calendars of their own: PUT (new and If-Match), GET, PROPFIND,
    calendar-query, calendar-multiget, sync-collection, DELETE, the whole calendar as .ics;
  * LMTP deliveries of generated messages to the idlers' and the POP3 users' inboxes
    (a few users have an active Sieve script).

Any unexpected answer is an error (a NO or BAD, an -ERR, an HTTP error status, a reply
that says something else than what was stored, a push that does not come within
`--push-deadline` seconds), and so is every ERROR or traceback in the server's log.
Every 10 s it samples the serve process and its workers together: resident memory,
open file descriptors, threads and SQLite database handles (descriptors open on
store.db), and prints them;
at the end a table at start, 1, 5 and 10 minutes, the errors, and the least-squares
slope of each resource after the warm-up (`--warmup`, default 120 s). It exits with 1
when there was an error or a resource grows faster than its `--max-*-slope` threshold.

    python bench/soak.py [--clients 200] [--seconds 600] [--warmup 120] [--set name=value ...]
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import os
import random
import re
import resource
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Awaitable
from dataclasses import dataclass, field

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from harness import ServerProcess  # noqa: E402

from server.service import open_storage  # noqa: E402
from shared.config import Config  # noqa: E402

from imap import descendants  # noqa: E402
from lmtp import DOMAIN, PASSWORD, create_users, data_section  # noqa: E402

SAMPLE_EVERY = 10  # seconds between two samples of the server's resources
REPORT_AT = (0, 60, 300, 600)  # seconds into the load at which the table shows the samples
OP_TIMEOUT = 120  # seconds one command may take before it counts as an error
IDLE_KEEP = 10  # an idler expunges all but the newest this many messages
LOOP_KEEP = 30  # a command loop keeps at most this many messages in its folder
POP3_KEEP = 5  # a POP3 session deletes all but the newest this many
CALENDAR_KEEP = 25  # a CalDAV client keeps at most this many events
SIEVE_SCRIPT = ('require ["imap4flags"];\r\n'
                'if header :contains "subject" "flagged" { addflag "\\\\Flagged"; }\r\n')
DAV = "{DAV:}"
CALDAV_NS = "{urn:ietf:params:xml:ns:caldav}"


class ProtocolError(Exception):
    """An answer that is not the one the protocol and the stored data call for."""


# -- what every client reports ------------------------------------------------------------------

@dataclass
class Sample:
    at: float  # seconds into the load
    rss_mb: float
    fds: int
    threads: int
    db_handles: int
    ops: int
    errors: int
    cpu_server: float  # share of one core since the previous sample
    cpu_client: float


@dataclass
class Soak:
    """What the clients share: ports, counters, the errors, the deliveries awaiting their push."""

    ports: dict[str, int]
    think: float
    push_deadline: float
    started: float = field(default_factory=time.monotonic)
    delivering: bool = True  # LMTP clients stop first, so that the idlers can see every push
    stopping: bool = False
    ops: collections.Counter = field(default_factory=collections.Counter)
    latencies: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    errors: list[str] = field(default_factory=list)
    pending_pushes: dict[tuple[int, str], float] = field(default_factory=dict)  # (serial, user) -> sent at
    push_latencies: list[float] = field(default_factory=list)
    serials: int = 0
    idled: set[str] = field(default_factory=set)  # the users whose idler has started
    descriptors: collections.Counter = field(default_factory=collections.Counter)  # the server's, at the end

    def running(self, client) -> bool:
        return not self.stopping and (self.delivering or not isinstance(client, Lmtp))

    def error(self, who: str, what: str) -> None:
        self.errors.append(f"{time.monotonic() - self.started:7.1f}s {who}: {what}")

    def next_serial(self) -> int:
        self.serials += 1
        return self.serials

    async def timed(self, kind: str, operation: Awaitable):
        start = time.monotonic()
        result = await asyncio.wait_for(operation, OP_TIMEOUT)
        self.latencies[kind].append(time.monotonic() - start)
        self.ops[kind] += 1
        return result

    async def pause(self, scale: float = 1.0) -> None:
        """A client's think time: random, about `think` seconds times `scale`."""
        await asyncio.sleep(random.uniform(0.5, 1.5) * self.think * scale)

    def overdue_pushes(self) -> None:
        """Deliveries to idlers not pushed within the deadline are errors (reported once)."""
        now = time.monotonic()
        for (serial, user), sent in list(self.pending_pushes.items()):
            if now - sent > self.push_deadline:
                del self.pending_pushes[serial, user]
                self.error(f"idle {user}", f"message {serial} delivered but not pushed within "
                                           f"{self.push_deadline:.0f} s")


async def run_client(soak: Soak, client) -> None:
    """`client.session()` again and again until the soak ends; an exception is one error,
    after which the client calls `client.start_over()` (it no longer knows what the server
    holds) and begins a new session after a pause."""
    while soak.running(client):
        try:
            await client.session()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
            if soak.stopping:
                return
            soak.error(client.who, f"{type(exc).__name__}: {exc}"[:400])
            client.start_over()
            await soak.pause(3)


# -- generated content ----------------------------------------------------------------------------

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
         "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()


def message(serial: int) -> bytes:
    """The message with number `serial`: the same bytes whenever it is made again, of 1 to
    30 KB (one in twenty about 150 KB), with `needle<serial>z` in its body and, for every
    third, "flagged" in its subject (which the Sieve users' script flags)."""
    rnd = random.Random(serial)
    size = rnd.randint(1, 30) * 1024 if rnd.random() > 0.05 else 150 * 1024
    head = (f"From: Soak Sender <sender@remote.example>\r\nTo: soak@{DOMAIN}\r\n"
            f"Subject: soak {serial} tok{serial}z{' flagged' if serial % 3 == 0 else ''}\r\n"
            f"Message-ID: <soak.{serial}@soak.example>\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n").encode()
    lines = [f"needle{serial}z starts here\r\n".encode()]
    total = len(head) + len(lines[0])
    while total < size:
        line = (" ".join(rnd.choice(WORDS) for _ in range(12)) + "\r\n").encode()
        lines.append(line)
        total += len(line)
    return head + b"".join(lines)


def serial_of(data: bytes) -> int:
    found = re.search(rb"Message-ID: <soak\.(\d+)@", data)
    if not found:
        raise ProtocolError(f"no soak Message-ID in {data[:200]!r}")
    return int(found.group(1))


# -- IMAP ------------------------------------------------------------------------------------------

_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")


class Imap:
    """An IMAP session over asyncio streams; each command is read up to its tagged reply,
    literals taken whole, and anything but OK raises ProtocolError."""

    def __init__(self, soak: Soak, who: str) -> None:
        self.soak = soak
        self.who = who
        self.n = 0
        self.exists = 0
        self.expunged = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self, user: str) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.soak.ports["imap"],
                                                                 limit=1 << 22)
        greeting = await self.reader.readuntil(b"\r\n")
        if not greeting.startswith(b"* OK"):
            raise ProtocolError(f"greeting {greeting[:200]!r}")
        await self.soak.timed("imap login", self.command(f"LOGIN {user} {PASSWORD}".encode()))

    async def response(self) -> bytes:
        """One response with its literals inlined."""
        assert self.reader is not None
        line = await self.reader.readuntil(b"\r\n")
        parts = [line]
        while (literal := _LITERAL.search(line)) is not None:
            parts.append(await self.reader.readexactly(int(literal.group(1))))
            line = await self.reader.readuntil(b"\r\n")
            parts.append(line)
        return b"".join(parts)

    def observe(self, resp: bytes) -> None:
        if resp.startswith(b"* BYE"):
            raise ProtocolError(f"unexpected {resp[:200]!r}")
        found = re.match(rb"\* (\d+) (EXISTS|EXPUNGE)\r\n", resp)
        if found:
            if found.group(2) == b"EXISTS":
                self.exists = int(found.group(1))
            else:
                self.exists -= 1
                self.expunged += 1

    def send(self, text: bytes) -> bytes:
        assert self.writer is not None
        self.n += 1
        tag = b"s%d" % self.n
        self.writer.write(tag + b" " + text + b"\r\n")
        return tag

    async def finish(self, tag: bytes, text: bytes) -> tuple[bytes, list[bytes]]:
        """(tagged line, untagged responses) of the command sent as `tag`."""
        untagged = []
        while True:
            resp = await self.response()
            if resp.startswith(tag + b" "):
                if resp.split(b" ", 2)[1] != b"OK":
                    raise ProtocolError(f"{text[:60]!r} -> {resp[:300]!r}")
                return resp, untagged
            if resp.startswith(b"+"):
                raise ProtocolError(f"{text[:60]!r}: unexpected continuation {resp[:100]!r}")
            self.observe(resp)
            untagged.append(resp)

    async def command(self, text: bytes) -> tuple[bytes, list[bytes]]:
        return await self.finish(self.send(text), text)

    async def run(self, kind: str, text: bytes) -> tuple[bytes, list[bytes]]:
        return await self.soak.timed(kind, self.command(text))

    async def select(self, mailbox: str) -> dict[str, int]:
        tagged, untagged = await self.run("imap select", f"SELECT {mailbox}".encode())
        codes = {}
        for resp in untagged:
            for name in (b"UIDVALIDITY", b"UIDNEXT"):
                found = re.search(rb"\[" + name + rb" (\d+)\]", resp)
                if found:
                    codes[name.decode().lower()] = int(found.group(1))
        if "uidvalidity" not in codes or "uidnext" not in codes:
            raise ProtocolError(f"SELECT {mailbox} without UIDVALIDITY or UIDNEXT: {untagged!r}"[:300])
        return codes

    async def close(self) -> None:
        if self.writer is None:
            return
        try:
            if not self.writer.is_closing():
                await asyncio.wait_for(self.command(b"LOGOUT"), 30)
        except (OSError, ProtocolError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            self.writer.close()
            self.writer = None


def fetch_items(untagged: list[bytes]) -> dict[int, bytes]:
    """FETCH responses by their UID."""
    out = {}
    for resp in untagged:
        found = re.match(rb"\* \d+ FETCH \(.*?UID (\d+)", resp, re.S)
        if found:
            out[int(found.group(1))] = resp
    return out


def search_result(untagged: list[bytes]) -> set[int]:
    for resp in untagged:
        if resp.startswith(b"* SEARCH"):
            return {int(n) for n in resp[8:].split()}
    raise ProtocolError(f"no SEARCH response in {untagged!r}"[:300])


def literal_after(resp: bytes, marker: bytes) -> bytes:
    found = re.search(re.escape(marker) + rb" \{(\d+)\}\r\n", resp)
    if not found:
        raise ProtocolError(f"no {marker!r} literal in {resp[:300]!r}")
    return resp[found.end():found.end() + int(found.group(1))]


class SoakClient:
    """One simulated client: `who` names it in errors; `start_over` forgets what a session
    that broke off half-way left unfinished (nothing, for clients whose sessions start afresh)."""

    who = ""

    def start_over(self) -> None:
        return None


class Idler(SoakClient):
    """One user's phone: SELECT INBOX, IDLE, and each push fetched and checked."""

    def __init__(self, soak: Soak, user: str) -> None:
        self.soak = soak
        self.user = user
        self.who = f"idle {user}"

    async def session(self) -> None:
        imap = Imap(self.soak, self.who)
        # From now on every delivery to the user must reach this idler: what arrives before
        # the SELECT is found by the first fetch, what arrives later is pushed.
        self.soak.idled.add(self.user)
        try:
            await imap.open(self.user)
            await imap.select("INBOX")
            last_uid, known, pushed_at = 0, -1, 0.0
            while not self.soak.stopping:
                # `known` is taken before each fetch is sent: a message told of (pushed, or in
                # any answer) while it runs makes the count differ again, and is fetched next.
                while imap.exists != known:
                    known = imap.exists
                    if known:
                        last_uid = await self.fetch_new(imap, last_uid, pushed_at or time.monotonic())
                    pushed_at = 0.0
                if imap.exists > IDLE_KEEP + 10:
                    await self.expunge_old(imap)
                    known = -1  # whatever came during the expunge is fetched next
                    continue
                pushed_at = await self.idle(imap, random.uniform(20, 40))
        finally:
            await imap.close()

    async def idle(self, imap: Imap, seconds: float) -> float:
        """IDLE until an EXISTS comes or `seconds` pass; when it came (0: it did not)."""
        tag = imap.send(b"IDLE")
        while not (resp := await asyncio.wait_for(imap.response(), OP_TIMEOUT)).startswith(b"+"):
            if not resp.startswith(b"* "):
                raise ProtocolError(f"IDLE -> {resp[:200]!r}")
            imap.observe(resp)
        self.soak.ops["imap idle"] += 1
        deadline = time.monotonic() + seconds
        pushed_at = 0.0
        while not pushed_at and not self.soak.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                resp = await asyncio.wait_for(imap.response(), min(left, 1.0))
            except asyncio.TimeoutError:
                continue
            imap.observe(resp)
            if resp.endswith(b" EXISTS\r\n"):
                pushed_at = time.monotonic()
        assert imap.writer is not None
        imap.writer.write(b"DONE\r\n")
        await asyncio.wait_for(imap.finish(tag, b"IDLE"), OP_TIMEOUT)
        return pushed_at

    async def fetch_new(self, imap: Imap, last_uid: int, seen_at: float) -> int:
        _, untagged = await imap.run("imap fetch new",
                                     b"UID FETCH %d:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID SUBJECT)])"
                                     % (last_uid + 1))
        for uid, resp in fetch_items(untagged).items():
            if uid <= last_uid:
                continue  # n:* names the last message even when it is older than n
            last_uid = uid
            serial = serial_of(resp)
            sent = self.soak.pending_pushes.pop((serial, self.user), None)
            if sent is not None:
                self.soak.push_latencies.append(max(seen_at, sent) - sent)
            if serial % 3 == 0 and self.user in SIEVE_USERS and b"\\Flagged" not in resp:
                raise ProtocolError(f"message {serial}: the Sieve script's \\Flagged is missing: {resp[:200]!r}")
        return last_uid

    async def expunge_old(self, imap: Imap) -> None:
        doomed = imap.exists - IDLE_KEEP
        await imap.run("imap store", b"STORE 1:%d +FLAGS.SILENT (\\Deleted)" % doomed)
        before = imap.expunged
        await imap.run("imap expunge", b"EXPUNGE")
        if imap.expunged - before != doomed:
            raise ProtocolError(f"EXPUNGE of {doomed} messages answered {imap.expunged - before} EXPUNGE")


SIEVE_USERS: set[str] = set()


class CommandLoop(SoakClient):
    """A desktop client working in a folder of its own, which it knows exactly: every answer
    is compared with what it stored there."""

    def __init__(self, soak: Soak, user: str, folder: str) -> None:
        self.soak = soak
        self.user = user
        self.folder = folder
        self.who = f"imap {user}/{folder}"
        self.generation = 0
        self.start_over()

    def start_over(self) -> None:
        """A new folder, empty: what the last one holds is no longer known for sure."""
        self.generation += 1
        self.mailbox = f"{self.folder}-{self.generation}"
        self.created = False
        self.messages: dict[int, int] = {}  # uid -> serial
        self.seen: set[int] = set()
        self.uidvalidity = 0

    async def session(self) -> None:
        imap = Imap(self.soak, self.who)
        try:
            await imap.open(self.user)
            if not self.created:
                await imap.run("imap create", f"CREATE {self.mailbox}".encode())
                self.created = True
            await self.select(imap)
            for _ in range(random.randint(30, 80)):  # then a new connection and login
                if self.soak.stopping:
                    return
                await self.soak.pause()
                await random.choices(self.steps, self.weights)[0](self, imap)
        finally:
            await imap.close()

    async def select(self, imap: Imap) -> None:
        codes = await imap.select(self.mailbox)
        if self.uidvalidity and codes["uidvalidity"] != self.uidvalidity:
            raise ProtocolError(f"UIDVALIDITY changed from {self.uidvalidity} to {codes['uidvalidity']}")
        self.uidvalidity = codes["uidvalidity"]
        if imap.exists != len(self.messages):
            raise ProtocolError(f"SELECT: {imap.exists} EXISTS, {len(self.messages)} stored")

    async def append(self, imap: Imap) -> None:
        serial = self.soak.next_serial()
        data = message(serial)
        tagged, _ = await imap.run("imap append", b"APPEND %s (\\Draft) {%d+}\r\n%s"
                                   % (self.mailbox.encode(), len(data), data))
        found = re.search(rb"\[APPENDUID (\d+) (\d+)\]", tagged)
        if not found or int(found.group(1)) != self.uidvalidity:
            raise ProtocolError(f"APPEND answered {tagged[:200]!r}")
        self.messages[int(found.group(2))] = serial
        await imap.run("imap noop", b"NOOP")  # the new message's EXISTS
        if imap.exists != len(self.messages):
            raise ProtocolError(f"after APPEND: {imap.exists} EXISTS, {len(self.messages)} stored")
        if len(self.messages) > LOOP_KEEP:
            await self.expunge(imap)

    async def flags(self, imap: Imap) -> None:
        _, untagged = await imap.run("imap fetch flags", b"UID FETCH 1:* (UID FLAGS)")
        got = fetch_items(untagged)
        if self.messages and set(got) != set(self.messages):
            raise ProtocolError(f"UID FETCH 1:* listed {sorted(got)}, stored {sorted(self.messages)}")
        for uid, resp in got.items():
            if (b"\\Seen" in resp) != (uid in self.seen):
                raise ProtocolError(f"uid {uid}: flags {resp[:200]!r}, \\Seen stored: {uid in self.seen}")

    async def listing(self, imap: Imap) -> None:
        if not self.messages:
            return
        _, untagged = await imap.run("imap fetch listing",
                                     b"FETCH 1:* (UID RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE)")
        got = fetch_items(untagged)
        for uid, serial in self.messages.items():
            size = re.search(rb"RFC822\.SIZE (\d+)", got.get(uid, b""))
            if not size or int(size.group(1)) != len(message(serial)):
                raise ProtocolError(f"uid {uid}: listing {got.get(uid, b'')[:200]!r}")
            if b"soak %d tok%dz" % (serial, serial) not in got[uid]:
                raise ProtocolError(f"uid {uid}: ENVELOPE without its subject: {got[uid][:300]!r}")

    async def body(self, imap: Imap) -> None:
        if not self.messages:
            return
        uid = random.choice(list(self.messages))
        _, untagged = await imap.run("imap fetch body", b"UID FETCH %d (UID BODY.PEEK[])" % uid)
        got = fetch_items(untagged)
        if uid not in got or literal_after(got[uid], b"BODY[]") != message(self.messages[uid]):
            raise ProtocolError(f"uid {uid}: BODY[] is not the appended message")

    async def store(self, imap: Imap) -> None:
        if not self.messages:
            return
        uid = random.choice(list(self.messages))
        _, untagged = await imap.run("imap store", b"UID STORE %d +FLAGS (\\Seen $Soak)" % uid)
        got = fetch_items(untagged).get(uid, b"")
        if b"\\Seen" not in got or b"$Soak" not in got:
            raise ProtocolError(f"uid {uid}: STORE answered {untagged!r}"[:300])
        self.seen.add(uid)

    async def search(self, imap: Imap) -> None:
        if not self.messages:
            return
        uid = random.choice(list(self.messages))
        serial = self.messages[uid]
        kind, query, want = random.choice((
            ("imap search flags", b"UID SEARCH UNSEEN", set(self.messages) - self.seen),
            ("imap search subject", b"UID SEARCH SUBJECT tok%dz" % serial, {uid}),
            ("imap search body", b"UID SEARCH BODY needle%dz" % serial, {uid}),
        ))
        _, untagged = await imap.run(kind, query)
        if search_result(untagged) != want:
            raise ProtocolError(f"{query!r} found {sorted(search_result(untagged))}, want {sorted(want)}")

    async def expunge(self, imap: Imap) -> None:
        doomed = sorted(self.messages)[:len(self.messages) - LOOP_KEEP + 5]
        await imap.run("imap store", b"UID STORE %s +FLAGS.SILENT (\\Deleted)"
                       % b",".join(b"%d" % uid for uid in doomed))
        before = imap.expunged
        await imap.run("imap expunge", b"EXPUNGE")
        if imap.expunged - before != len(doomed):
            raise ProtocolError(f"EXPUNGE of {len(doomed)} messages answered {imap.expunged - before} EXPUNGE")
        for uid in doomed:
            del self.messages[uid]
            self.seen.discard(uid)

    async def other(self, imap: Imap) -> None:
        kind, text = random.choice((("imap list", b'LIST "" "*"'), ("imap noop", b"NOOP"),
                                    ("imap status", b"STATUS INBOX (MESSAGES UIDNEXT UNSEEN)")))
        _, untagged = await imap.run(kind, text)
        if kind == "imap list" and not any(r.rstrip().endswith((f' "{self.mailbox}"'.encode(), f" {self.mailbox}".encode()))
                                            for r in untagged):
            raise ProtocolError(f"LIST without {self.mailbox}: {untagged!r}"[:300])

    steps = (append, flags, listing, body, store, search, other, select)
    weights = (25, 12, 8, 15, 12, 15, 8, 5)


# -- POP3 ------------------------------------------------------------------------------------------

class Pop3(SoakClient):
    """A POP3 user downloading now and then, leaving the newest messages on the server."""

    def __init__(self, soak: Soak, user: str) -> None:
        self.soak = soak
        self.user = user
        self.who = f"pop3 {user}"

    async def line(self, reader: asyncio.StreamReader, what: str) -> bytes:
        line = await reader.readuntil(b"\r\n")
        if not line.startswith(b"+OK"):
            raise ProtocolError(f"{what} -> {line[:200]!r}")
        return line

    async def multiline(self, reader: asyncio.StreamReader) -> list[bytes]:
        lines = []
        while (line := await reader.readuntil(b"\r\n")) != b".\r\n":
            lines.append(line[1:] if line.startswith(b".") else line)
        return lines

    async def command(self, reader, writer, text: str, multi: bool = False) -> tuple[bytes, list[bytes]]:
        writer.write(text.encode() + b"\r\n")
        first = await self.line(reader, text.split()[0] if not text.startswith("PASS") else "PASS")
        return first, (await self.multiline(reader) if multi else [])

    async def session(self) -> None:
        await self.soak.pause(10)
        reader, writer = await asyncio.open_connection("127.0.0.1", self.soak.ports["pop3"], limit=1 << 22)
        try:
            await self.soak.timed("pop3 session", self.download(reader, writer))
        finally:
            writer.close()

    async def download(self, reader, writer) -> None:
        await self.line(reader, "greeting")
        await self.command(reader, writer, f"USER {self.user}")
        await self.command(reader, writer, f"PASS {PASSWORD}")
        stat, _ = await self.command(reader, writer, "STAT")
        count = int(stat.split()[1])
        _, uidl = await self.command(reader, writer, "UIDL", multi=True)
        _, sizes = await self.command(reader, writer, "LIST", multi=True)
        if len(uidl) != count or len(sizes) != count:
            raise ProtocolError(f"STAT {count}, UIDL {len(uidl)}, LIST {len(sizes)}")
        for number in random.sample(range(1, count + 1), min(3, count)):
            _, lines = await self.command(reader, writer, f"RETR {number}", multi=True)
            data = b"".join(lines)
            expected_size = int(sizes[number - 1].split()[1])
            if len(data) != expected_size or not data.endswith(message(serial_of(data))):
                raise ProtocolError(f"RETR {number}: {len(data)} octets (LIST said {expected_size}), "
                                    f"not the delivered message")
        if count:
            _, top = await self.command(reader, writer, "TOP 1 0", multi=True)
            if not top or top[-1] != b"\r\n":
                raise ProtocolError(f"TOP 1 0 answered {b''.join(top)[-200:]!r}")
        for number in range(1, count - POP3_KEEP + 1):
            await self.command(reader, writer, f"DELE {number}")
        await self.command(reader, writer, "QUIT")


# -- LMTP ------------------------------------------------------------------------------------------

class Lmtp(SoakClient):
    """An MTA's connection delivering to the idlers' and POP3 users' inboxes."""

    def __init__(self, soak: Soak, number: int, idlers: list[str], pop3_users: list[str]) -> None:
        self.soak = soak
        self.who = f"lmtp {number}"
        self.idlers = idlers
        self.pop3_users = pop3_users

    def start_over(self) -> None:
        pass

    async def reply(self, reader: asyncio.StreamReader, want: int, what: str) -> None:
        while True:
            line = await reader.readuntil(b"\r\n")
            if line[3:4] != b"-":
                break
        if int(line[:3]) != want:
            raise ProtocolError(f"{what} -> {line[:200]!r}")

    async def session(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.soak.ports["lmtp"], limit=1 << 20)
        try:
            await self.reply(reader, 220, "greeting")
            writer.write(b"LHLO soak.example\r\n")
            await self.reply(reader, 250, "LHLO")
            for _ in range(random.randint(20, 60)):
                await self.soak.pause(2)
                if not self.soak.running(self):
                    break
                await self.soak.timed("lmtp delivery", self.deliver(reader, writer))
            writer.write(b"QUIT\r\n")
            await self.reply(reader, 221, "QUIT")
        finally:
            writer.close()

    async def deliver(self, reader, writer) -> None:
        recipients = random.sample(self.idlers, min(len(self.idlers), random.choice((1, 1, 1, 2, 3))))
        if self.pop3_users and random.random() < 0.5:
            recipients.append(random.choice(self.pop3_users))
        serial = self.soak.next_serial()
        data = message(serial)
        writer.write(b"MAIL FROM:<sender@remote.example>\r\n"
                     + b"".join(b"RCPT TO:<%s@%s>\r\n" % (r.encode(), DOMAIN.encode()) for r in recipients)
                     + b"DATA\r\n")
        await self.reply(reader, 250, "MAIL")
        for r in recipients:
            await self.reply(reader, 250, f"RCPT {r}")
        await self.reply(reader, 354, "DATA")
        writer.write(data_section(data))
        sent = time.monotonic()
        for user in recipients:
            if user in self.soak.idled:
                self.soak.pending_pushes[serial, user] = sent
        writer.write(b".\r\n")
        for r in recipients:
            await self.reply(reader, 250, f"end of DATA for {r}")


# -- CalDAV ----------------------------------------------------------------------------------------

class Http:
    """HTTP/1.1 with keep-alive over asyncio streams, Basic authentication."""

    def __init__(self, port: int, user: str) -> None:
        self.port = port
        self.auth = "Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"",
                      **headers: str) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port, limit=1 << 22)
        assert self.reader is not None
        head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}", f"Authorization: {self.auth}",
                f"Content-Length: {len(body)}"]
        head += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split()[1])
        answer: dict[str, str] = {}
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            answer[name.strip().lower()] = value.strip()
        if status in (204, 304) or status < 200 or method == "HEAD":
            data = b""  # no body, whatever the headers say (RFC 9112 section 6.3)
        elif answer.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while (size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)):
                chunks.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            while await self.reader.readuntil(b"\r\n") != b"\r\n":
                pass
            data = b"".join(chunks)
        elif "content-length" in answer:
            data = await self.reader.readexactly(int(answer["content-length"]))
        else:
            data = await self.reader.read()
            answer["connection"] = "close"
        if answer.get("connection", "").lower() == "close":
            self.writer.close()
            self.writer = None
        return status, answer, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def vevent(uid: str, serial: int, version: int) -> bytes:
    """An event in the first weeks of 2027; every fourth one weekly for ten weeks."""
    start = time.gmtime(1798761600 + (serial % 500) * 3600 * 5)
    begin = time.strftime("%Y%m%dT%H%M%SZ", start)
    rrule = "RRULE:FREQ=WEEKLY;COUNT=10\r\n" if serial % 4 == 0 else ""
    return (f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//soak//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
            f"DTSTAMP:20261207T000000Z\r\nDTSTART:{begin}\r\nDURATION:PT1H\r\n{rrule}"
            f"SUMMARY:soak event {serial} version {version}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n").encode()


CALENDAR_QUERY = ('<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/>'
                  '</d:prop><c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT">'
                  '<c:time-range start="20261201T000000Z" end="20280101T000000Z"/></c:comp-filter>'
                  '</c:comp-filter></c:filter></c:calendar-query>').encode()
PROPFIND = b'<d:propfind xmlns:d="DAV:"><d:prop><d:getetag/><d:resourcetype/></d:prop></d:propfind>'


def dav_responses(body: bytes) -> dict[str, ET.Element]:
    """The multistatus answer's responses by the last segment of their href."""
    root = ET.fromstring(body)
    return {r.findtext(DAV + "href", "").rstrip("/").rsplit("/", 1)[-1]: r for r in root.findall(DAV + "response")}


class CalDav(SoakClient):
    """A calendar app syncing a calendar of its own, which it knows exactly."""

    def __init__(self, soak: Soak, user: str, calendar: str) -> None:
        self.soak = soak
        self.user = user
        self.who = f"caldav {user}/{calendar}"
        self.calendar = calendar
        self.generation = 0
        self.start_over()

    def start_over(self) -> None:
        """A new calendar, empty: what the last one holds is no longer known for sure."""
        self.generation += 1
        name = f"{self.calendar}-{self.generation}"
        self.path = f"/caldav/{self.user}/{name}/"
        self.feed = f"/ical/{self.user}/{name}"
        self.events: dict[str, tuple[int, int, str]] = {}  # name -> (serial, version, etag)
        self.created = False
        self.token = ""
        self.changed: set[str] = set()  # names changed since `token`

    async def call(self, http: Http, kind: str, method: str, path: str, body: bytes = b"",
                   want: tuple[int, ...] = (200,), **headers: str) -> tuple[dict[str, str], bytes]:
        status, answer, data = await self.soak.timed(kind, http.request(method, path, body, **headers))
        if status not in want:
            raise ProtocolError(f"{method} {path} -> {status} {data[:200]!r}")
        return answer, data

    async def session(self) -> None:
        http = Http(self.soak.ports["ical"], self.user)
        try:
            if not self.created:
                await self.call(http, "caldav mkcalendar", "MKCALENDAR", self.path, want=(201,))
                self.created = True
            for _ in range(random.randint(20, 60)):
                if self.soak.stopping:
                    return
                await self.soak.pause(2)
                await random.choices(self.steps, self.weights)[0](self, http)
        finally:
            http.close()

    async def put_new(self, http: Http) -> None:
        serial = self.soak.next_serial()
        name = f"soak-{serial}.ics"
        answer, _ = await self.call(http, "caldav put", "PUT", self.path + name, vevent(f"soak-{serial}", serial, 0),
                                    want=(201,), If_None_Match="*", Content_Type="text/calendar")
        self.events[name] = (serial, 0, answer.get("etag", ""))
        self.changed.add(name)
        if len(self.events) > CALENDAR_KEEP:
            await self.delete_oldest(http)

    async def put_update(self, http: Http) -> None:
        if not self.events:
            return
        name = random.choice(list(self.events))
        serial, version, etag = self.events[name]
        headers = {"If_Match": etag} if etag else {}
        answer, _ = await self.call(http, "caldav put", "PUT", self.path + name,
                                    vevent(f"soak-{serial}", serial, version + 1), want=(200, 201, 204),
                                    Content_Type="text/calendar", **headers)
        self.events[name] = (serial, version + 1, answer.get("etag", ""))
        self.changed.add(name)

    async def delete_oldest(self, http: Http) -> None:
        name = min(self.events, key=lambda n: self.events[n][0])
        await self.call(http, "caldav delete", "DELETE", self.path + name, want=(200, 204))
        del self.events[name]
        self.changed.add(name)

    async def get(self, http: Http) -> None:
        if not self.events:
            return
        name = random.choice(list(self.events))
        serial, version, _ = self.events[name]
        _, data = await self.call(http, "caldav get", "GET", self.path + name)
        if f"soak event {serial} version {version}\r\n".encode() not in data:
            raise ProtocolError(f"GET {name}: not version {version}: {data[:300]!r}")

    async def propfind(self, http: Http) -> None:
        _, data = await self.call(http, "caldav propfind", "PROPFIND", self.path, PROPFIND, want=(207,),
                                  Depth="1", Content_Type="application/xml")
        names = {n for n in dav_responses(data) if n.endswith(".ics")}
        if names != set(self.events):
            raise ProtocolError(f"PROPFIND listed {len(names)} events, stored {len(self.events)}: "
                                f"{sorted(names ^ set(self.events))[:5]}")

    async def query(self, http: Http) -> None:
        _, data = await self.call(http, "caldav query", "REPORT", self.path, CALENDAR_QUERY, want=(207,),
                                  Depth="1", Content_Type="application/xml")
        names = set(dav_responses(data))
        if names != set(self.events):
            raise ProtocolError(f"calendar-query found {len(names)} events, stored {len(self.events)}")

    async def multiget(self, http: Http) -> None:
        if not self.events:
            return
        names = random.sample(list(self.events), min(10, len(self.events)))
        body = ('<c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/>'
                '<c:calendar-data/></d:prop>' + "".join(f"<d:href>{self.path}{n}</d:href>" for n in names)
                + '</c:calendar-multiget>').encode()
        _, data = await self.call(http, "caldav multiget", "REPORT", self.path, body, want=(207,),
                                  Depth="1", Content_Type="application/xml")
        got = dav_responses(data)
        for name in names:
            text = got[name].findtext(f".//{CALDAV_NS}calendar-data", "") if name in got else ""
            serial, version, _ = self.events[name]
            if f"SUMMARY:soak event {serial} version {version}" not in text:
                raise ProtocolError(f"multiget {name}: not version {version}: {text[:200]!r}")

    async def sync(self, http: Http) -> None:
        token = f"<d:sync-token>{self.token}</d:sync-token>" if self.token else "<d:sync-token/>"
        body = (f'<d:sync-collection xmlns:d="DAV:">{token}<d:sync-level>1</d:sync-level>'
                '<d:prop><d:getetag/></d:prop></d:sync-collection>').encode()
        _, data = await self.call(http, "caldav sync", "REPORT", self.path, body, want=(207,),
                                  Content_Type="application/xml")
        got = dav_responses(data)
        missing = (self.changed if self.token else set(self.events)) - set(got)
        if missing:
            raise ProtocolError(f"sync-collection from {self.token!r} left out {sorted(missing)[:5]}")
        self.token = ET.fromstring(data).findtext(DAV + "sync-token", "")
        self.changed = set()

    async def whole(self, http: Http) -> None:
        _, data = await self.call(http, "caldav feed", "GET", self.feed)
        if data.count(b"BEGIN:VEVENT") != len(self.events):
            raise ProtocolError(f"GET {self.feed}: {data.count(b'BEGIN:VEVENT')} events, stored {len(self.events)}")

    steps = (put_new, put_update, get, propfind, query, multiget, sync, whole)
    weights = (25, 10, 10, 12, 12, 10, 15, 3)


# -- the server's resources ------------------------------------------------------------------------

def cpu_seconds(pid: int | str) -> float:
    """CPU time of `pid` ("self": this process)."""
    with open(f"/proc/{pid}/stat") as fp:
        fields = fp.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """`groupware serve` and its worker processes."""
    return [pid, *descendants(pid)]


def descriptor_kinds(pid: int, data_dir: str) -> collections.Counter:
    """The open descriptors of `pid` and its workers by kind: sockets, pipes, and files by
    their name in the data directory (blob files as `attachments/...`)."""
    kinds: collections.Counter = collections.Counter()
    for proc, fd in ((proc, fd) for proc in tree(pid) for fd in os.listdir(f"/proc/{proc}/fd")):
        try:
            target = os.readlink(f"/proc/{proc}/fd/{fd}")
        except OSError:
            continue
        if target.startswith(data_dir + "/"):
            name = os.path.relpath(target, data_dir)
            target = "attachments/..." if name.startswith("attachments/") else name
        kinds[target.split(":", 1)[0] if target.startswith(("socket:", "pipe:", "anon_inode:")) else target] += 1
    return kinds


def resources(pid: int, database: str) -> tuple[float, int, int, int]:
    """(resident MB, open descriptors, threads, descriptors on the SQLite file) of `pid`
    and its workers together."""
    rss = threads = fds = db = 0
    for proc in tree(pid):
        try:
            with open(f"/proc/{proc}/status") as fp:
                for line in fp:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Threads:"):
                        threads += int(line.split()[1])
            for fd in os.listdir(f"/proc/{proc}/fd"):
                fds += 1
                try:
                    if os.readlink(f"/proc/{proc}/fd/{fd}") == database:
                        db += 1
                except OSError:
                    pass
        except FileNotFoundError:
            pass  # a worker that just ended
    return rss / 1024, fds, threads, db


async def sampler(soak: Soak, pid: int, database: str, samples: list[Sample]) -> None:
    def server_cpu_seconds() -> float:
        total = 0.0
        for proc in tree(pid):
            try:
                total += cpu_seconds(proc)
            except FileNotFoundError:
                pass
        return total

    last = (time.monotonic(), server_cpu_seconds(), cpu_seconds("self"))
    while True:
        now, server_cpu, client_cpu = time.monotonic(), server_cpu_seconds(), cpu_seconds("self")
        span = now - last[0] if now - last[0] > 1 else float("inf")  # the first sample: no share yet
        sample = Sample(now - soak.started, *resources(pid, database), sum(soak.ops.values()), len(soak.errors),
                        (server_cpu - last[1]) / span, (client_cpu - last[2]) / span)
        last = (now, server_cpu, client_cpu)
        samples.append(sample)
        print(f"  {sample.at:6.0f} s  rss {sample.rss_mb:7.1f} MB  fds {sample.fds:5d}  threads {sample.threads:3d}  "
              f"db {sample.db_handles:3d}  ops {sample.ops:7d}  errors {sample.errors:4d}  "
              f"cpu server {sample.cpu_server * 100:4.0f}% client {sample.cpu_client * 100:4.0f}%", flush=True)
        soak.overdue_pushes()
        await asyncio.sleep(SAMPLE_EVERY - (time.monotonic() - soak.started) % SAMPLE_EVERY)


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """The least-squares slope of (seconds, value) points, per minute."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    return 60 * sum((t - mean_t) * (v - mean_v) for t, v in points) / var if var else 0.0


# -- the run ---------------------------------------------------------------------------------------

KINDS = {"idle": 0.35, "loop": 0.30, "caldav": 0.20, "pop3": 0.10, "lmtp": 0.05}


def plan(clients: int, kinds: list[str]) -> dict[str, int]:
    """How many clients of each of `kinds`: of all, about 35% idlers, 30% command loops,
    20% CalDAV, 10% POP3 and 5% LMTP connections, at least one of each; of fewer kinds,
    in the same proportions. Command loops, CalDAV clients and LMTP connections work on
    the idlers' users, so at least one idler user is made whenever one of those runs."""
    total = sum(KINDS[kind] for kind in kinds)
    counts = {kind: max(1, int(clients * KINDS[kind] / total)) for kind in kinds}
    counts[kinds[-1]] = max(1, clients - sum(counts.values()) + counts[kinds[-1]])
    return counts


def prepare_store(options: dict[str, str], data_dir: str, users: list[str], sieve_users: list[str]) -> None:
    """The users, and an active Sieve script for `sieve_users`."""
    create_users(options, data_dir, users)
    storage = open_storage(Config(options, data_dir))
    try:
        for user in sieve_users:
            user_id = storage.get_user(user)["id"]
            storage.put_sieve_script(user_id, "soak", SIEVE_SCRIPT)
            storage.activate_sieve_script(user_id, "soak")
    finally:
        storage.close()


async def soak_load(server: ServerProcess, database: str, args, counts: dict[str, int],
                    idlers: list[str], pop3_users: list[str]) -> tuple[Soak, list[Sample]]:
    ports = {name: server.port(name) for name in ("imap", "pop3", "ical", "lmtp")}
    soak = Soak(ports, args.think, args.push_deadline)
    samples: list[Sample] = []
    sampling = asyncio.create_task(sampler(soak, server.pid(), database, samples))
    clients: list = [Idler(soak, user) for user in idlers[:counts.get("idle", 0)]]
    clients += [CommandLoop(soak, idlers[k % len(idlers)], f"loop{k}") for k in range(counts.get("loop", 0))]
    clients += [CalDav(soak, idlers[k % len(idlers)], f"soak{k}") for k in range(counts.get("caldav", 0))]
    clients += [Pop3(soak, user) for user in pop3_users]
    clients += [Lmtp(soak, k, idlers, pop3_users) for k in range(counts.get("lmtp", 0))]
    random.shuffle(clients)
    tasks = []
    ramp = min(30.0, args.seconds / 10)  # logins spread out, as after a restart
    for client in clients:
        tasks.append(asyncio.create_task(run_client(soak, client)))
        await asyncio.sleep(ramp / len(clients))
    await asyncio.sleep(max(0.0, args.seconds - (time.monotonic() - soak.started)))
    print("stopping the deliveries, then the other clients ...", flush=True)
    soak.delivering = False
    delivering = [t for c, t in zip(clients, tasks) if isinstance(c, Lmtp)]
    if delivering:
        await asyncio.wait(delivering, timeout=OP_TIMEOUT)
    # Deliveries answered just before the end still get their push deadline.
    deadline = time.monotonic() + args.push_deadline
    while soak.pending_pushes and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    soak.stopping = True
    done, pending = await asyncio.wait(tasks, timeout=OP_TIMEOUT)
    for task in pending:
        task.cancel()
    for task in done:
        if task.exception() is not None:
            soak.error("client", "".join(traceback.format_exception(task.exception()))[-400:])
    sampling.cancel()
    soak.descriptors = descriptor_kinds(server.pid(), server.data_dir)
    return soak, samples


def server_log_errors(path: str) -> list[str]:
    """ERROR and CRITICAL lines and tracebacks in the server's log."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fp:
            return [line.rstrip() for line in fp
                    if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")]
    except FileNotFoundError:
        return []


def report(args, counts: dict[str, int], soak: Soak, samples: list[Sample], log_errors: list[str]) -> bool:
    """Prints the table, the errors and the slopes; True when the run passed."""
    print(f"\n{args.clients} clients ({', '.join(f'{n} {kind}' for kind, n in counts.items())}) for "
          f"{args.seconds} s; think time {args.think} s; samples every {SAMPLE_EVERY} s")
    print(f"{'':>8} {'RSS MB':>8} {'fds':>6} {'threads':>8} {'db':>4} {'ops':>8} {'errors':>7}")
    shown = [t for t in REPORT_AT if t <= args.seconds] + [samples[-1].at]
    for at in shown:
        sample = min(samples, key=lambda s: abs(s.at - at))
        label = f"{at / 60:.0f} min" if at in REPORT_AT else "after"
        print(f"{label:>8} {sample.rss_mb:8.1f} {sample.fds:6d} {sample.threads:8d} {sample.db_handles:4d} "
              f"{sample.ops:8d} {sample.errors:7d}")
    later = [s for s in samples if args.warmup <= s.at <= args.seconds + 1]
    slopes = {
        "RSS (MB/min)": (slope_per_minute([(s.at, s.rss_mb) for s in later]), args.max_rss_slope),
        "fds (/min)": (slope_per_minute([(s.at, s.fds) for s in later]), args.max_fd_slope),
        "threads (/min)": (slope_per_minute([(s.at, s.threads) for s in later]), args.max_thread_slope),
        "db handles (/min)": (slope_per_minute([(s.at, s.db_handles) for s in later]), args.max_fd_slope),
    }
    print("descriptors after the load: " + ", ".join(f"{n} {kind}" for kind, n in soak.descriptors.most_common()))
    print(f"\nslopes after {args.warmup} s (least squares over {len(later)} samples):")
    passed = True
    for name, (value, limit) in slopes.items():
        over = value > limit  # only growth is a leak
        passed &= not over
        print(f"  {name:20} {value:+8.3f}   (limit {limit}){'  EXCEEDED' if over else ''}")
    busy = [s for s in samples if s.at > 0]
    if busy:
        print(f"cpu, mean share of one core: server {100 * sum(s.cpu_server for s in busy) / len(busy):.0f}%, "
              f"soak client {100 * sum(s.cpu_client for s in busy) / len(busy):.0f}%")
    print(f"\n{'operation':24} {'count':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for kind in sorted(soak.ops):
        values = sorted(soak.latencies.get(kind, []))
        p50 = f"{values[len(values) // 2] * 1000:8.1f}" if values else f"{'-':>8}"
        p99 = f"{values[min(len(values) - 1, int(len(values) * 0.99))] * 1000:8.1f}" if values else f"{'-':>8}"
        print(f"{kind:24} {soak.ops[kind]:8d} {p50} {p99}")
    pushes = sorted(soak.push_latencies)
    if pushes:
        print(f"{'LMTP end of DATA -> EXISTS':24} {len(pushes):8d} {pushes[len(pushes) // 2] * 1000:8.1f} "
              f"{pushes[min(len(pushes) - 1, int(len(pushes) * 0.99))] * 1000:8.1f}")
    print(f"\nprotocol errors: {len(soak.errors)}")
    for line in soak.errors[:30]:
        print("  " + line)
    print(f"server log errors: {len(log_errors)}")
    for line in log_errors[:30]:
        print("  " + line)
    return passed and not soak.errors and not log_errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--warmup", type=int, default=120, help="seconds before the slopes are measured")
    parser.add_argument("--think", type=float, default=2.0, help="mean seconds a client waits between commands")
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help=f"the kinds of client to run, of {','.join(KINDS)}")
    parser.add_argument("--push-deadline", type=float, default=30.0)
    parser.add_argument("--max-rss-slope", type=float, default=1.0, help="MB per minute")
    parser.add_argument("--max-fd-slope", type=float, default=1.0,
                        help="descriptors (and database handles) per minute")
    parser.add_argument("--max-thread-slope", type=float, default=0.1, help="threads per minute")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a server option (repeatable)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable of the server (e.g. MALLOC_ARENA_MAX=2)")
    args = parser.parse_args()
    args.warmup = min(args.warmup, args.seconds // 2)
    kinds = [kind for kind in KINDS if kind in args.kinds.split(",")]
    counts = plan(args.clients, kinds)
    idlers = [f"soak{i}" for i in range(max(1, counts.get("idle", 0), counts.get("loop", 0) // 2))]
    pop3_users = [f"pop{i}" for i in range(counts.get("pop3", 0))]
    SIEVE_USERS.update(idlers[::4])
    options = {"log_level": "warning", **dict(item.split("=", 1) for item in args.set)}
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    with tempfile.TemporaryDirectory(prefix="gw-soak-") as base:
        data_dir = os.path.join(base, "groupware")
        prepare_store(options, data_dir, idlers + pop3_users, sorted(SIEVE_USERS))
        server = ServerProcess(data_dir, options)
        server.environment.update(item.split("=", 1) for item in args.env)
        server.start()
        try:
            database = os.path.join(data_dir, "store.db")
            print(f"groupware serve pid {server.pid()} with {len(tree(server.pid())) - 1} workers, "
                  f"{args.clients} clients for {args.seconds} s", flush=True)
            soak, samples = asyncio.run(soak_load(server, database, args, counts, idlers, pop3_users))
        finally:
            server.stop()
        log_errors = server_log_errors(server.options["log_file"])
    return 0 if report(args, counts, soak, samples, log_errors) else 1


if __name__ == "__main__":
    sys.exit(main())
