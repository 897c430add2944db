"""Message bytes on the POP3 wire: CRLF line ends and dot-stuffing (RFC 1939 §3), streamed.

`DotStuffer` is an IConsumer between the store's stream and the client's transport:
it passes the producer through (so a slow client slows the store read) and keeps
the little state a transformation needs across chunk boundaries.
"""
from __future__ import annotations

import re
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IConsumer, IPushProducer
from zope.interface import implementer

from shared.pacing import PauseGate

_BARE_LF = re.compile(rb"(?<!\r)\n")


@implementer(IConsumer)
class DotStuffer:
    """Writes a message to `transport` with bare LF turned into CRLF and a dot
    doubled at the start of every line. With `top` set, stops after the header
    and that many body lines (TOP); the rest of the stream is read and dropped."""

    def __init__(self, transport: Any, top: int | None = None) -> None:
        self.transport = transport
        self.at_line_start = True
        self.last_cr = False
        self.top = top
        self.in_body = False
        self.body_lines = 0
        self.line = b""  # the first bytes of the current source line, for TOP
        self.done = False
        self.sent_any = False
        self.ends_with_lf = False

    # IConsumer
    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.transport.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self.transport.unregisterProducer()

    def write(self, chunk: bytes) -> None:
        if self.done or not chunk:
            return
        if self.top is not None:
            chunk = self._cut(chunk)
            if not chunk:
                return
        out = self.crlf(chunk)
        out = out.replace(b"\n.", b"\n..")
        if self.at_line_start and out.startswith(b"."):
            out = b"." + out
        self.at_line_start = out.endswith(b"\n")
        self.ends_with_lf = self.at_line_start
        self.sent_any = True
        self.transport.write(out)

    def crlf(self, chunk: bytes) -> bytes:
        if self.last_cr and chunk.startswith(b"\n"):
            out = b"\n" + _BARE_LF.sub(b"\r\n", chunk[1:])
        else:
            out = _BARE_LF.sub(b"\r\n", chunk)
        self.last_cr = chunk.endswith(b"\r")
        return out

    def _cut(self, chunk: bytes) -> bytes:
        """The part of `chunk` TOP still sends: the header, its blank line, N body lines."""
        pos = 0
        while True:
            nl = chunk.find(b"\n", pos)
            if nl < 0:
                self.line = (self.line + chunk[pos:])[:2]
                return chunk
            blank = (self.line + chunk[pos:nl])[:2] in (b"", b"\r")
            self.line = b""
            pos = nl + 1
            if self.in_body:
                self.body_lines += 1
                if self.body_lines >= self.top:  # type: ignore[operator]
                    self.done = True
                    return chunk[:pos]
            elif blank:
                self.in_body = True
                if self.top == 0:
                    self.done = True
                    return chunk[:pos]

    def terminator(self) -> bytes:
        """The end-of-message line, completing a last line that had no line end."""
        if not self.sent_any or self.ends_with_lf:
            return b".\r\n"
        return b"\n.\r\n" if self.last_cr else b"\r\n.\r\n"


@implementer(IPushProducer)
class DrainWaiter:
    """Held on the transport while a command writes a whole message at once.

    The transport pauses it once its buffer passes the high-water mark; `drained()`
    then waits until the client has read that, so a client that pipelines RETRs
    without reading cannot pile messages up in our memory.
    """

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.gate = PauseGate()
        transport.registerProducer(self, True)

    def pauseProducing(self) -> None:
        self.gate.pause()

    def resumeProducing(self) -> None:
        self.gate.resume()

    def stopProducing(self) -> None:
        self.gate.resume()  # the connection is gone: nothing left to wait for

    def drained(self) -> defer.Deferred:
        """Fires once the client has read what was written; the waiter is then released."""
        d = self.gate.wait()

        def release(result: Any) -> Any:
            self.transport.unregisterProducer()
            return result
        return d.addBoth(release)
