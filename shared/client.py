"""The store client: SOAP calls, streams and uploads over pooled keep-alive connections.

The gateways reach the store server only through this client (via shared.model).
Transport failures, refusals and broken replies all become `Unavailable`, so a
store outage is never mistaken for a bad password.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from lxml import etree
from twisted.internet import defer, error as ierror
from twisted.internet.interfaces import IConsumer
from twisted.python.failure import Failure

from shared import codec
from shared.config import ConfigError
from shared.metrics import STORE_CALLS, timed
from shared.errors import (
    BadRequest, Forbidden, GroupwareError, Internal, NotFound, SessionInvalid, StorageFull, TooLarge, Unavailable,
)
from shared.httpconn import (
    MAX_HEAD, BufferSink, ConnectFailed, ConnectionGone, ConnectionPool, HTTPConnection, ProtocolError,
    StaleConnection, StreamSink, StreamStopped, parse_endpoint,
)
from shared.localstream import FileTrouble, LocalStream, StreamHref

log = logging.getLogger("shared.client")

DEFAULT_MAX_RESPONSE = 256 * 1024 * 1024

# Operations that run the store's user backend (password check, directory) before answering.
LOGON_OPS = frozenset({"logon", "logonDelivery"})
# Calls that change nothing (or change it the same way twice) may be resent
# when a kept-alive connection turns out to have been closed by the server.
IDEMPOTENT_OPS = frozenset({
    "logon", "logoff", "whoami", "listFolders", "queryRows", "getItem", "getChanges",
    "waitForChanges", "openStream", "setFlags", "deleteItems", "setAcl", "deleteAcl", "getChangedItems",
    "getItemsByName", "logonDelivery", "resolveRecipient", "listDeliveryFolders", "getActiveSieveScript",
    "listSieveScripts", "getSieveScript", "getAcl", "myRights", "listRights",
})


# Seconds a store endpoint that could not be reached is left alone before calls try it
# again (server_failover_retry); the wait doubles while it stays down, up to this.
MAX_RETRY_WAIT = 60.0


# -- the store servers -----------------------------------------------------------------

class StoreEndpoint:
    """One store server the client may call, with its connection lanes and whether it
    answered lately: after a failed connect it is passed over for a back-off that
    doubles while it stays down, then tried again."""

    def __init__(self, reactor: Any, address: str, connections: int, long_poll_connections: int,
                 logon_connections: int, ca_file: str | None = None) -> None:
        self.address = address
        ep, host, is_tcp = parse_endpoint(reactor, address, ca_file)
        self.is_tcp = is_tcp
        self.host = host.encode("idna")
        self.pool = ConnectionPool(ep, connections)
        # Long polls sit on a connection for minutes; they get their own lane so
        # that many idle watchers never starve ordinary calls of connections.
        self.poll_pool = ConnectionPool(ep, long_poll_connections)
        # Logons wait on the store's user backend (a directory that may hang): their own
        # lane too, so a burst of them never holds up the calls of sessions already open.
        self.logon_pool = ConnectionPool(ep, logon_connections)
        self.failures = 0
        self.retry_at = 0.0

    def lane(self, kind: str) -> ConnectionPool:
        return {"poll": self.poll_pool, "logon": self.logon_pool}.get(kind, self.pool)

    def unreachable(self, now: float, retry_wait: float) -> None:
        if self.retry_at > now:
            return  # another call found it down already
        self.failures += 1
        self.retry_at = now + min(MAX_RETRY_WAIT, retry_wait * 2 ** min(self.failures - 1, 16))
        log.warning("store server %s unreachable; trying it again in %.1f s", self.address, self.retry_at - now)

    def reachable(self) -> None:
        if self.failures:
            log.warning("store server %s is reachable again", self.address)
        self.failures = 0
        self.retry_at = 0.0

    def close(self) -> None:
        self.pool.close()
        self.poll_pool.close()
        self.logon_pool.close()


# -- the public client ---------------------------------------------------------------

class StoreClient:
    """SOAP calls, streams and uploads to the store over pooled connections.

    With several store endpoints (instances on one database) a call goes to the first
    one that is up; a call that cannot connect goes on to the next, and an endpoint
    that could not be reached is tried again after a back-off. A call whose connection
    is lost after it was sent may have taken effect: only calls that change nothing
    (or change it the same way twice) are sent again, the others fail with
    Unavailable, which the gateways answer with their protocol's temporary error.
    """

    def __init__(self, reactor: Any, endpoint: str | Sequence[str], connections: int = 8,
                 ca_file: str | None = None, max_response_size: int = DEFAULT_MAX_RESPONSE,
                 long_poll_connections: int = 1024, call_timeout: float | None = 300,
                 blob_files: bool = True, logon_connections: int = 4, retry_wait: float = 5.0,
                 blob_keyring: Any = None) -> None:
        self.reactor = reactor
        addresses = [endpoint] if isinstance(endpoint, str) else list(endpoint)
        if not addresses:
            raise ValueError("no store endpoint")
        self.endpoints = [StoreEndpoint(reactor, address, connections, long_poll_connections,
                                        logon_connections, ca_file) for address in addresses]
        self.address = " ".join(addresses)
        self.retry_wait = retry_wait
        self.is_tcp = any(e.is_tcp for e in self.endpoints)
        # On the store's own host (its UNIX socket), sources are read from the blob
        # files the store names (shared.localstream).
        self.blob_files = blob_files and not self.is_tcp
        # The master keys of encrypted blobs, when this process may read them: it then
        # opens the sealed blob files itself (shared.sealed).
        self.blob_keyring = blob_keyring
        self.max_response_size = max_response_size
        self.call_timeout = call_timeout

    @classmethod
    def from_config(cls, reactor: Any, cfg: Any) -> "StoreClient":
        """A client for the `server_sockets` endpoints (or `server_socket` alone) with
        `server_connections` connections to each."""
        return cls(reactor, store_endpoints(cfg), cfg.get_int("server_connections"),
                   blob_files=cfg.get_bool("server_blob_files"),
                   logon_connections=cfg.get_int("server_logon_connections"),
                   retry_wait=cfg.get_seconds("server_failover_retry"),
                   blob_keyring=_blob_keyring(cfg) if cfg.get_bool("server_blob_files") else None)

    def close(self) -> None:
        for endpoint in self.endpoints:
            endpoint.close()

    def _candidates(self) -> list[StoreEndpoint]:
        """The endpoints in the order a call tries them: those up in their configured
        order, then those in back-off, the soonest due first."""
        now = self.reactor.seconds()
        up = [e for e in self.endpoints if e.retry_at <= now]
        down = sorted((e for e in self.endpoints if e.retry_at > now), key=lambda e: e.retry_at)
        return up + down

    # -- SOAP
    def call(self, op: str, fields: Mapping[str, Any] | Sequence[tuple[str, Any]] = (),
             long_poll: bool = False, timeout: float | None = None) -> defer.Deferred:
        """Run one operation; fires with its `<op>Response` element or fails with a GroupwareError.

        `long_poll` sends it on the separate long-poll connections, a logon goes on the logon
        connections. `timeout` (seconds)
        defaults to `call_timeout`; long polls should pass their own poll time plus a margin.
        """
        _, body = codec.request(op, fields)
        rest = (b"\r\nContent-Type: text/xml; charset=utf-8\r\n"
                b"SOAPAction: \"urn:groupware:store:1#%s\"\r\n%sContent-Length: %d\r\n\r\n"
                % (op.encode("ascii"), _session_header(fields), len(body)))
        lane = "poll" if long_poll else "logon" if op in LOGON_OPS else "calls"
        d = self._request(lane, lambda host: b"POST /soap HTTP/1.1\r\nHost: " + host + rest, body,
                          lambda: BufferSink(self.max_response_size),
                          retry=op in IDEMPOTENT_OPS,
                          timeout=self.call_timeout if timeout is None else timeout or None)
        d.addCallback(_soap_result, op)
        if not long_poll:  # a long poll's time is the waiting, not the store's work
            timed(d, lambda seconds, ok: STORE_CALLS.labels(op, "ok" if ok else "error").observe(seconds))
        return d

    def health(self) -> defer.Deferred:
        """Fires when the store server answers its health check (its database answers);
        fails with Unavailable and the reason otherwise."""
        d = self._request("calls", lambda host: b"GET /health HTTP/1.1\r\nHost: " + host + b"\r\n\r\n", None,
                          lambda: BufferSink(4096), retry=True, timeout=self.call_timeout)

        def checked(sink: BufferSink) -> None:
            if sink.status != 200:
                raise Unavailable(sink.body().decode("utf-8", "replace").strip() or f"HTTP {sink.status}")
        return d.addCallback(checked)

    def _request(self, lane: str, head_for: Callable[[bytes], bytes], body: bytes | None,
                 make_sink: Callable[[], Any], retry: bool,
                 body_file: tuple[IO[bytes], int] | None = None,
                 timeout: float | None = None) -> defer.Deferred:
        """Send one request (its head made by `head_for(host)`) on connections of `lane`.

        An endpoint that cannot be connected to hands the request on to the next one.
        A request whose connection is lost once sent is resent (once, wherever an
        endpoint is up) only when `retry` allows and nothing of its answer was passed on.
        With `timeout`, a server that accepts but never answers yields Unavailable
        instead of hanging the gateway client behind us.
        """
        state: dict[str, Any] = {"conn": None, "attempt": None, "expired": None, "timer": None, "sink": None}

        def cancel(_: defer.Deferred) -> None:
            conn = state["conn"]
            if conn is not None:
                conn.abort(defer.CancelledError())
            elif state["attempt"] is not None:
                state["attempt"].cancel()

        outer: defer.Deferred = defer.Deferred(cancel)

        def attempt(resends_left: int) -> None:
            connect(self._candidates(), resends_left)

        def connect(candidates: list[StoreEndpoint], resends_left: int) -> None:
            endpoint, rest = candidates[0], candidates[1:]
            d = endpoint.lane(lane).acquire()
            state["attempt"] = d

            def got(conn: HTTPConnection) -> defer.Deferred:
                endpoint.reachable()
                state["conn"] = conn
                state["attempt"] = None
                head = head_for(endpoint.host)
                conn.head_request = head.startswith(b"HEAD ")
                sink = state["sink"] = make_sink()
                return conn.send(head, body, sink, body_file)

            def failed(reason: Failure) -> Any:
                state["conn"] = None
                state["attempt"] = None
                if outer.called:
                    return None
                if state["expired"] is not None:
                    outer.errback(state["expired"])
                    return None
                if reason.check(ConnectFailed):
                    # Nothing was sent: any request may go to the next endpoint.
                    if len(self.endpoints) > 1:
                        endpoint.unreachable(self.reactor.seconds(), self.retry_wait)
                    if rest:
                        connect(rest, resends_left)
                        return None
                elif reason.check(ConnectionGone) and resends_left and not _passed_on(state["sink"]):
                    if not reason.check(StaleConnection):
                        log.warning("store server %s lost a request in flight; sending it again",
                                    endpoint.address)
                    # Its other idle connections may be gone too: the resend connects afresh.
                    endpoint.lane(lane).drop_idle()
                    attempt(resends_left - 1)
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
    def stream(self, session_id: str, href: str, consumer_or_callback: IConsumer | Callable[[bytes], Any],
               start: int | None = None, end: int | None = None) -> defer.Deferred:
        """Read a stream href that session `session_id` opened (the store serves it to
        that session only), handing the body on in chunks as it arrives.

        `start`/`end` select bytes like a Python slice (`end` exclusive). Fires with
        the number of body bytes delivered; an IConsumer gets us as a push producer.
        A href that names its blob files is read from them, else (and from wherever
        a file fails) it is fetched from the store.
        """
        if not (self.blob_files and isinstance(href, StreamHref) and href.paths):
            return self._fetch_stream(session_id, href, consumer_or_callback, start, end)
        local = LocalStream(self.reactor, href, consumer_or_callback, start, end, self.blob_keyring)

        def hand_over(failure: Failure) -> defer.Deferred:
            failure.trap(FileTrouble)
            cause = failure.value.__cause__
            if isinstance(cause, PermissionError):
                log.warning("cannot read the store's blob files (%s); reading sources through %s",
                            cause, self.address)
                self.blob_files = False
            rest = self._fetch_stream(session_id, href, consumer_or_callback, local.first + local.delivered, end)
            return rest.addCallback(lambda n: local.delivered + n)
        return defer.ensureDeferred(local.run()).addErrback(hand_over)

    def _fetch_stream(self, session_id: str, href: str, consumer_or_callback: IConsumer | Callable[[bytes], Any],
                      start: int | None = None, end: int | None = None) -> defer.Deferred:
        """GET a stream href from the store, as the session that opened it."""
        if not href.startswith("/stream/") or any(c in href for c in " \r\n"):
            return defer.fail(BadHref(f"not a stream href: {href!r}"))
        range_header = b""
        if start is not None or end is not None:
            first = max(0, start or 0)
            if end is not None and end <= first:
                return defer.succeed(0)
            last = b"" if end is None else b"%d" % (end - 1)
            range_header = b"Range: bytes=%d-%s\r\n" % (first, last)
        rest = b"\r\n%s%s\r\n" % (_session_header([("sessionId", session_id)]), range_header)
        d = self._request("calls", lambda host: b"GET %s HTTP/1.1\r\nHost: %s%s" % (href.encode("ascii"), host, rest),
                          None, lambda: StreamSink(consumer_or_callback), retry=True)

        def done(sink: StreamSink) -> int:
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
        rest = (b"\r\nX-Session-Id: %s\r\n"
                b"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n"
                % (session_id.encode("ascii"), length))
        d = self._request("calls", lambda host: b"PUT /upload HTTP/1.1\r\nHost: " + host + rest, None,
                          lambda: BufferSink(MAX_HEAD), retry=False,
                          body_file=(fp, length))

        def done(sink: BufferSink) -> str:
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


def store_endpoints(cfg: Any) -> list[str]:
    """The store endpoints a gateway calls: `server_sockets` (space-separated, tried in
    that order), or `server_socket` alone when that is empty."""
    cfg.get_store_addresses("server_sockets")  # a bad item is a config error
    return cfg.get_list("server_sockets", "store_addresses") or [cfg.get("server_socket")]


def _passed_on(sink: Any) -> bool:
    """Whether part of an answer went on to its consumer already (a stream), so that
    sending the request again would hand the consumer bytes twice."""
    return isinstance(sink, StreamSink) and sink.received > 0


# What a session id is made of (random hex, then base64url pieces joined by dots);
# anything else never reaches a header line.
_SESSION_ID = re.compile(r"[A-Za-z0-9._-]{1,1024}")


def _session_header(fields: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> bytes:
    """The X-Session-Id header naming a call's session: without it the store takes no
    more than a logon's worth of body (max_soap_size_before_logon), and a stream is
    served only to the session that opened it."""
    pairs = fields.items() if isinstance(fields, Mapping) else fields
    session_id = next((value for name, value in pairs if name == "sessionId"), None)
    if not isinstance(session_id, str) or not _SESSION_ID.fullmatch(session_id):
        return b""
    return b"X-Session-Id: %s\r\n" % session_id.encode("ascii")


class BadHref(GroupwareError):
    code = "badRequest"
    fault_side = "Client"


def _soap_result(sink: BufferSink, op: str) -> etree._Element:
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


def _upload_error(sink: BufferSink) -> GroupwareError:
    data = sink.body()
    if b"Fault" in data:
        try:
            el = codec.body_of(data)
            if el.tag == _FAULT:
                return codec.fault_error(el)
        except GroupwareError:
            pass
    return _http_error(sink.status, "upload")


def _blob_keyring(cfg: Any) -> Any:
    """The blob master keys, if this process may read them; without them sources of
    encrypted blobs come through the store's socket."""
    from shared.sealed import Keyring
    try:
        return Keyring.from_config(cfg)
    except ConfigError as exc:
        log.info("reading message sources through the store: %s", exc)
        return None


def _http_error(status: int, what: str) -> GroupwareError:
    if status == 413:
        return TooLarge(f"{what}: too large for the store server")
    if status == 404:
        return NotFound(f"{what}: not found")
    if status in (401, 403):
        return SessionInvalid(f"{what}: session refused") if status == 401 else Forbidden(f"{what}: forbidden")
    if status in (502, 503, 504):
        return Unavailable(f"{what}: store server unavailable ({status})")
    if status == 507:
        return StorageFull(f"{what}: the store's disk is full")
    if status == 400:
        return BadRequest(f"{what}: rejected by the store server")
    return Internal(f"{what}: unexpected HTTP status {status}")


def _translate(reason: Failure) -> Any:
    """Map transport failures to `Unavailable`; keep our own errors as they are."""
    if reason.check(GroupwareError, defer.CancelledError, StreamStopped):
        return reason
    if reason.check(ProtocolError):
        return Failure(Unavailable(f"bad response from the store server: {reason.getErrorMessage()}"))
    if reason.check(ConnectionGone, ierror.ConnectError, ierror.ConnectionLost, ierror.ConnectionDone, OSError):
        return Failure(Unavailable(reason.getErrorMessage()))
    return reason
