"""FETCH and UID FETCH (RFC 3501 §6.4.5, §6.4.8; BINARY RFC 3516; CONDSTORE/QRESYNC RFC 7162).

Where each item comes from:

- UID, FLAGS, MODSEQ: the selected mailbox's own map (no store call at all);
  THREADID (RFC 8474) is NIL, the store keeps no threads (objectid.py);
- INTERNALDATE, RFC822.SIZE, ENVELOPE, BODYSTRUCTURE, BODY, EMAILID (RFC 8474),
  SAVEDATE (RFC 8514), PREVIEW (RFC 8970, made when the message was stored; NIL for
  messages stored before previews were kept): listing columns, one
  `Folder.query` for the whole set (in windows of `QUERY_WINDOW` messages, so a
  100,000-message `FETCH 1:* ALL` is a handful of calls, never one per message),
  rendered once and kept in the process's `listing_cache` (they never change for
  a UID), so a repeated FETCH of the same envelopes asks the store nothing;
- body sections: the stored source. Sources up to `SMALL_SOURCE` come many
  messages per stream, cut apart as they arrive (`sources.SourceStream`, read a
  few MB ahead of what is written); bigger ones are
  streamed with ranged reads straight to the client, paced by its reading, so
  the gateway never holds them whole. A section is placed by the offsets the
  stored BODYSTRUCTURE carries (for messages stored before it had them, by
  mapping the source once with `sections.PartMap`, which keeps only header
  blocks) and only its range is read; a partial `<origin.length>` or a header
  reads only that much, also of messages above `PARTIAL_SOURCE`.

A non-PEEK body fetch sets \\Seen (one bulk store call) in a read-write mailbox
where the user holds `s` (RFC 4314), and reports FLAGS with the message.

BINARY[...] (RFC 3516) undoes the part's transfer encoding (`sections.Decoder`) and
answers with a literal8 (`~{n}`) when the result holds NUL octets; an encoding it
cannot undo is `NO [UNKNOWN-CTE]`. A literal of the other body items never carries
NUL (RFC 3501 §4.3, CHAR8): content stored with NUL octets (an APPEND of a literal8)
reads there with each NUL as 0x80, as Dovecot shows it, octet counts unchanged;
BINARY[] reads it as stored.
"""
from __future__ import annotations

import bisect
import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from gateways.imap.dispatch import SELECTED, Bad, No, Reply, capability, command
from gateways.imap.grammar import writer as w
from gateways.imap.grammar.commands import FetchAttribute, Section
from gateways.imap.keywords import announce
from gateways.imap.listing_cache import CACHE
from gateways.imap.objectid import legacy_email_id
from gateways.imap.sections import (Decoder, Located, PartMap, UnknownEncoding, filter_header, from_structure,
                                    locate)
from gateways.imap.sections import decode as decode_transfer
from gateways.imap.sources import Piece, SourceStream
from shared import rights
from shared.flags import SEEN
from shared.uidset import contains, format_ranges, runs

if TYPE_CHECKING:
    from gateways.imap.connection import IMAPConnection

log = logging.getLogger("gateways.imap")

QUERY_WINDOW = 25_000  # messages per listing call
SMALL_SOURCE = 1024 * 1024  # sources up to this size are read in batches, in memory
FLUSH_BYTES = 128 * 1024  # output gathered before it is written
LINES_PER_WRITE = 1024  # short FETCH lines gathered before they count towards FLUSH_BYTES
HEADER_PROBE = 128 * 1024  # first bytes read to find the header of a big message
PARTIAL_SOURCE = 64 * 1024  # above this, a partial or header fetch reads by range

capability("BINARY")
capability("PREVIEW")

UID_ATTRIBUTE = FetchAttribute("UID")
MODSEQ_ATTRIBUTE = FetchAttribute("MODSEQ")
FLAGS_ATTRIBUTE = FetchAttribute("FLAGS")
CACHED = frozenset({"UID", "FLAGS", "MODSEQ", "THREADID"})
COLUMNS = {"INTERNALDATE": "internalDate", "RFC822.SIZE": "size", "ENVELOPE": "envelope",
           "BODYSTRUCTURE": "bodystructure", "BODY": "bodystructure",
           "EMAILID": "emailId", "SAVEDATE": "savedDate", "PREVIEW": "preview",
           # not an item: the structure's JSON, whose "offsets" place every part in the source
           "STRUCTURE": "bodystructure"}
BODY_ITEMS = frozenset({"BODY[]", "BINARY[]", "BINARY.SIZE", "RFC822", "RFC822.HEADER", "RFC822.TEXT"})
WHOLE = Section()
HEADER = Section(text="HEADER")
TEXT = Section(text="TEXT")


def _sets_seen(attribute: FetchAttribute) -> bool:
    name = attribute.name
    if name in ("RFC822", "RFC822.TEXT"):
        return True
    return name in ("BODY[]", "BINARY[]") and not attribute.peek


def _needs_little(attribute: FetchAttribute) -> bool:
    """Whether a body item needs only a little of a message: a partial of the whole
    message or of its text, or the top-level header (fields)."""
    section = _section_of(attribute)
    if attribute.name not in ("BODY[]", "RFC822.HEADER", "RFC822", "RFC822.TEXT"):
        return False
    if section.part:
        return False
    if section.text in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        return True
    return attribute.partial is not None and attribute.partial[1] <= PARTIAL_SOURCE


def _section_of(attribute: FetchAttribute) -> Section:
    name = attribute.name
    if name == "RFC822":
        return WHOLE
    if name == "RFC822.HEADER":
        return HEADER
    if name == "RFC822.TEXT":
        return TEXT
    return attribute.section or WHOLE


class Output:
    """Response bytes gathered into large writes, paced by the client's reading."""

    def __init__(self, conn: IMAPConnection) -> None:
        self.conn = conn
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, data: bytes | memoryview) -> None:
        self.parts.append(data)
        self.size += len(data)

    def extend(self, pieces: list[bytes | memoryview]) -> None:
        self.parts.extend(pieces)
        self.size += sum(len(p) for p in pieces)

    async def maybe_flush(self) -> None:
        if self.size >= FLUSH_BYTES:
            await self.flush()

    async def flush(self) -> None:
        if self.parts:
            parts, self.parts, self.size = self.parts, [], 0
            # The transport takes bytes only; slices of a stream's chunks become bytes here.
            self.conn.send_sequence([p if type(p) is bytes else bytes(p) for p in parts])
        await self.conn.writer.writable()


@command("FETCH", SELECTED, uid=True, expunge_after=False)
async def fetch(conn: IMAPConnection, cmd: Any) -> Reply | None:
    box = conn.selected
    args = cmd.args
    attributes = list(args.attributes)
    sections = sum(1 for a in attributes if a.section is not None)
    if sections > conn.factory.max_fetch_sections:
        # Each section of a message is one more copy of (part of) it in the answer.
        return Reply("NO", f"Too many body sections in one FETCH (limit {conn.factory.max_fetch_sections}).",
                     "LIMIT")
    names = {a.name for a in attributes}
    if cmd.uid and "UID" not in names:
        attributes.insert(0, UID_ATTRIBUTE)
    if args.changedsince is not None or "MODSEQ" in names:
        conn.enable_condstore()  # RFC 7162 §3.1: a CONDSTORE-enabling command
        if "MODSEQ" not in names:
            attributes.append(MODSEQ_ATTRIBUTE)
    if args.vanished and "QRESYNC" not in conn.enabled:
        raise Bad("VANISHED needs QRESYNC to be enabled")
    if not cmd.uid and box.msn_beyond(args.sequence):
        raise Bad("Invalid message sequence number")
    ranges = box.index_ranges(args.sequence, cmd.uid)
    if args.vanished:
        await _vanished_earlier(conn, box, args.sequence, args.changedsince)
    indexes: Iterable[int] = box.iter_indexes(ranges)
    if args.changedsince is not None:
        since = args.changedsince
        indexes = [i for i in indexes if box.modseq(i) > since]
    fetcher = Fetcher(conn, box, attributes)
    await fetcher.run(indexes)
    if fetcher.missing:
        return Reply("NO", "Some of the requested messages no longer exist.", "EXPUNGEISSUED")
    return None


async def _vanished_earlier(conn: IMAPConnection, box: Any, sequence: Any, since: int) -> None:
    """`* VANISHED (EARLIER)` for UIDs of the set expunged since `since` (RFC 7162 §3.2.6)."""
    changes = await box.folder.changes(since)
    top = max(box.uid_next - 1, box.uids[-1] if box.uids else 0)
    wanted = sequence.resolve(top)
    if changes.expired:
        gone = absent_ranges(wanted, box.uids)
    else:
        gone = runs(sorted(u for u in changes.deleted if contains(wanted, u) and box.msn(u) is None))
    if gone:
        conn.send(w.vanished(gone, earlier=True))


def absent_ranges(ranges: list[tuple[int, int]], uids: Any) -> list[tuple[int, int]]:
    """The parts of `ranges` holding no uid of the sorted `uids`."""
    out = []
    for lo, hi in ranges:
        i = bisect.bisect_left(uids, lo)
        cur = lo
        while i < len(uids) and uids[i] <= hi:
            if uids[i] > cur:
                out.append((cur, uids[i] - 1))
            cur = uids[i] + 1
            i += 1
        if cur <= hi:
            out.append((cur, hi))
    return out


class Fetcher:
    """One FETCH: what to read, then every message's response in order."""

    def __init__(self, conn: IMAPConnection, box: Any, attributes: list[FetchAttribute]) -> None:
        self.conn = conn
        self.box = box
        self.attributes = attributes
        self.bodies = [a for a in attributes if a.name in BODY_ITEMS]
        # Listing items to read (the size decides how a body is read).
        self.listing = {a.name for a in attributes if a.name in COLUMNS} | (
            {"RFC822.SIZE"} if self.bodies else set()) | (
            {"STRUCTURE"} if any(_section_of(a) != WHOLE for a in self.bodies) else set())
        # Without `s` a body fetch reads without marking (RFC 4314 §4).
        self.sets_seen = box.may(rights.SEEN) and any(_sets_seen(a) for a in self.bodies)
        # Messages above this size are read by range, not whole: any size for items
        # that need only a part of a message (a partial, the header), else SMALL_SOURCE.
        self.whole_limit = PARTIAL_SOURCE if self.bodies and all(map(_needs_little, self.bodies)) \
            else SMALL_SOURCE
        self.condstore = "CONDSTORE" in conn.enabled
        self.missing = 0
        self.seen_now: set[int] = set()
        self.out = Output(conn)
        self._flag_cache: dict[tuple, bytes] = {}
        self._recent_from = box.recent.lowest

    async def run(self, indexes: Iterable[int]) -> None:
        if not self.listing and not self.sets_seen:
            await self._cached_only(indexes)
            return
        indexes = list(indexes)
        if self.sets_seen:
            await self._mark_seen(indexes)
        for start in range(0, len(indexes), QUERY_WINDOW):
            window = indexes[start:start + QUERY_WINDOW]
            rows = await self._rows(window)
            sources = SourceStream(self.box.folder, self._small_messages(window, rows))
            try:
                for i in window:
                    uid = self.box.uids[i]
                    row = rows.get(uid)
                    if row is None:
                        self.missing += 1
                        continue
                    await self._message(i, uid, row, sources)
                    await self.out.maybe_flush()
            finally:
                sources.close()
        await self.out.flush()

    def _small_messages(self, window: list[int], rows: dict[int, dict[str, Any]]) -> list[int]:
        """Uids of the window's messages whose sources are read whole."""
        if not self.bodies:
            return []
        uids, limit = self.box.uids, self.whole_limit
        return [uids[i] for i in window if uids[i] in rows and rows[uids[i]]["RFC822.SIZE"] <= limit]

    # -- items from the mailbox map only: the fast path of UID FETCH 1:* (UID FLAGS)
    async def _cached_only(self, indexes: Iterable[int]) -> None:
        box, out = self.box, self.out
        uids = box.uids
        names = [a.name for a in self.attributes]
        flags_of = self._flags
        if names == ["UID", "FLAGS"]:
            # The hot loop of a client's resync: locals only, lines gathered a batch at a time.
            bits, keywords, rendered = box.flag_bytes(), box.all_keywords(), self._flag_cache
            # Messages from this uid on may be \Recent: _flags tells them apart.
            recent_from = self._recent_from if self._recent_from is not None else 1 << 64
            lines: list[bytes] = []
            for i in indexes:
                uid = uids[i]
                flags = (rendered.get((bits[i], keywords[i])) if uid < recent_from else None) or flags_of(i)
                lines.append(b"* %d FETCH (UID %d FLAGS %s)\r\n" % (i + 1, uid, flags))
                if len(lines) >= LINES_PER_WRITE:
                    out.extend(lines)
                    lines = []
                    if out.size >= FLUSH_BYTES:
                        await out.flush()
            out.extend(lines)
        else:
            for i in indexes:
                out.add(w.fetch_line(i + 1, b" ".join(self._cached(name, i) for name in names)))
                if out.size >= FLUSH_BYTES:
                    await out.flush()
        await out.flush()

    def _flags(self, i: int) -> bytes:
        key: tuple = (self.box.flag_bits(i), self.box.keywords(i))
        if self._recent_from is not None and self.box.uids[i] >= self._recent_from \
                and self.box.uids[i] in self.box.recent:
            key += (True,)  # \Recent to this session
        rendered = self._flag_cache.get(key)
        if rendered is None:
            announce(self.conn, key[1])  # a keyword new to the client: FLAGS first
            rendered = self._flag_cache[key] = w.flag_list(self.box.flags(i))
        return rendered

    def _cached(self, name: str, i: int) -> bytes:
        if name == "UID":
            return b"UID %d" % self.box.uids[i]
        if name == "FLAGS":
            return b"FLAGS " + self._flags(i)
        if name == "THREADID":
            return b"THREADID NIL"
        return b"MODSEQ (%d)" % self.box.modseq(i)

    # -- store calls
    async def _rows(self, window: list[int]) -> dict[int, dict[str, Any]]:
        """The listing items of the window's messages by uid: from the cache, and what
        it lacks from one store query; messages that are gone are left out."""
        box = self.box
        uids = box.uids
        folder_id, validity = box.folder.id, box.uid_validity
        wanted = self.listing
        rows: dict[int, dict[str, Any]] = {}
        missing: list[int] = []
        for i in window:
            uid = uids[i]
            entry = CACHE.get((folder_id, validity, uid))
            if entry is not None and all(k in entry for k in wanted):
                rows[uid] = entry
            else:
                missing.append(uid)
        if not missing:
            return rows
        columns = sorted({COLUMNS[k] for k in wanted})
        _, table = await box.folder.query(["uid", *columns], {"uids": format_ranges(runs(missing))},
                                          sort=[("uid", False)])
        got = table.get("uid", [])
        values = {c: table.get(c, [None] * len(got)) for c in columns}
        for k, uid in enumerate(got):
            key = (folder_id, validity, uid)
            entry = dict(CACHE.get(key) or {})
            for name in wanted:
                value = values[COLUMNS[name]][k]
                if name == "EMAILID" and not value:
                    value = legacy_email_id(folder_id, uid)
                entry[name] = _render(name, value)
            CACHE.put(key, entry)
            rows[uid] = entry
        return rows

    async def _mark_seen(self, indexes: list[int]) -> None:
        box = self.box
        unseen = [box.uids[i] for i in indexes if not box.flag_bits(i) & SEEN]
        if not unseen:
            return
        with box.writing():
            result = await box.folder.set_flags(unseen, "add", ["\\Seen"])
            for change in result.changed:
                box.update(change.uid, change.flags, change.modseq)
        self.seen_now = set(unseen)

    # -- one message
    async def _message(self, i: int, uid: int, row: dict[str, Any], sources: SourceStream) -> None:
        box, out = self.box, self.out
        size = row.get("RFC822.SIZE") or 0
        source: list[Piece] | None = None
        big: BigMessage | None = None
        if self.bodies:
            if size <= self.whole_limit:
                source = await sources.get(uid)
                if source is None:
                    self.missing += 1
                    return
            else:
                big = BigMessage(box.folder, uid, size, row.get("STRUCTURE"))
        line: list[bytes] = [b"* %d FETCH (" % (i + 1)]
        sep = b""
        for attribute in self.attributes:
            name = attribute.name
            line.append(sep)
            sep = b" "
            if name in CACHED:
                line.append(self._cached(name, i))
            elif name == "RFC822.SIZE":
                line.append(b"RFC822.SIZE %d" % size)
            elif name in COLUMNS:
                line.append(row[name])
            elif source is not None:
                line.append(w.fetch_label(attribute) + b" ")
                line.extend(_small_value(attribute, source, row.get("STRUCTURE")))
            else:
                value = await big.value(attribute)  # type: ignore[union-attr]
                line.append(w.fetch_label(attribute) + b" ")
                if isinstance(value, bytes):
                    line.append(value)
                    continue
                # What precedes the streamed literal goes out first.
                out.extend(line)
                line = []
                await out.flush()
                await value.send(self.conn)
        if uid in self.seen_now and not any(a.name == "FLAGS" for a in self.attributes):
            line.append(b" FLAGS " + self._flags(i))
        line.append(b")\r\n")
        out.extend(line)


def _source_map(structure: bytes | None, size: int, source: bytes | None = None) -> Any:
    """Where the parts lie: from the stored structure's offsets, else by mapping
    `source` (None when there is neither)."""
    tree = from_structure(_json(structure)) if structure else None
    if tree is not None and tree.end == size:
        return tree
    if source is None:
        return None
    parts = PartMap()
    parts.feed(source)
    return parts.finish(size)


def _render(name: str, value: Any) -> Any:
    """A listing item as the answer shows it (the size stays an int)."""
    if name == "RFC822.SIZE":
        return value or 0
    if name == "STRUCTURE":
        return value.encode("utf-8", "surrogateescape") if isinstance(value, str) else b""
    if name == "INTERNALDATE":
        return b"INTERNALDATE " + w.date_time(value or 0)
    if name == "SAVEDATE":
        return b"SAVEDATE " + (w.date_time(value) if value is not None else w.NIL)
    if name == "EMAILID":
        return b"EMAILID (" + value.encode("ascii") + b")"
    if name == "PREVIEW":
        return b"PREVIEW " + w.nstring(value)
    if name == "ENVELOPE":
        return b"ENVELOPE " + w.envelope(_json(value))
    if name == "BODYSTRUCTURE":
        return b"BODYSTRUCTURE " + w.body_structure(_json(value), True)
    return b"BODY " + w.body_structure(_json(value), False)


def _json(text: Any) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


# -- section values from a source in memory ------------------------------------------

def _partial(data: Any, partial: tuple[int, int] | None) -> Any:
    if partial is None:
        return data
    origin, length = partial
    return data[origin:origin + length]


def _small_value(attribute: FetchAttribute, source: list[Piece],
                 structure: bytes | None = None) -> list[Piece]:
    """The rendered value of a body item of a message held in memory (as the
    pieces it arrived in), as pieces: a whole-message fetch copies nothing."""
    section = _section_of(attribute)
    name = attribute.name
    whole_message = section == WHOLE and name == "BODY[]" or name == "RFC822"
    if whole_message and attribute.partial is None:
        return [b"{%d}\r\n" % sum(map(len, source)), *map(without_nul, source)]
    whole = b"".join(source)
    if whole_message:
        data = _partial(whole, attribute.partial)
        return [b"{%d}\r\n" % len(data), data]
    if section == WHOLE:
        located: Located | None = Located(0, len(whole))
    else:
        located = locate(_source_map(structure, len(whole), whole), section.part, section.text, section.headers)
    if located is None:
        return [b"0" if name == "BINARY.SIZE" else w.NIL]
    data = whole[located.start:located.end]
    if located.fields is not None:
        data = filter_header(data, located.fields, located.exclude)
    if name in ("BINARY[]", "BINARY.SIZE") and section.part:
        try:
            data = decode_transfer(data, located.encoding)
        except UnknownEncoding:
            raise No("Unknown content transfer encoding.", "UNKNOWN-CTE") from None
    if name == "BINARY.SIZE":
        return [b"%d" % len(data)]
    data = _partial(data, attribute.partial)
    if name == "BINARY[]":
        return [w.literal_header(len(data), b"\x00" in data), data]
    return [w.literal(without_nul(data))]


def without_nul(data: Piece) -> Piece:
    """What a literal (not a literal8) may carry of `data`: NUL becomes 0x80. Memoryview
    pieces of a source hold no NUL (`sources.SourceStream._feed`)."""
    if type(data) is bytes and b"\x00" in data:
        return data.replace(b"\x00", b"\x80")
    return data


# -- big messages: ranged reads, streamed --------------------------------------------

class Streamed:
    """A literal whose content is read from the store while it is written."""

    def __init__(self, message: "BigMessage", start: int, end: int, size: int,
                 encoding: str | None = None, binary: bool = False,
                 skip: int = 0) -> None:
        self.message, self.start, self.end, self.size = message, start, end, size
        self.encoding, self.binary, self.skip = encoding, binary, skip

    async def send(self, conn: IMAPConnection) -> None:
        href = await self.message.href()
        conn.send(w.literal_header(self.size, self.binary))
        decoder = Decoder(self.encoding) if self.encoding else None
        left = self.size
        skip = self.skip
        writer = conn.writer

        def put(data: bytes) -> None:
            nonlocal left, skip
            if skip:
                cut = min(skip, len(data))
                data, skip = data[cut:], skip - cut
            if len(data) > left:
                data = data[:left]
            if not self.binary:
                data = without_nul(data)
            if data:
                left -= len(data)
                conn.send(data)

        def sink(chunk: bytes) -> Any:
            put(decoder.feed(chunk) if decoder is not None else chunk)
            if writer.paused:
                return writer.writable()
            return None
        try:
            await self.message.folder.stream(href, sink, self.start, self.end)
        except Exception as exc:
            # The literal is under way (a damaged source, a store gone meanwhile): only
            # ending the connection keeps the client from taking what follows for it.
            log.error("imap fetch: source of uid %s failed inside its literal: %s", self.message.uid, exc)
            conn.close()
            raise ConnectionError("source failed inside its literal") from exc
        if decoder is not None:
            put(decoder.close())
        if left:
            # The source came short of what the literal promised: the client can
            # no longer be in step with us.
            log.error("imap fetch: source of uid %s ended %d bytes early", self.message.uid, left)
            conn.close()
            raise ConnectionError("source ended early")


class BigMessage:
    """A message too big to hold: its sections are located once, then read by range."""

    def __init__(self, folder: Any, uid: int, size: int, structure: bytes | None = None) -> None:
        self.folder, self.uid, self.size = folder, uid, size
        self._href: str | None = None
        self._map: Any = _source_map(structure, size)

    async def href(self) -> str:
        if self._href is None:
            self._href, size = await self.folder.open_stream(self.uid)
            if size:
                self.size = size
        return self._href

    async def _read(self, start: int, end: int) -> bytes:
        chunks: list[bytes] = []
        await self.folder.stream(await self.href(), chunks.append, start, end)
        return b"".join(chunks)

    async def _locate(self, section: Section) -> Located | None:
        if self._map is None and not section.part and section.text in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT"):
            probe = PartMap()
            probe.feed(await self._read(0, min(self.size, HEADER_PROBE)))
            if probe.root.body_start >= 0 or self.size <= HEADER_PROBE:
                return locate(probe.finish(self.size), (), section.text, section.headers)
        if self._map is None:
            parts = PartMap()

            def feed(chunk: bytes) -> None:
                parts.feed(chunk)
            await self.folder.stream(await self.href(), feed)
            self._map = parts.finish(self.size)
        return locate(self._map, section.part, section.text, section.headers)

    async def value(self, attribute: FetchAttribute) -> "bytes | Streamed":
        name = attribute.name
        section = _section_of(attribute)
        if section == WHOLE:
            located: Located | None = Located(0, self.size)
        else:
            located = await self._locate(section)
        if located is None:
            return b"0" if name == "BINARY.SIZE" else w.NIL
        start, end = located.start, located.end
        binary = name in ("BINARY[]", "BINARY.SIZE")
        decoding = binary and bool(section.part) and located.encoding.upper() not in ("7BIT", "8BIT", "BINARY", "")
        if attribute.partial is not None and located.fields is None and not decoding and name != "BINARY.SIZE":
            # Only the asked-for octets are read.
            origin, count = attribute.partial
            start = min(start + origin, end)
            end = min(start + count, end)
            attribute = FetchAttribute(name, attribute.section, None, attribute.peek)
        if located.fields is not None or (end - start <= SMALL_SOURCE):
            data = await self._read(start, end) if end > start else b""
            if located.fields is not None:
                data = filter_header(data, located.fields, located.exclude)
            if decoding:
                try:
                    data = decode_transfer(data, located.encoding)
                except UnknownEncoding:
                    raise No("Unknown content transfer encoding.", "UNKNOWN-CTE") from None
            if name == "BINARY.SIZE":
                return b"%d" % len(data)
            data = _partial(data, attribute.partial)
            if name == "BINARY[]":
                return w.literal_header(len(data), b"\x00" in data) + data
            return w.literal(without_nul(data))
        if not decoding:
            length = end - start
            if name == "BINARY.SIZE":
                return b"%d" % length
            if attribute.partial is not None:
                origin, count = attribute.partial
                first = start + min(origin, length)
                last = min(first + count, end)
                start, end = first, last
            nul = False
            if name == "BINARY[]":
                nul = await self._has_nul(start, end)
            return Streamed(self, start, end, end - start, binary=nul)
        # A big encoded part: one pass to learn the decoded size, one to send it.
        try:
            decoder = Decoder(located.encoding)
        except UnknownEncoding:
            raise No("Unknown content transfer encoding.", "UNKNOWN-CTE") from None
        decoded = 0
        nul = False

        def count(chunk: bytes) -> None:
            nonlocal decoded, nul
            data = decoder.feed(chunk)
            decoded += len(data)
            nul = nul or b"\x00" in data
        await self.folder.stream(await self.href(), count, start, end)
        tail = decoder.close()
        decoded += len(tail)
        nul = nul or b"\x00" in tail
        if name == "BINARY.SIZE":
            return b"%d" % decoded
        skip, size = 0, decoded
        if attribute.partial is not None:
            origin, count_ = attribute.partial
            skip = min(origin, decoded)
            size = min(count_, decoded - skip)
        return Streamed(self, start, end, size, encoding=located.encoding, binary=nul, skip=skip)

    async def _has_nul(self, start: int, end: int) -> bool:
        found = False

        def look(chunk: bytes) -> None:
            nonlocal found
            found = found or b"\x00" in chunk
        await self.folder.stream(await self.href(), look, start, end)
        return found
