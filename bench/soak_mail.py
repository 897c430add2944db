"""The soak's mail clients: IMAP idlers and command loops, POP3 sessions, LMTP deliveries."""
from __future__ import annotations

import asyncio
import os
import random
import re
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from lmtp import DOMAIN, PASSWORD, data_section  # noqa: E402
from soak_state import OP_TIMEOUT, ProtocolError, Soak, SoakClient, message, serial_of  # noqa: E402

IDLE_KEEP = 10  # an idler expunges all but the newest this many messages
LOOP_KEEP = 30  # a command loop keeps at most this many messages in its folder
POP3_KEEP = 5  # a POP3 session deletes all but the newest this many


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

    delivers = True

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


