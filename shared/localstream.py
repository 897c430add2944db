"""Reading an opened stream from the blob files themselves, on the store's host.

A store server on this host (reached over its UNIX socket) names the blob files
of an `openStream` when asked (`localPaths`). Reading them here spares the
server a file read, a socket write and an HTTP response per chunk, and us a
socket read and its parsing: for bulk downloads that is most of the work. What
may be read was decided by the store (the stream is only opened for items the
session may read); the paths only say where the bytes are.

Files are opened and read as the server reads its own (`shared.spans`): from the
page cache on the reactor when it holds the bytes, else in a thread. Whatever
goes wrong with a file (a permission the gateway's user lacks, a blob removed
meanwhile) hands the rest of the stream back to the href, which answers as it
always does.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IConsumer, IPushProducer
from twisted.internet.threads import deferToThreadPool
from zope.interface import implementer

from shared.errors import BlobDamaged
from shared.httpconn import StreamStopped
from shared.pacing import PauseGate
from shared.spans import Layout, SpanReader

CHUNK = 256 * 1024


class StreamHref(str):
    """An openStream href that also knows its blob files (when the store named them)."""

    paths: list[str]
    sizes: list[int]

    def __new__(cls, href: str, paths: list[str], sizes: list[int]) -> "StreamHref":
        self = super().__new__(cls, href)
        self.paths, self.sizes = paths, sizes
        self._layout: Layout | None = None
        return self

    def layout(self) -> Layout:
        """The files back to back, worked out once for all ranged reads."""
        if self._layout is None:
            self._layout = Layout(list(zip(self.paths, self.sizes)))
        return self._layout


class FileTrouble(Exception):
    """A blob file could not be read here; the href has to serve the rest."""


def _open_file(path: str) -> Any:
    return open(path, "rb")


def _file_opener(keyring: Any) -> Callable[[str], Any]:
    """Opens the store's blob files: sealed ones (encrypted blobs) with `keyring`."""
    if keyring is None:
        return _open_file
    from shared.sealed import open_sealed_file
    return lambda path: open_sealed_file(path, keyring)


@implementer(IPushProducer)
class LocalStream:
    """Delivers `[start:end]` of a StreamHref's files to an IConsumer or a callback,
    paced like a stream from the socket (a callback returning a Deferred is waited for)."""

    def __init__(self, reactor: Any, href: StreamHref, target: IConsumer | Callable[[bytes], Any],
                 start: int | None, end: int | None, keyring: Any = None) -> None:
        self.reactor = reactor
        layout = href.layout()
        first = min(max(0, start or 0), layout.size)
        last = layout.size if end is None else min(max(end, first), layout.size)
        self.reader = SpanReader(_file_opener(keyring), layout, first, last - first)
        self.first = first
        self.delivered = 0
        self.consumer = target if IConsumer.providedBy(target) else None
        self.callback = None if self.consumer is not None else target
        self.gate = PauseGate()
        self.stopped = False

    async def run(self) -> int:
        """Fires with the bytes delivered; FileTrouble (with `delivered`) hands over to the href."""
        reader = self.reader
        if self.consumer is not None:
            self.consumer.registerProducer(self, True)
        try:
            while reader.remaining > 0:
                await self._unpaused()
                try:
                    # A piece per blob: a reader that cuts messages apart gets them whole.
                    pieces = reader.read_cached_pieces(CHUNK)
                    if not pieces:
                        pieces = [await deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                                                          reader.read, CHUNK)]
                except (OSError, EOFError, BlobDamaged) as exc:
                    # A damaged blob too: the store answers it, and logs it, as its error.
                    raise FileTrouble(str(exc)) from exc
                for k, data in enumerate(pieces):
                    if k:
                        await self._unpaused()
                    self.delivered += len(data)
                    if self.consumer is not None:
                        self.consumer.write(data)
                    else:
                        result = self.callback(data)  # type: ignore[misc]
                        if isinstance(result, defer.Deferred):
                            await result
        finally:
            reader.close()
            if self.consumer is not None:
                self.consumer.unregisterProducer()
        return self.delivered

    async def _unpaused(self) -> None:
        await self.gate.wait()
        if self.stopped:
            raise StreamStopped("consumer stopped the stream")

    # -- IPushProducer, seen by the consumer
    def pauseProducing(self) -> None:
        self.gate.pause()

    def resumeProducing(self) -> None:
        self.gate.resume()

    def stopProducing(self) -> None:
        self.stopped = True
        self.gate.resume()
