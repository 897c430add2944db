"""The HTTP(S) site of the CalDAV gateway: request bodies bounded before they are read,
idle connections closed, connections per address counted."""
from __future__ import annotations

import logging
from typing import Any

from twisted.web import resource, server

log = logging.getLogger("gateways.caldav")


class LimitedRequest(server.Request):
    """Refuses a body longer than the site's limit before reading it: by Content-Length
    when given, else while chunks arrive."""

    _too_large = False
    _received = 0

    def _limit(self) -> int:
        return self.channel.site.max_request_size

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self._limit():
            self._refuse()
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._too_large:
            return
        self._received += len(data)
        if self._received > self._limit():
            self._refuse()
            return
        super().handleContentChunk(data)

    def _refuse(self) -> None:
        if self._too_large:
            return
        self._too_large = True
        log.info("caldav: request body over %d bytes refused from %s", self._limit(),
                 self.getClientAddress().host)
        transport = self.channel.transport
        transport.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: text/plain\r\n"
                        b"Content-Length: 18\r\nConnection: close\r\n\r\nrequest too large\n")
        transport.loseConnection()

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._too_large:
            return
        super().requestReceived(command, path, version)


class CalDAVSite(server.Site):
    """The HTTP(S) site: bodies bounded (LimitedRequest), idle connections closed after
    `timeout` seconds, connections per address counted by `limits` (shared.connlimits)."""

    requestFactory = LimitedRequest

    def __init__(self, root: resource.Resource, max_request_size: int, timeout: float = 60,
                 limits: Any = None, retry_after: int = 30) -> None:
        super().__init__(root, timeout=timeout or None)
        self.max_request_size = max_request_size
        self.displayTracebacks = False
        self.limits = limits
        text = "too many connections from your address, try again later\n"
        self.refusal = (f"HTTP/1.1 503 Service Unavailable\r\nRetry-After: {retry_after}\r\n"
                        f"Content-Type: text/plain\r\nContent-Length: {len(text)}\r\nConnection: close\r\n\r\n"
                        f"{text}").encode("ascii")

    def buildProtocol(self, addr: Any) -> Any:
        if self.limits is None:
            return super().buildProtocol(addr)
        return self.limits.connection(self, super().buildProtocol, addr, self.refusal, "caldav")

    def log(self, request: Any) -> None:
        """No access log of our own: Radicale already logs each request."""
