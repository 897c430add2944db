"""HTTP/1.1 over one persistent connection, and a pool of them, for the store client.

Written directly on a Twisted `Protocol` rather than on `twisted.web.client.Agent`:
the gateways make many tiny SOAP calls, and a lean parser with persistent
connections is several times faster than the general-purpose agent. Everything
here is strict: a broken or hostile server yields an error, never an unbounded buffer.

Endpoints: a filesystem path (UNIX socket), `tcp:host:port`, or
`tls:host:port[:ca=/path/to/ca.pem]` (TLS with certificate verification), read
by shared.endpoints.
"""
from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from typing import IO, Any

from twisted.internet import defer, error as ierror
from twisted.internet.interfaces import IConsumer, IPullProducer, IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from shared.endpoints import answer_at_once, client_endpoint, parse_store_address
from shared.errors import Unavailable

log = logging.getLogger(__name__)

# Caps that keep a broken server from making us buffer without bound.
MAX_HEAD = 64 * 1024            # status line + headers
MAX_HEADERS = 100
MAX_CHUNK_LINE = 1024           # a chunk-size line with extensions
UPLOAD_CHUNK = 64 * 1024


class StreamStopped(Exception):
    """The consumer of a stream stopped it before the body was complete."""


def parse_endpoint(reactor: Any, address: str, ca_file: str | None = None) -> tuple[Any, str, bool]:
    """The store address (shared.endpoints) as (endpoint, Host header value, is_tcp)."""
    store = parse_store_address(address)
    return client_endpoint(reactor, store, ca_file), store.host_header(), store.is_tcp


# -- response sinks ------------------------------------------------------------
# A sink receives one response: its status/headers, then body bytes, then the end.

class BufferSink:
    """Collects a small response body in memory, up to a cap."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        self.status = 0
        self.headers: dict[bytes, bytes] = {}

    def head(self, status: int, headers: dict[bytes, bytes], conn: "HTTPConnection") -> None:
        self.status, self.headers = status, headers

    def data(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise ProtocolError(f"response body over {self.limit} bytes")
        self.parts.append(chunk)

    def body(self) -> bytes:
        return b"".join(self.parts)


@implementer(IPushProducer)
class StreamSink:
    """Hands a body to an IConsumer or a callback as it arrives, with backpressure.

    The consumer sees us as a push producer; pausing us pauses reading from the
    socket, so the kernel's window, not our memory, absorbs a slow reader.
    """

    def __init__(self, target: IConsumer | Callable[[bytes], Any]) -> None:
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.conn: HTTPConnection | None = None
        self.received = 0
        self.consumer: IConsumer | None = None
        self.callback: Callable[[bytes], Any] | None = None
        if IConsumer.providedBy(target):
            self.consumer = target
        else:
            self.callback = target
        self.paused = False
        self.registered = False
        self.stopped = False

    def head(self, status: int, headers: dict[bytes, bytes], conn: "HTTPConnection") -> None:
        self.status, self.headers, self.conn = status, headers, conn
        if status in (200, 206) and self.consumer is not None:
            self.consumer.registerProducer(self, True)
            self.registered = True

    def data(self, chunk: bytes) -> None:
        if self.status not in (200, 206):
            # An error body is small and only used for the message.
            if self.received + len(chunk) <= MAX_HEAD:
                self.received += len(chunk)
            return
        self.received += len(chunk)
        if self.consumer is not None:
            self.consumer.write(chunk)
        else:
            result = self.callback(chunk)  # type: ignore[misc]
            if isinstance(result, defer.Deferred):
                # A callback returning a Deferred asks us to wait for it.
                self.pauseProducing()
                result.addBoth(self._callback_done)

    def _callback_done(self, result: Any) -> None:
        if isinstance(result, Failure):
            self.stopProducing()
            return
        self.resumeProducing()

    def finish(self) -> None:
        conn, self.conn = self.conn, None
        # The connection goes back to the pool: it must not stay paused, and a late
        # pause/stop from the consumer must not reach the next request on it.
        if self.paused and conn is not None and conn.transport is not None:
            self.paused = False
            conn.transport.resumeProducing()
        if self.registered:
            self.registered = False
            self.consumer.unregisterProducer()  # type: ignore[union-attr]

    # IPushProducer, seen by the consumer
    def pauseProducing(self) -> None:
        if not self.paused and self.conn is not None and self.conn.transport is not None:
            self.paused = True
            self.conn.transport.pauseProducing()

    def resumeProducing(self) -> None:
        if self.paused and self.conn is not None and self.conn.transport is not None:
            self.paused = False
            self.conn.transport.resumeProducing()

    def stopProducing(self) -> None:
        # The body cannot be skipped on a kept-alive connection, so drop it.
        if not self.stopped and self.conn is not None:
            self.stopped = True
            self.conn.abort(StreamStopped("consumer stopped the stream"))


@implementer(IPullProducer)
class FileProducer:
    """Feeds a request body from a file, one chunk per transport pull."""

    def __init__(self, fp: IO[bytes], length: int, conn: "HTTPConnection") -> None:
        self.fp, self.remaining, self.conn = fp, length, conn

    def resumeProducing(self) -> None:
        chunk = self.fp.read(min(UPLOAD_CHUNK, self.remaining)) if self.remaining else b""
        if not chunk:
            if self.remaining:
                self.conn.abort(ProtocolError("upload file shrank while sending"))
            else:
                self.conn.producer = None
                self.conn.transport.unregisterProducer()
            return
        self.remaining -= len(chunk)
        self.conn.transport.write(chunk)
        if not self.remaining:
            self.conn.producer = None
            self.conn.transport.unregisterProducer()

    def stopProducing(self) -> None:
        self.remaining = 0


class ProtocolError(Exception):
    """The server broke HTTP framing; the connection is unusable."""


# -- one connection --------------------------------------------------------------

_HEAD, _BODY_LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILERS, _IDLE = range(7)


class HTTPConnection(Protocol):
    """One persistent connection; runs one request at a time."""

    def __init__(self) -> None:
        self.pool: ConnectionPool | None = None
        self.buf = b""
        self.state = _IDLE
        self.sink: Any = None
        self.done: defer.Deferred | None = None
        self.remaining = 0
        self.keep_alive = True
        self.requests = 0
        self.got_bytes = False
        self.head_request = False
        self.lost = False
        self.producer: FileProducer | None = None

    def connectionMade(self) -> None:
        # Streams of message sources arrive in MBs: 256 KB per read, not Twisted's 64 KB.
        self.transport.bufferSize = 1 << 18
        # Small requests must not wait for Nagle on TCP; UNIX sockets lack the option.
        answer_at_once(self.transport)

    # -- sending
    def send(self, head: bytes, body: bytes | None, sink: Any,
             body_file: tuple[IO[bytes], int] | None = None) -> defer.Deferred:
        self.sink = sink
        self.buf = b""
        self.state = _HEAD
        self.got_bytes = False
        self.keep_alive = True
        self.requests += 1
        self.done = defer.Deferred()
        if body_file is None:
            self.transport.write(head + body if body else head)
        else:
            self.transport.write(head)
            self.producer = FileProducer(body_file[0], body_file[1], self)
            self.transport.registerProducer(self.producer, False)
        return self.done

    # -- receiving
    def dataReceived(self, data: bytes) -> None:
        if self.state == _IDLE:
            # Bytes nobody asked for: the framing is lost, so is the connection.
            self.transport.abortConnection()
            return
        self.got_bytes = True
        self.buf = self.buf + data if self.buf else data
        try:
            self._parse()
        except ProtocolError as exc:
            self.abort(exc)
        except Exception as exc:  # a consumer raised; the response is lost either way
            log.exception("response consumer failed")
            self.abort(exc)

    def _parse(self) -> None:
        while self.buf and self.state != _IDLE:
            if self.state == _HEAD:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buf) > MAX_HEAD:
                        raise ProtocolError("response headers too large")
                    return
                if end > MAX_HEAD:
                    raise ProtocolError("response headers too large")
                head, self.buf = self.buf[:end], self.buf[end + 4:]
                self._head(head)
            elif self.state == _BODY_LENGTH:
                take = self.buf[:self.remaining]
                self.buf = self.buf[len(take):]
                self.remaining -= len(take)
                self.sink.data(take)
                if not self.remaining:
                    self._finished()
            elif self.state == _CHUNK_SIZE:
                end = self.buf.find(b"\r\n")
                if end < 0:
                    if len(self.buf) > MAX_CHUNK_LINE:
                        raise ProtocolError("chunk size line too long")
                    return
                line, self.buf = self.buf[:end], self.buf[end + 2:]
                size_text = line.split(b";", 1)[0].strip()
                try:
                    if not size_text or len(size_text) > 16:
                        raise ValueError
                    self.remaining = int(size_text, 16)
                except ValueError:
                    raise ProtocolError("bad chunk size") from None
                if self.remaining < 0:
                    raise ProtocolError("bad chunk size")
                self.state = _CHUNK_DATA if self.remaining else _TRAILERS
            elif self.state == _CHUNK_DATA:
                take = self.buf[:self.remaining]
                self.buf = self.buf[len(take):]
                self.remaining -= len(take)
                self.sink.data(take)
                if not self.remaining:
                    self.state = _CHUNK_CRLF
            elif self.state == _CHUNK_CRLF:
                if len(self.buf) < 2:
                    return
                if self.buf[:2] != b"\r\n":
                    raise ProtocolError("chunk not followed by CRLF")
                self.buf = self.buf[2:]
                self.state = _CHUNK_SIZE
            elif self.state == _TRAILERS:
                # Trailers are allowed but carry nothing we use.
                if self.buf.startswith(b"\r\n"):
                    self.buf = self.buf[2:]
                    self._finished()
                    continue
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buf) > MAX_HEAD:
                        raise ProtocolError("trailers too large")
                    return
                self.buf = self.buf[end + 4:]
                self._finished()

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0") or len(parts[1]) != 3:
            raise ProtocolError(f"bad status line {lines[0][:80]!r}")
        try:
            status = int(parts[1])
        except ValueError:
            raise ProtocolError("bad status code") from None
        if len(lines) - 1 > MAX_HEADERS:
            raise ProtocolError("too many response headers")
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
                raise ProtocolError("malformed response header")
            name = name.lower()
            value = value.strip()
            if name in headers:
                if name == b"content-length" and headers[name] != value:
                    raise ProtocolError("conflicting Content-Length")
                headers[name] = headers[name] + b", " + value
            else:
                headers[name] = value
        if 100 <= status < 200:
            # Interim responses (100 Continue) precede the real one.
            return
        if parts[0] == b"HTTP/1.0" or b"close" in headers.get(b"connection", b"").lower():
            self.keep_alive = False
        self.sink.head(status, headers, self)
        if self.head_request or status in (204, 304):
            self._finished()
            return
        te = headers.get(b"transfer-encoding")
        if te is not None:
            if te.lower() != b"chunked":
                raise ProtocolError(f"unsupported transfer encoding {te[:40]!r}")
            self.state = _CHUNK_SIZE
            return
        length = headers.get(b"content-length")
        if length is None or not length.isdigit() or len(length) > 15:
            # Read-until-close bodies can't be told apart from a dropped connection.
            raise ProtocolError("response without a valid Content-Length")
        self.remaining = int(length)
        limit = getattr(self.sink, "limit", None)
        if limit is not None and self.remaining > limit:
            raise ProtocolError(f"response body of {self.remaining} bytes is over {limit}")
        self.state = _BODY_LENGTH
        if not self.remaining:
            self._finished()

    def _finished(self) -> None:
        self.state = _IDLE
        sink, done = self.sink, self.done
        self.sink = self.done = None
        if self.producer is not None:
            # The server answered before taking the whole upload (e.g. 413).
            self.producer.stopProducing()
            self.producer = None
            self.keep_alive = False
            self.transport.unregisterProducer()
        if hasattr(sink, "finish"):
            sink.finish()
        if self.buf:
            # Bytes beyond the response: the server's framing can't be trusted.
            self.keep_alive = False
            self.buf = b""
        if self.keep_alive:
            self.pool.release(self)
        else:
            self.transport.loseConnection()
            self.pool.forget(self)
        done.callback(sink)

    def abort(self, reason: Exception) -> None:
        """Give up on the connection and fail the request in flight with `reason`."""
        done, sink = self.done, self.sink
        self.done = self.sink = None
        self.state = _IDLE
        self.lost = True
        if self.transport is not None:
            self.transport.abortConnection()
        if self.pool is not None:
            self.pool.forget(self)
        if sink is not None and hasattr(sink, "finish"):
            try:
                sink.finish()
            except Exception:
                log.exception("stream consumer failed while unregistering")
        if done is not None:
            done.errback(reason)

    def connectionLost(self, reason: Failure = ierror.ConnectionDone) -> None:
        self.lost = True
        if self.pool is not None:
            self.pool.forget(self)
        if self.done is not None:
            stale = not self.got_bytes and self.requests > 1
            exc = StaleConnection(reason) if stale else ConnectionGone(reason)
            self.abort(exc)


class ConnectionGone(Exception):
    def __init__(self, reason: Any) -> None:
        super().__init__(f"connection to the store server lost: {getattr(reason, 'value', reason)}")


class ConnectFailed(Unavailable):
    """No connection could be opened: nothing was sent, so the request may go elsewhere."""


class StaleConnection(ConnectionGone):
    """The server closed a reused connection before answering: safe to resend idempotent calls."""


class ConnectionFactory(Factory):
    protocol = HTTPConnection

    def __init__(self, pool: "ConnectionPool") -> None:
        self.pool = pool

    def buildProtocol(self, addr: Any) -> HTTPConnection:
        conn = HTTPConnection()
        conn.factory = self
        conn.pool = self.pool
        return conn


# -- the pool ---------------------------------------------------------------------

class ConnectionPool:
    """Up to `size` persistent connections; callers queue for a free one."""

    def __init__(self, endpoint: Any, size: int) -> None:
        self.endpoint = endpoint
        self.size = max(1, size)
        self.idle: list[HTTPConnection] = []
        self.busy: set[HTTPConnection] = set()
        self.connecting = 0
        self.waiters: collections.deque[defer.Deferred] = collections.deque()
        self.factory = ConnectionFactory(self)
        self.closed = False

    def acquire(self) -> defer.Deferred:
        """A Deferred firing with a connection reserved for one request."""
        if self.closed:
            return defer.fail(Unavailable("store client is closed"))
        while self.idle:
            conn = self.idle.pop()
            if not conn.lost:
                self.busy.add(conn)
                return defer.succeed(conn)
        if len(self.busy) + self.connecting < self.size:
            return self._connect()
        d: defer.Deferred = defer.Deferred(lambda d: self._cancel_wait(d))
        self.waiters.append(d)
        return d

    def _cancel_wait(self, d: defer.Deferred) -> None:
        try:
            self.waiters.remove(d)
        except ValueError:
            pass

    def _connect(self) -> defer.Deferred:
        self.connecting += 1

        def connected(conn: HTTPConnection) -> HTTPConnection:
            self.connecting -= 1
            self.busy.add(conn)
            return conn

        def failed(reason: Failure) -> Failure:
            self.connecting -= 1
            # Let the next waiter try its own connection; the server may be back.
            self._wake()
            if reason.check(defer.CancelledError):
                return reason
            return Failure(ConnectFailed(f"cannot connect to the store server: {reason.getErrorMessage()}"))

        return self.endpoint.connect(self.factory).addCallbacks(connected, failed)

    def release(self, conn: HTTPConnection) -> None:
        self.busy.discard(conn)
        if self.closed or conn.lost:
            return
        while self.waiters:
            waiter = self.waiters.popleft()
            self.busy.add(conn)
            waiter.callback(conn)
            return
        self.idle.append(conn)

    def forget(self, conn: HTTPConnection) -> None:
        self.busy.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        self._wake()

    def _wake(self) -> None:
        # A slot became free: let a waiter connect instead of waiting forever.
        while self.waiters and len(self.busy) + self.connecting < self.size and not self.closed:
            waiter = self.waiters.popleft()
            self._connect().chainDeferred(waiter)

    def drop_idle(self) -> None:
        """Close the idle connections: their server lost a request in flight, so they are
        likely dead too, and the next request should find out by connecting afresh."""
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.lost = True
            if conn.transport is not None:
                conn.transport.loseConnection()
        self._wake()

    def close(self) -> None:
        self.closed = True
        for waiter in list(self.waiters):
            waiter.errback(Unavailable("store client is closed"))
        self.waiters.clear()
        for conn in list(self.idle) + list(self.busy):
            if conn.transport is not None:
                conn.transport.loseConnection()
        self.idle.clear()


