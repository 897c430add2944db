"""Everything the IMAP gateway writes to a client goes through one `ResponseWriter`.

The writer is the transport's registered streaming producer: when the client
stops reading and the transport's buffer passes its limit (64 KB for TCP), the
transport pauses the writer, and the connection stops reading commands until it
resumes. So a client that pipelines commands but never reads their answers costs
a bounded amount of memory.

For long answers (FETCH over many messages) a command awaits `writable()` between
chunks. A streamed message source registers with the writer as with any
IConsumer (`registerProducer`); the writer passes pauses on to it, because the
transport itself has only one producer slot and the writer holds it.
"""
from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IConsumer, IPushProducer
from zope.interface import implementer


@implementer(IPushProducer, IConsumer)
class ResponseWriter:
    def __init__(self, transport: Any, on_pause: Any = None, on_resume: Any = None) -> None:
        self.transport = transport
        self.paused = False
        self.closed = False
        self.written = 0
        self._waiters: list[defer.Deferred] = []
        self._stream: Any = None
        self._on_pause = on_pause
        self._on_resume = on_resume
        transport.registerProducer(self, True)

    def write(self, data: bytes) -> None:
        """Hand bytes to the transport (which may pause us in return)."""
        if not self.closed and data:
            self.written += len(data)
            self.transport.write(data)

    def write_sequence(self, parts: list[bytes]) -> None:
        """Hand several pieces to the transport at once; it joins them as it sends,
        so gathering them first would copy every byte once more."""
        if not self.closed and parts:
            self.written += sum(map(len, parts))
            self.transport.writeSequence(parts)

    def writable(self) -> defer.Deferred:
        """Fires once the client has taken enough that writing more is fair;
        fails with ConnectionDone if the connection goes first."""
        if self.closed:
            return defer.fail(ConnectionDone("connection closed"))
        if not self.paused:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._waiters.append(d)
        return d

    # -- IPushProducer: called by the transport
    def pauseProducing(self) -> None:
        if self.paused:
            return
        self.paused = True
        if self._stream is not None:
            self._stream.pauseProducing()
        if self._on_pause is not None:
            self._on_pause()

    def resumeProducing(self) -> None:
        if not self.paused or self.closed:
            return
        self.paused = False
        if self._stream is not None:
            self._stream.resumeProducing()
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            if self.paused:
                self._waiters.append(d)  # paused again by an earlier waiter's writes
            else:
                d.callback(None)
        if self._on_resume is not None and not self.paused:
            self._on_resume()

    def stopProducing(self) -> None:
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stopProducing()
            except Exception:  # noqa: BLE001  (already finished)
                pass
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.errback(ConnectionDone("connection closed"))

    # -- IConsumer: a streamed source writes through us
    def registerProducer(self, producer: Any, streaming: bool) -> None:
        if not streaming:
            raise ValueError("only streaming (push) producers can write to an IMAP client")
        self._stream = producer
        if self.paused:
            producer.pauseProducing()

    def unregisterProducer(self) -> None:
        self._stream = None
