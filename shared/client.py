"""The HTTP/1.1 keep-alive client the gateways use to reach the store server.

Written directly on a Twisted `Protocol` rather than on `twisted.web.client.Agent`:
the gateways make many tiny SOAP calls, and a lean parser with persistent
connections is several times faster than the general-purpose agent. Everything
here is strict — a broken or hostile server yields `Unavailable`, never an
unbounded buffer.

Endpoints: a filesystem path (UNIX socket), `tcp:host:port`, or
`tls:host:port[:ca=/path/to/ca.pem]` (TLS with certificate verification).
"""
from __future__ import annotations

import collections
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from lxml import etree
from twisted.internet import defer, error as ierror
from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IConsumer, IPullProducer, IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from shared import codec
from shared.errors import (
    BadRequest, Forbidden, GroupwareError, Internal, NotFound, SessionInvalid, TooLarge, Unavailable,
)

log = logging.getLogger(__name__)

# Caps that keep a broken server from making us buffer without bound.
MAX_HEAD = 64 * 1024            # status line + headers
MAX_HEADERS = 100
MAX_CHUNK_LINE = 1024           # a chunk-size line with extensions
DEFAULT_MAX_RESPONSE = 256 * 1024 * 1024
UPLOAD_CHUNK = 64 * 1024
CONNECT_TIMEOUT = 10

# Calls that change nothing (or change it the same way twice) may be resent
# when a kept-alive connection turns out to have been closed by the server.
IDEMPOTENT_OPS = frozenset({
    "logon", "logoff", "whoami", "listFolders", "queryRows", "getItem", "getChanges",
    "waitForChanges", "openStream", "setFlags", "deleteItems", "grantFolder",
})


class StreamStopped(Exception):
    """The consumer of a stream stopped it before the body was complete."""


def parse_endpoint(reactor: Any, address: str, ca_file: str | None = None) -> tuple[Any, str, bool]:
    """Turn an endpoint string into (endpoint, Host header value, is_tcp)."""
    if address.startswith(("tcp:", "tls:")):
        kind, rest = address[:3], address[4:]
        parts = rest.split(":", 2)
        extra = parts[2:]
        host, port = _host_port(parts[:2], address)
        endpoint = HostnameEndpoint(reactor, host.encode("idna"), port, timeout=CONNECT_TIMEOUT)
        if kind == "tls":
            for item in extra:
                if not item.startswith("ca="):
                    raise ValueError(f"unknown endpoint option in {address!r}; only ca=<file>")
                ca_file = item[3:]
            from shared.tls import client_options  # only TLS users pay for pyOpenSSL
            endpoint = wrapClientTLS(client_options(host, ca_file), endpoint)
        elif extra:
            raise ValueError(f"unexpected endpoint options in {address!r}")
        return endpoint, f"{host}:{port}", True
    path = address[5:] if address.startswith("unix:") else address
    return UNIXClientEndpoint(reactor, path, timeout=CONNECT_TIMEOUT), "localhost", False


def _host_port(parts: list[str], address: str) -> tuple[str, int]:
    if len(parts) != 2 or not parts[0]:
        raise ValueError(f"expected tcp:host:port or tls:host:port, got {address!r}")
    try:
        return parts[0], int(parts[1])
    except ValueError:
        raise ValueError(f"bad port in {address!r}") from None


# -- response sinks ------------------------------------------------------------
# A sink receives one response: its status/headers, then body bytes, then the end.

class _BufferSink:
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
            raise _ProtocolError(f"response body over {self.limit} bytes")
        self.parts.append(chunk)

    def body(self) -> bytes:
        return b"".join(self.parts)


@implementer(IPushProducer)
class _StreamSink:
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
class _FileProducer:
    """Feeds a request body from a file, one chunk per transport pull."""

    def __init__(self, fp: IO[bytes], length: int, conn: "HTTPConnection") -> None:
        self.fp, self.remaining, self.conn = fp, length, conn

    def resumeProducing(self) -> None:
        chunk = self.fp.read(min(UPLOAD_CHUNK, self.remaining)) if self.remaining else b""
        if not chunk:
            if self.remaining:
                self.conn.abort(_ProtocolError("upload file shrank while sending"))
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


class _ProtocolError(Exception):
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
        self.producer: _FileProducer | None = None

    def connectionMade(self) -> None:
        # Small requests must not wait for Nagle on TCP; UNIX sockets lack the option.
        try:
            self.transport.setTcpNoDelay(True)
        except (AttributeError, OSError, NotImplementedError):
            pass

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
            self.producer = _FileProducer(body_file[0], body_file[1], self)
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
        except _ProtocolError as exc:
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
                        raise _ProtocolError("response headers too large")
                    return
                if end > MAX_HEAD:
                    raise _ProtocolError("response headers too large")
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
                        raise _ProtocolError("chunk size line too long")
                    return
                line, self.buf = self.buf[:end], self.buf[end + 2:]
                size_text = line.split(b";", 1)[0].strip()
                try:
                    if not size_text or len(size_text) > 16:
                        raise ValueError
                    self.remaining = int(size_text, 16)
                except ValueError:
                    raise _ProtocolError("bad chunk size") from None
                if self.remaining < 0:
                    raise _ProtocolError("bad chunk size")
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
                    raise _ProtocolError("chunk not followed by CRLF")
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
                        raise _ProtocolError("trailers too large")
                    return
                self.buf = self.buf[end + 4:]
                self._finished()

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0") or len(parts[1]) != 3:
            raise _ProtocolError(f"bad status line {lines[0][:80]!r}")
        try:
            status = int(parts[1])
        except ValueError:
            raise _ProtocolError("bad status code") from None
        if len(lines) - 1 > MAX_HEADERS:
            raise _ProtocolError("too many response headers")
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
                raise _ProtocolError("malformed response header")
            name = name.lower()
            value = value.strip()
            if name in headers:
                if name == b"content-length" and headers[name] != value:
                    raise _ProtocolError("conflicting Content-Length")
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
                raise _ProtocolError(f"unsupported transfer encoding {te[:40]!r}")
            self.state = _CHUNK_SIZE
            return
        length = headers.get(b"content-length")
        if length is None or not length.isdigit() or len(length) > 15:
            # Read-until-close bodies can't be told apart from a dropped connection.
            raise _ProtocolError("response without a valid Content-Length")
        self.remaining = int(length)
        limit = getattr(self.sink, "limit", None)
        if limit is not None and self.remaining > limit:
            raise _ProtocolError(f"response body of {self.remaining} bytes is over {limit}")
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
            exc = _StaleConnection(reason) if stale else _Lost(reason)
            self.abort(exc)


class _Lost(Exception):
    def __init__(self, reason: Any) -> None:
        super().__init__(f"connection to the store server lost: {getattr(reason, 'value', reason)}")


class _StaleConnection(_Lost):
    """The server closed a reused connection before answering: safe to resend idempotent calls."""


class _ConnectionFactory(Factory):
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
        self.factory = _ConnectionFactory(self)
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
            return Failure(Unavailable(f"cannot connect to the store server: {reason.getErrorMessage()}"))

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

    def close(self) -> None:
        self.closed = True
        for waiter in list(self.waiters):
            waiter.errback(Unavailable("store client is closed"))
        self.waiters.clear()
        for conn in list(self.idle) + list(self.busy):
            if conn.transport is not None:
                conn.transport.loseConnection()
        self.idle.clear()


# -- the public client ---------------------------------------------------------------

class StoreClient:
    """SOAP calls, streams and uploads to one store server over pooled connections."""

    def __init__(self, reactor: Any, endpoint: str, connections: int = 8,
                 ca_file: str | None = None, max_response_size: int = DEFAULT_MAX_RESPONSE,
                 long_poll_connections: int = 1024, call_timeout: float | None = 300) -> None:
        self.reactor = reactor
        self.address = endpoint
        ep, host, _ = parse_endpoint(reactor, endpoint, ca_file)
        self.host = host.encode("idna")
        self.max_response_size = max_response_size
        self.call_timeout = call_timeout
        self.pool = ConnectionPool(ep, connections)
        # Long polls sit on a connection for minutes; they get their own lane so
        # that many idle watchers never starve ordinary calls of connections.
        self.poll_pool = ConnectionPool(ep, long_poll_connections)

    @classmethod
    def from_config(cls, reactor: Any, cfg: Any) -> "StoreClient":
        """A client for the `server_socket` endpoint with `server_connections` connections."""
        return cls(reactor, cfg.get("server_socket"), cfg.get_int("server_connections"))

    def close(self) -> None:
        self.pool.close()
        self.poll_pool.close()

    # -- SOAP
    def call(self, op: str, fields: Mapping[str, Any] | Sequence[tuple[str, Any]] = (),
             long_poll: bool = False, timeout: float | None = None) -> defer.Deferred:
        """Run one operation; fires with its `<op>Response` element or fails with a GroupwareError.

        `long_poll` sends it on the separate long-poll connections. `timeout` (seconds)
        defaults to `call_timeout`; long polls should pass their own poll time plus a margin.
        """
        _, body = codec.request(op, fields)
        head = (b"POST /soap HTTP/1.1\r\nHost: %s\r\nContent-Type: text/xml; charset=utf-8\r\n"
                b"SOAPAction: \"urn:groupware:store:1#%s\"\r\nContent-Length: %d\r\n\r\n"
                % (self.host, op.encode("ascii"), len(body)))
        pool = self.poll_pool if long_poll else self.pool
        d = self._request(pool, head, body, lambda: _BufferSink(self.max_response_size),
                          retry=op in IDEMPOTENT_OPS,
                          timeout=self.call_timeout if timeout is None else timeout or None)
        d.addCallback(_soap_result, op)
        return d

    def _request(self, pool: ConnectionPool, head: bytes, body: bytes | None,
                 make_sink: Callable[[], Any], retry: bool,
                 body_file: tuple[IO[bytes], int] | None = None,
                 timeout: float | None = None) -> defer.Deferred:
        """Send one request, resending once on a stale connection when `retry` allows.

        With `timeout`, a server that accepts but never answers yields Unavailable
        instead of hanging the gateway client behind us.
        """
        state: dict[str, Any] = {"conn": None, "attempt": None, "expired": None, "timer": None}

        def cancel(_: defer.Deferred) -> None:
            conn = state["conn"]
            if conn is not None:
                conn.abort(defer.CancelledError())
            elif state["attempt"] is not None:
                state["attempt"].cancel()

        outer: defer.Deferred = defer.Deferred(cancel)

        def attempt(tries_left: int) -> None:
            d = pool.acquire()
            state["attempt"] = d

            def got(conn: HTTPConnection) -> defer.Deferred:
                state["conn"] = conn
                state["attempt"] = None
                conn.head_request = head.startswith(b"HEAD ")
                return conn.send(head, body, make_sink(), body_file)

            def failed(reason: Failure) -> Any:
                state["conn"] = None
                if outer.called:
                    return None
                if state["expired"] is not None:
                    outer.errback(state["expired"])
                    return None
                if reason.check(_StaleConnection) and tries_left:
                    attempt(tries_left - 1)
                    return None
                outer.errback(_translate(reason))
                return None

            def ok(sink: Any) -> None:
                state["conn"] = None
                if not outer.called:
                    outer.callback(sink)

            d.addCallback(got).addCallbacks(ok, failed)

        if timeout is not None:
            def expire() -> None:
                state["timer"] = None
                state["expired"] = Unavailable(f"the store server did not answer within {timeout:g}s")
                if state["conn"] is not None:
                    state["conn"].abort(state["expired"])
                elif state["attempt"] is not None:
                    state["attempt"].cancel()

            def disarm(result: Any) -> Any:
                if state["timer"] is not None:
                    state["timer"].cancel()
                    state["timer"] = None
                return result
            state["timer"] = self.reactor.callLater(timeout, expire)
            outer.addBoth(disarm)
        attempt(1 if retry else 0)
        return outer

    # -- side channel
    def stream(self, href: str, consumer_or_callback: IConsumer | Callable[[bytes], Any],
               start: int | None = None, end: int | None = None) -> defer.Deferred:
        """GET a stream href, handing the body on in chunks as it arrives.

        `start`/`end` select bytes like a Python slice (`end` exclusive). Fires with
        the number of body bytes delivered; an IConsumer gets us as a push producer.
        """
        if not href.startswith("/stream/") or any(c in href for c in " \r\n"):
            return defer.fail(BadHref(f"not a stream href: {href!r}"))
        range_header = b""
        if start is not None or end is not None:
            first = max(0, start or 0)
            if end is not None and end <= first:
                return defer.succeed(0)
            last = b"" if end is None else b"%d" % (end - 1)
            range_header = b"Range: bytes=%d-%s\r\n" % (first, last)
        head = b"GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (href.encode("ascii"), self.host, range_header)
        d = self._request(self.pool, head, None, lambda: _StreamSink(consumer_or_callback), retry=True)

        def done(sink: _StreamSink) -> int:
            if sink.status in (200, 206):
                return sink.received
            if sink.status == 416:
                return 0  # the range starts past the end: nothing to send
            raise _http_error(sink.status, "stream")
        return d.addCallback(done)

    def upload(self, session_id: str, source: str | os.PathLike | IO[bytes]) -> defer.Deferred:
        """PUT a file to /upload in chunks; fires with the server's uploadId."""
        if isinstance(source, (str, os.PathLike)):
            fp: IO[bytes] = open(source, "rb")
            owned = True
        else:
            fp, owned = source, False
        try:
            here = fp.tell()
            length = fp.seek(0, os.SEEK_END) - here
            fp.seek(here)
        except Exception:
            if owned:
                fp.close()
            raise
        if any(c in session_id for c in "\r\n"):
            raise ValueError("bad session id")
        head = (b"PUT /upload HTTP/1.1\r\nHost: %s\r\nX-Session-Id: %s\r\n"
                b"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n"
                % (self.host, session_id.encode("ascii"), length))
        d = self._request(self.pool, head, None, lambda: _BufferSink(MAX_HEAD), retry=False,
                          body_file=(fp, length))

        def done(sink: _BufferSink) -> str:
            if sink.status in (200, 201):
                upload_id = sink.body().decode("ascii", "replace").strip()
                if not upload_id:
                    raise Internal("upload answered without an id")
                return upload_id
            raise _upload_error(sink)

        def close(result: Any) -> Any:
            if owned:
                fp.close()
            return result
        return d.addCallback(done).addBoth(close)


class BadHref(GroupwareError):
    code = "badRequest"
    fault_side = "Client"


def _soap_result(sink: _BufferSink, op: str) -> etree._Element:
    data = sink.body()
    if sink.status != 200 and data.lstrip()[:1] != b"<":
        raise _http_error(sink.status, op)
    try:
        el = codec.body_of(data)
    except GroupwareError:
        if sink.status != 200:
            raise _http_error(sink.status, op) from None
        raise Internal(f"{op}: malformed reply from the store server") from None
    if el.tag == _FAULT:
        # Faults ride on 500 (and on 413 for oversized requests); their code is precise.
        raise codec.fault_error(el)
    if sink.status != 200:
        raise _http_error(sink.status, op)
    if el.tag != codec.gw(op + "Response"):
        raise Internal(f"{op}: unexpected reply element {el.tag}")
    return el


_FAULT = "{%s}Fault" % codec.SOAP_ENV


def _upload_error(sink: _BufferSink) -> GroupwareError:
    data = sink.body()
    if b"Fault" in data:
        try:
            el = codec.body_of(data)
            if el.tag == _FAULT:
                return codec.fault_error(el)
        except GroupwareError:
            pass
    return _http_error(sink.status, "upload")


def _http_error(status: int, what: str) -> GroupwareError:
    if status == 413:
        return TooLarge(f"{what}: too large for the store server")
    if status == 404:
        return NotFound(f"{what}: not found")
    if status in (401, 403):
        return SessionInvalid(f"{what}: session refused") if status == 401 else Forbidden(f"{what}: forbidden")
    if status in (502, 503, 504):
        return Unavailable(f"{what}: store server unavailable ({status})")
    if status == 400:
        return BadRequest(f"{what}: rejected by the store server")
    return Internal(f"{what}: unexpected HTTP status {status}")


def _translate(reason: Failure) -> Any:
    """Map transport failures to `Unavailable`; keep our own errors as they are."""
    if reason.check(GroupwareError, defer.CancelledError, StreamStopped):
        return reason
    if reason.check(_ProtocolError):
        return Failure(Unavailable(f"bad response from the store server: {reason.getErrorMessage()}"))
    if reason.check(_Lost, ierror.ConnectError, ierror.ConnectionLost, ierror.ConnectionDone, OSError):
        return Failure(Unavailable(reason.getErrorMessage()))
    return reason
