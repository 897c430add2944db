"""COMPRESS=DEFLATE (RFC 4978): raw deflate (RFC 1951) both ways once the tagged OK of
`COMPRESS DEFLATE` is out.

Compression is a layer between the connection and its transport, as TLS is one below
it (`transport.startTLS`): the `ResponseWriter` writes through a `DeflatingTransport`,
which compresses each write, flushes it (Z_SYNC_FLUSH, so the client can read the
answer at once) and hands it to the real transport. The writer stays the real
transport's producer, so a client that stops reading pauses it as before: the
transport's buffer holds compressed octets, and backpressure is unchanged. Input goes
through an `Inflater` that hands the framer at most `INFLATE_CHUNK` octets at a time
and keeps the rest compressed while the framer holds `READ_AHEAD` octets already, so a
small compressed input that inflates to gigabytes never sits in memory.
"""
from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any

from gateways.imap.dispatch import AUTHENTICATED_OR_SELECTED, NOT_AUTHENTICATED, Bad, No, Reply, capability, command

if TYPE_CHECKING:
    from gateways.imap.connection import IMAPConnection

INFLATE_CHUNK = 64 * 1024

capability("COMPRESS=DEFLATE", lambda conn: conn.state != NOT_AUTHENTICATED and conn.inflater is None)


@command("COMPRESS", AUTHENTICATED_OR_SELECTED)
def compress(conn: IMAPConnection, cmd: Any) -> Reply:
    if conn.inflater is not None:
        raise No("Compression is already active.", "COMPRESSIONACTIVE")
    if cmd.args.mechanism != "DEFLATE":
        raise Bad(f"Unknown compression mechanism {cmd.args.mechanism[:40]}")

    def start() -> None:
        # Whatever the client sent after COMPRESS before hearing OK was not compressed
        # as RFC 4978 §3 wants: it is dropped, not read as deflate.
        conn.framer.discard_buffered()
        conn.writer.transport = DeflatingTransport(conn.writer.transport, conn.factory.compress_level)
        conn.inflater = Inflater(conn)
    conn.after_reply(start)
    return Reply("OK", "DEFLATE active")


class DeflatingTransport:
    """The transport as the writer sees it once COMPRESS is on: each write deflated and
    flushed into the real transport; everything else is the real transport's."""

    def __init__(self, transport: Any, level: int) -> None:
        self._transport = transport
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, -15)

    def write(self, data: bytes) -> None:
        self._transport.write(self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH))

    def writeSequence(self, parts: list[bytes]) -> None:
        deflate = self._deflate
        out = [deflate.compress(part) for part in parts]
        out.append(deflate.flush(zlib.Z_SYNC_FLUSH))
        self._transport.writeSequence(out)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class Inflater:
    """The client's compressed octets, inflated into the framer as it takes them."""

    def __init__(self, conn: IMAPConnection) -> None:
        self.conn = conn
        self._inflate = zlib.decompressobj(-15)
        self._pending = b""
        self._running = False

    @property
    def holding(self) -> bool:
        """Compressed input waits for the framer to take what it has."""
        return bool(self._pending)

    def receive(self, data: bytes) -> None:
        self._pending += data
        self.run()

    def run(self) -> None:
        """Inflate while the framer has room, handing each chunk on."""
        if self._running:
            return
        self._running = True
        conn = self.conn
        try:
            while self._pending and not conn.closed and conn.framer_has_room():
                try:
                    plain = self._inflate.decompress(self._pending, INFLATE_CHUNK)
                except zlib.error:
                    conn.send(b"* BYE Invalid compressed data\r\n")
                    conn.close()
                    return
                self._pending = self._inflate.unconsumed_tail
                if plain:
                    conn.feed_plain(plain)
        finally:
            self._running = False
