"""The store server's HTTP face: SOAP endpoint, WSDL, stream and upload side channel.

    POST /soap           SOAP 1.1 document/literal (server.soap.dispatch)
    GET  /soap?wsdl      the contract, soap:address pointing back at this host
    GET  /stream/<token> an item's raw bytes, Range-aware, streamed from the blob store,
                         to the session that opened it (X-Session-Id)
    PUT  /upload         raw message bytes spooled to disk -> 201 + uploadId

Request bodies are limited before they are read: a declared Content-Length over
the limit is answered 413 right after the headers, a chunked body is counted
and cut off, and neither is ever held in memory. A request that does not name a
live session in its `X-Session-Id` header before the body (a logon, or anyone's
guess) gets the small limit `max_soap_size_before_logon`, so a stranger cannot make
the server read, hold or parse a large document.
"""
from __future__ import annotations

import io
import logging
import os
import re
import tempfile
from importlib import resources
from typing import Any, BinaryIO

from twisted.internet.defer import CancelledError, ensureDeferred
from twisted.internet.interfaces import IPushProducer, ISSLTransport
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel, RESPONSES
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from zope.interface import implementer

from server.caller_rights import peer_uid
from server.sessions import Stream
from server.soap.context import Services
from server.soap.dispatch import dispatch
from server.soap.streams import lookup_stream, register_upload
from server.storage.engine import is_storage_full
from shared.authguard import LOCAL
from shared.codec import fault
from shared.errors import BadRequest, BlobDamaged, GroupwareError, Internal, NotFound, SessionInvalid, StorageFull, TooLarge
from shared.metrics import ReadinessResource
from shared.spans import SpanReader

log = logging.getLogger(__name__)

SOAP_PATH = b"/soap"
UPLOAD_PATH = b"/upload"
STREAM_PREFIX = b"/stream/"
XML = b"text/xml; charset=utf-8"
# Bytes a stream reads per thread hop: fewer hops make a bulk download about a
# third faster than 64 KB, and a stream still holds only one chunk at a time.
CHUNK = 256 * 1024
# After refusing a body, keep reading (and dropping) it for a while so the
# client gets to read our answer instead of a connection reset.
LINGER_SECONDS = 5.0
LINGER_BYTES = 256 * 1024 * 1024
# SOAP bodies up to this size are held in memory (Twisted's own bound is 100 KB): one with
# an inline message (inline_source_limit, in base64) would otherwise cost a temporary file.
IN_MEMORY_BODY = 2 * 1024 * 1024
WSDL_ADDRESS = b"http://localhost/soap"
_HOST = re.compile(rb"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


def _peer(request: Request) -> str:
    address = request.getClientAddress()
    host = getattr(address, "host", None)
    return f"{host}:{address.port}" if host else LOCAL


class StoreChannel(HTTPChannel):
    """HTTP/1.1 connection that enforces body limits before any body is read."""

    site: "StoreSite"
    # The uid of a UNIX socket peer (None over TCP): what the delivery right rests on.
    peer_uid: int | None = None
    _refused = False
    _discarded = 0
    _linger = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self.peer_uid = peer_uid(self.transport)
        # A blob chunk (CHUNK) in one send, not two of Twisted's 128 KB.
        self.transport.SEND_LIMIT = CHUNK

    def allHeadersReceived(self) -> None:
        request = self.requests[-1]
        path = self._path.split(b"?", 1)[0]
        upload = path == UPLOAD_PATH and self._command == b"PUT"
        services = self.site.services
        # Nobody makes us read megabytes without a live session, named in X-Session-Id
        # before the body: without one a request gets the small limit of a logon.
        session = services.sessions.is_valid(_header(request, b"X-Session-Id"))
        if upload:
            request.body_limit = services.limits.max_message_size
        elif session and path == SOAP_PATH:
            request.body_limit = self.site.max_soap_size
        else:
            request.body_limit = min(self.site.max_soap_size, self.site.max_soap_size_before_logon)
        request.without_session = not session
        if self.length is not None and self.length > request.body_limit:
            self.refuse(413, request.too_large())
            return
        if upload:
            if self.length is None:
                self.refuse(411, BadRequest("uploads need a Content-Length"))
                return
            if not session:
                self.refuse(403, SessionInvalid("unknown or expired session"))
                return
            request.spool_dir = services.spool_dir
        super().allHeadersReceived()

    def refuse(self, status: int, error: GroupwareError) -> None:
        """Answer now, drop the rest of the body, then close."""
        if self._refused:
            return
        self._refused = True
        body = fault(error)
        head = (b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                % (status, RESPONSES.get(status, b"Error"), XML, len(body)))
        self.setTimeout(None)
        self.transport.write(head + body)
        self.setRawMode()
        # Closing while the client still sends would reset the connection and
        # could destroy our answer before it is read; so half-close where the
        # transport can (TCP, UNIX), drain, and cut off only a client that
        # keeps sending past the linger limits.
        self._linger = self.callLater(LINGER_SECONDS, self.transport.abortConnection)
        # Under TLS the attribute lookup would reach the raw socket beneath
        # and half-close it behind the TLS layer's back.
        if not ISSLTransport.providedBy(self.transport):
            self.transport.loseWriteConnection()

    def _drain(self, data: bytes) -> None:
        self._discarded += len(data)
        if self._discarded > LINGER_BYTES:
            self.transport.abortConnection()

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            self._drain(data)
        else:
            super().dataReceived(data)

    def rawDataReceived(self, data: bytes) -> None:
        if self._refused:
            self._drain(data)
        else:
            super().rawDataReceived(data)

    def allContentReceived(self) -> None:
        if not self._refused:
            super().allContentReceived()

    def connectionLost(self, reason: Failure) -> None:
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        super().connectionLost(reason)


class StoreRequest(Request):
    """Counts body bytes (chunked bodies have no declared length) and spools uploads to a named file."""

    body_limit = 0
    without_session = True  # no live session named in X-Session-Id
    spool_dir: str | None = None
    spool_path: str | None = None
    _received = 0

    def gotLength(self, length: int | None) -> None:
        if self.spool_dir is None:
            if length is not None and length <= IN_MEMORY_BODY:
                self.content = io.BytesIO()
            else:
                super().gotLength(length)
            return
        fd, self.spool_path = tempfile.mkstemp(prefix="upload-", dir=self.spool_dir)
        self.content = os.fdopen(fd, "w+b")

    def handleContentChunk(self, data: bytes) -> None:
        if self.channel is None or self.channel._refused:
            return
        self._received += len(data)
        if self._received > self.body_limit:
            self.channel.refuse(413, self.too_large())
            return
        try:
            super().handleContentChunk(data)
        except OSError as err:
            # The spool's disk is full (or failing): the upload is refused and nothing of it kept.
            self._discard_spool()
            if is_storage_full(err):
                log.error("upload from %s: the spool's disk is full: %s", _peer(self), err)
                self.channel.refuse(507, StorageFull("the store's disk is full"))
            else:
                log.error("upload from %s: spooling failed: %s", _peer(self), err)
                self.channel.refuse(500, Internal("internal server error"))

    def too_large(self) -> TooLarge:
        note = " without a session (X-Session-Id)" if self.without_session else ""
        return TooLarge(f"request body exceeds {self.body_limit} bytes{note}")

    def take_spool(self) -> str | None:
        """Hand the spooled body file over to the caller, who must remove it."""
        path, self.spool_path = self.spool_path, None
        if self.content is not None:
            self.content.close()
        return path

    def _discard_spool(self) -> None:
        path = self.take_spool()
        if path is not None:
            try:
                os.unlink(path)
            except OSError:
                pass

    def finish(self) -> None:
        self._discard_spool()
        super().finish()

    def connectionLost(self, reason: Failure) -> None:
        self._discard_spool()
        super().connectionLost(reason)


def _header(request: Request, name: bytes) -> str | None:
    value = request.getHeader(name)
    return value.decode("latin-1").strip() if value is not None else None


def _send(request: Request, status: int, body: bytes, content_type: bytes = XML) -> None:
    if request.finished or request.channel is None:
        return
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", content_type)
    request.setHeader(b"Content-Length", b"%d" % len(body))
    request.write(body)
    request.finish()


def _fault_status(error: GroupwareError) -> int:
    return {"sessionInvalid": 403, "notFound": 404, "tooLarge": 413, "unavailable": 503,
            "storageFull": 507}.get(error.code, 500)


class SoapResource(Resource):
    isLeaf = True

    def __init__(self, site: "StoreSite") -> None:
        super().__init__()
        self.site = site

    def render_POST(self, request: Request) -> Any:
        services = self.site.services
        content = request.content
        uid = request.channel.peer_uid if request.channel is not None else None
        if hasattr(content, "getvalue"):
            data = content.getvalue()
            answer = dispatch(services, data, _peer(request), uid)
        else:
            # Twisted spooled a large body to a temporary file: read it off the reactor.
            answer = services.run(_read_all, content).addCallback(
                lambda data: dispatch(services, data, _peer(request), uid))
        # The client hung up (e.g. during a long poll): stop waiting for it.
        request.notifyFinish().addErrback(lambda _: answer.cancel())
        answer.addCallback(lambda result: _send(request, result[0], result[1]))
        answer.addErrback(self._failed, request)
        return NOT_DONE_YET

    def render_GET(self, request: Request) -> bytes:
        query = request.uri.partition(b"?")[2].lower()
        if not any(part.split(b"=", 1)[0] == b"wsdl" for part in query.split(b"&")):
            request.setResponseCode(405)
            request.setHeader(b"Allow", b"POST")
            return b""
        host = request.getHeader(b"Host") or b"localhost"
        if not _HOST.match(host):
            host = b"localhost"
        scheme = b"https" if request.isSecure() else b"http"
        body = self.site.wsdl.replace(WSDL_ADDRESS, scheme + b"://" + host + SOAP_PATH)
        request.setHeader(b"Content-Type", XML)
        return body

    @staticmethod
    def _failed(failure: Failure, request: Request) -> None:
        if failure.check(CancelledError):
            return
        log.error("SOAP request failed: %s", failure.getTraceback())
        _send(request, 500, fault(GroupwareError("internal server error")))


def _read_all(fp: BinaryIO) -> bytes:
    fp.seek(0)
    return fp.read()


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte for a single `bytes=` range; None to send everything.

    Raises ValueError for a range that cannot be satisfied (-> 416).
    Multi-range and malformed headers are ignored, as RFC 9110 section 14.2 allows.
    """
    if not header:
        return None
    match = _RANGE.match(header)
    if not match or not (match.group(1) or match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise ValueError("empty suffix range")
        return max(0, size - suffix), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise ValueError("range starts past the end")
    return start, min(end, size - 1)


@implementer(IPushProducer)
class BlobSender:
    """Streams a byte range of one or more blobs, back to back, to a request.

    Each step sends up to CHUNK bytes: read on the reactor from the page cache when
    it holds them (`SpanReader.read_cached`, which never waits on the disk), else
    in one thread-pool call that also opens the next blobs. While the transport's
    buffer is full (pauseProducing) at most one chunk read in the pool is held, no
    further, so memory stays flat however large the blobs are, on every backend.
    """

    def __init__(self, request: Request, services: Services, stream: Stream, start: int, length: int) -> None:
        self.request = request
        self.run = services.run
        self.reader = SpanReader(services.storage.blobs.open, stream, start, length)
        self.paused = False
        self.reading = False
        self.done = False
        self.ahead: bytes | None = None

    def begin(self, first: bytes = b"") -> None:
        """Send `first` (read before the answer started), then the rest."""
        self.request.registerProducer(self, True)
        self.request.notifyFinish().addErrback(lambda _: self.stopProducing())
        if first:
            self.request.write(first)
        self._next()

    def _next(self) -> None:
        # Writing pauses us as soon as the transport holds more than its buffer
        # size, so this loop usually sends one chunk per call.
        while not (self.reading or self.done or self.paused or self.ahead is not None):
            reader = self.reader
            if reader.remaining <= 0:
                self._finish()
                return
            try:
                data = reader.read_cached(CHUNK)
            except Exception:  # noqa: BLE001  (a blob that went away: as in the pool)
                self._failed(Failure())
                return
            if not data:
                self.reading = True
                self.run(reader.read, CHUNK).addCallbacks(self._got, self._failed)
                return
            self.request.write(data)

    def _got(self, data: bytes) -> None:
        self.reading = False
        if self.done:
            self._close()
            return
        if not data:
            self._failed(Failure(EOFError("stream ended early")))
            return
        if self.paused:
            self.ahead = data
            return
        self.request.write(data)
        self._next()

    def _finish(self) -> None:
        self.done = True
        self._close()
        self.request.unregisterProducer()
        self.request.finish()

    def _failed(self, failure: Failure) -> None:
        self.reading = False
        log.error("streaming blobs failed: %s", failure.getErrorMessage())
        self.done = True
        self._close()
        if self.request.channel is not None and not self.request.startedWriting \
                and failure.check(BlobDamaged):
            # Nothing sent yet: the damaged blob is answered as the store's error.
            self.request.unregisterProducer()
            self.request.responseHeaders.removeHeader(b"Content-Range")
            _send(self.request, _fault_status(failure.value), fault(failure.value))
            return
        # Headers (with Content-Length) are already out: only cutting the
        # connection tells the client the body is incomplete.
        if self.request.channel is not None:
            self.request.unregisterProducer()
            self.request.channel.transport.abortConnection()

    def _close(self) -> None:
        if not self.reading and self.reader.open:
            self.run(self.reader.close)

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        if self.ahead is not None and not self.done:
            data, self.ahead = self.ahead, None
            self.request.write(data)
        self._next()

    def stopProducing(self) -> None:
        self.done = True
        if not self.reading:
            self._close()


class StreamResource(Resource):
    isLeaf = True

    def __init__(self, site: "StoreSite") -> None:
        super().__init__()
        self.site = site

    def render_GET(self, request: Request) -> Any:
        services = self.site.services
        token = request.postpath[0].decode("ascii", "replace") if len(request.postpath) == 1 else ""
        d = ensureDeferred(lookup_stream(services, token, _header(request, b"X-Session-Id")))
        d.addCallback(self._send_stream, request)
        d.addErrback(self._not_sent, request)
        return NOT_DONE_YET

    @staticmethod
    def _not_sent(failure: Failure, request: Request) -> None:
        if failure.check(NotFound):
            _send(request, 404, fault(failure.value))
        elif failure.check(GroupwareError):
            _send(request, _fault_status(failure.value), fault(failure.value))
        else:
            SoapResource._failed(failure, request)

    def _send_stream(self, stream: Any, request: Request) -> None:
        if request.finished or request.channel is None:
            return
        services = self.site.services
        size = stream.size
        try:
            wanted = parse_range(_header(request, b"Range"), size)
        except ValueError:
            request.setHeader(b"Content-Range", b"bytes */%d" % size)
            _send(request, 416, b"", b"text/plain")
            return
        start, end = wanted if wanted is not None else (0, size - 1)
        length = end - start + 1 if size else 0
        content_range = b"bytes %d-%d/%d" % (start, end, size) if wanted is not None else None
        if request.method == b"HEAD" or length == 0:
            self._answer(request, length, content_range)
            request.finish()
            return
        sender = BlobSender(request, services, stream, start, length)

        def send(first: bytes) -> None:
            if request.finished or request.channel is None:
                sender.stopProducing()
                return
            self._answer(request, length, content_range)
            sender.begin(first)

        def not_sent(failure: Failure) -> None:
            sender.stopProducing()
            self._not_sent(failure, request)
        # The first chunk is read before the answer starts: a blob store that cannot be
        # reached (S3 down) is then told as a fault the adapter maps to Unavailable,
        # not as a cut connection.
        services.run(sender.reader.read, CHUNK).addCallbacks(send, not_sent)

    @staticmethod
    def _answer(request: Request, length: int, content_range: bytes | None) -> None:
        if content_range is not None:
            request.setResponseCode(206)
            request.setHeader(b"Content-Range", content_range)
        request.setHeader(b"Content-Type", b"application/octet-stream")
        request.setHeader(b"Accept-Ranges", b"bytes")
        request.setHeader(b"Content-Length", b"%d" % length)

    render_HEAD = render_GET


class UploadResource(Resource):
    isLeaf = True

    def __init__(self, site: "StoreSite") -> None:
        super().__init__()
        self.site = site

    def render_PUT(self, request: StoreRequest) -> Any:
        path = request.take_spool()
        if path is None:
            _send(request, 400, fault(BadRequest("no body")))
            return NOT_DONE_YET
        d = ensureDeferred(register_upload(self.site.services, _header(request, b"X-Session-Id") or "", path))
        d.addCallback(lambda upload_id: _send(request, 201, upload_id.encode("ascii"),
                                              b"text/plain; charset=us-ascii"))
        d.addErrback(StreamResource._not_sent, request)
        return NOT_DONE_YET


class StoreSite(Site):
    """The resource tree plus what the channel needs to police request bodies."""

    protocol = StoreChannel
    requestFactory = StoreRequest
    noisy = False

    def __init__(self, services: Services, max_soap_size: int, timeout: float = 300,
                 max_soap_size_before_logon: int = 64 * 1024) -> None:
        root = Resource()
        # SOAP is not a form post: never let twisted.web parse bodies into args
        # (it would also parse every Content-Type with the email package).
        super().__init__(root, timeout=timeout, parsePOSTFormSubmission=False)
        self.services = services
        self.max_soap_size = max_soap_size
        self.max_soap_size_before_logon = max_soap_size_before_logon
        self.wsdl = resources.files("shared").joinpath("groupware.wsdl").read_bytes()
        root.putChild(b"soap", SoapResource(self))
        root.putChild(b"stream", StreamResource(self))
        root.putChild(b"upload", UploadResource(self))
        # What the gateways' readiness checks and the adapter's failover ask: does the database answer?
        root.putChild(b"health", ReadinessResource(lambda: services.run(services.storage.ping)))

    def log(self, request: Request) -> None:
        log.debug("%s %s %s -> %s", _peer(request), request.method.decode("ascii", "replace"),
                  request.uri.decode("ascii", "replace"), request.code)
