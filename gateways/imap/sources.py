"""The sources of a FETCH's small messages, read from the store in order.

One `openStream` names up to `STREAM_MESSAGES` messages (the store's own limit
per call), back to back. Its body is read in ranges of `RANGE_BYTES` and cut into
messages by the sizes the store announced, as the bytes arrive: the first
message of a range can be written to the client while the rest of the range is
still on its way, and no batch is gathered and joined first.

Memory stays bounded per FETCH: the next range is asked for only while fewer than
`READ_AHEAD` bytes of complete sources wait to be taken, and a range request
never waits on the client, so a client that stops reading holds no store
connection (connections are shared by every session of the gateway process).

A message expunged by another session between `openStream` and its read cuts
the stream short (as does a stream token the store has since dropped): the rest
is opened again, and the gone message is reported missing, which the FETCH
answers with EXPUNGEISSUED.
"""
from __future__ import annotations

import collections
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

from shared.errors import NotFound, Unavailable
from shared.httpconn import ConnectionGone

STREAM_MESSAGES = 1000  # the store's limit per openStream
RANGE_BYTES = 4 * 1024 * 1024  # bytes per ranged read of a stream
READ_AHEAD = 4 * 1024 * 1024  # complete sources held before reading more
# Reads of a stream cut short (messages expunged meanwhile) before giving up.
STREAM_ATTEMPTS = 5

Piece = bytes | memoryview


class StreamShort(ConnectionGone):
    """The store's stream ended before every announced source was read."""


class SourceStream:
    """Sources of messages (uid order) as lists of pieces, read ahead of the caller.

    `get(uid)` must be called in the order of `uids`; it fires with the
    message's pieces, or None when the store no longer has it."""

    def __init__(self, folder: Any, uids: list[int]) -> None:
        self.folder = folder
        self.order = uids
        self.wanted = set(uids)
        self.ready: dict[int, list[Piece]] = {}
        self.ready_bytes = 0
        self.gone: set[int] = set()
        self.failure: Failure | None = None
        self.finished = False
        self.closed = False
        self.reader: defer.Deferred | None = None
        self.waiter: defer.Deferred | None = None  # get() waiting for a source
        self.room: defer.Deferred | None = None  # the reader waiting for get() to take
        # The stream being cut: its messages still to complete, and the current one.
        self.queue: collections.deque[tuple[int, int]] = collections.deque()
        self.parts: list[Piece] = []
        self.left = 0

    async def get(self, uid: int) -> list[Piece] | None:
        if uid not in self.wanted:
            return None
        if self.reader is None:
            self.reader = defer.ensureDeferred(self._read_all()).addBoth(self._ended)
        while uid not in self.ready:
            if self.failure is not None:
                self.failure.raiseException()
            if uid in self.gone or self.finished:
                self.wanted.discard(uid)
                return None
            self._make_room()  # the caller waits: the reader must go on
            self.waiter = defer.Deferred()
            await self.waiter
        self.wanted.discard(uid)
        parts = self.ready.pop(uid)
        self.ready_bytes -= sum(map(len, parts))
        if self.ready_bytes < READ_AHEAD:
            self._make_room()
        return parts

    def close(self) -> None:
        """Stop reading; sources not taken are dropped."""
        self.closed = True
        self.ready.clear()
        self.ready_bytes = 0
        self._make_room()

    # -- the reader
    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None:
            waiter.callback(None)

    def _make_room(self) -> None:
        room, self.room = self.room, None
        if room is not None:
            room.callback(None)

    def _ended(self, result: Any) -> None:
        if isinstance(result, Failure) and not self.closed:
            self.failure = result
        self.finished = True
        self._wake()

    async def _read_all(self) -> None:
        for start in range(0, len(self.order), STREAM_MESSAGES):
            if self.closed:
                return
            await self._read_batch(self.order[start:start + STREAM_MESSAGES])

    async def _read_batch(self, uids: list[int]) -> None:
        for attempt in range(STREAM_ATTEMPTS):
            href, parts = await self.folder.open_sources(uids)
            found = {uid for uid, _ in parts}
            self.gone.update(uid for uid in uids if uid not in found)
            self._wake()
            self._begin(parts)
            try:
                await self._read_stream(href, sum(size for _, size in parts))
                return
            except (Unavailable, ConnectionGone, ConnectionError, NotFound):
                # Cut short: a message expunged meanwhile, or the token dropped. Opened
                # again, the rest of the batch leaves out what is gone. A store that is
                # really down fails to open.
                if self.closed or attempt == STREAM_ATTEMPTS - 1:
                    raise
                uids = [uid for uid, _ in self.queue]
                if not uids:
                    return

    async def _read_stream(self, href: str, size: int) -> None:
        offset = 0
        while offset < size and not self.closed:
            if self.ready_bytes >= READ_AHEAD:
                self.room = defer.Deferred()
                await self.room
                continue
            end = min(size, offset + RANGE_BYTES)
            got = await self.folder.stream(href, self._feed, offset, end)
            if got != end - offset:
                raise StreamShort(f"stream gave {got} of {end - offset} bytes")
            offset = end

    def _begin(self, parts: list[tuple[int, int]]) -> None:
        self.queue = collections.deque(parts)
        self.parts = []
        self._next_message()

    def _next_message(self) -> None:
        """Move on to the next message of the stream (empty ones complete at once)."""
        while self.queue:
            uid, size = self.queue[0]
            if size:
                self.left = size
                return
            self._complete([])
        self.left = 0

    def _complete(self, parts: list[Piece]) -> None:
        uid, size = self.queue.popleft()
        self.parts = []
        if self.closed:
            return
        self.ready[uid] = parts
        self.ready_bytes += size
        self._wake()

    def _feed(self, chunk: bytes) -> None:
        """Cut a chunk of the stream into the sources it belongs to: slices, not copies,
        except of a chunk holding NUL octets, whose pieces are bytes. So a memoryview
        piece holds no NUL, which `fetch.without_nul` need not look for."""
        pos, n = 0, len(chunk)
        view: memoryview | None = None
        slices_as_bytes = b"\x00" in chunk
        while pos < n:
            if not self.queue:
                raise StreamShort("stream longer than its announced sources")
            take = min(self.left, n - pos)
            if take == n:
                self.parts.append(chunk)
            else:
                if view is None:
                    view = memoryview(chunk)
                self.parts.append(chunk[pos:pos + take] if slices_as_bytes else view[pos:pos + take])
            pos += take
            self.left -= take
            if not self.left:
                self._complete(self.parts)
                self._next_message()
