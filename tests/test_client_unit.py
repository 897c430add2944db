"""The store client (shared/client.py) against the real store server, and HTTP framing
against a scripted in-process server.

Everything a store server does is tested against the real one, reached through a
relay that only counts connections and keeps the requests it passes on. Transport
faults no real server can be made to produce (split or truncated answers, dropped
connections, hostile headers, silence) come from a fake server that reads one
request at a time and hands it to the test's script, which writes whatever bytes
the test wants.
"""
from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

import pytest
from twisted.internet import defer, protocol
from twisted.internet.interfaces import IConsumer
from twisted.protocols import portforward
from zope.interface import implementer

from shared import codec
from shared.client import StoreClient, StreamStopped
from shared.errors import NotFound, TooLarge, Unavailable

from certificates import make_ca_and_server_cert
from harness import USERS, StoreProcess
from reactor_thread import ReactorThread
from soap_client import inbox_of
from waiting import wait_until

MAX_MESSAGE = 9 * 1024 * 1024  # over the 8 MB stream of the back-pressure test


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> StoreProcess:
    """The real store server: UNIX socket, plain TCP and TLS (with `store.ca` as its CA)."""
    directory = tmp_path_factory.mktemp("client-store")
    ca, cert, key = make_ca_and_server_cert(str(directory))
    proc = StoreProcess(directory / "data", {
        "server_listen_tls": "127.0.0.1:0", "server_ssl_cert_file": cert, "server_ssl_key_file": key,
        "max_soap_size": "1M", "max_message_size": str(MAX_MESSAGE)}).start()
    proc.ca = ca
    yield proc
    proc.stop()


# -- requests as a server reads them --------------------------------------------------------------

class RequestReader:
    """Splits the bytes a client sends into (head, body) requests, bodies by Content-Length."""

    def __init__(self, on_request: Callable[[str, bytes], None]) -> None:
        self.buf = b""
        self.on_request = on_request

    def feed(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4:end + 4 + length]
            self.buf = self.buf[end + 4 + length:]
            self.on_request(head, body)


# -- the relay in front of the real store -----------------------------------------------------------

class RecordingRelay(portforward.ProxyServer):
    """Passes bytes both ways (with back-pressure) to the store's UNIX socket, noting requests."""

    noisy = False

    def connectionMade(self) -> None:
        self.factory.connections += 1
        self.reader = RequestReader(lambda head, body: self.factory.requests.append((head, body)))
        self.transport.pauseProducing()  # until the store side is connected
        store_side = self.clientProtocolFactory()
        store_side.setServer(self)
        self.factory.reactor.connectUNIX(self.factory.store_socket, store_side)

    def dataReceived(self, data: bytes) -> None:
        self.reader.feed(data)
        super().dataReceived(data)


class RelayFactory(protocol.Factory):
    protocol = RecordingRelay

    def __init__(self, reactor, store_socket: str) -> None:
        self.reactor = reactor
        self.store_socket = store_socket
        self.connections = 0
        self.requests: list[tuple[str, bytes]] = []


@pytest.fixture
def relay(reactor_thread: ReactorThread, store: StoreProcess, tmp_path):
    """A relay to the store on a socket of its own; `relay.path` is where clients connect."""
    factory = RelayFactory(reactor_thread.reactor, store.socket_path)
    factory.path = str(tmp_path / "relay.sock")
    port = reactor_thread.call(reactor_thread.reactor.listenUNIX, factory.path, factory)
    yield factory
    reactor_thread.call(port.stopListening)


def store_client(rt: ReactorThread, endpoint: str, connections: int = 4, **options) -> StoreClient:
    """A client that reads streams over HTTP (never the store's blob files)."""
    return StoreClient(rt.reactor, endpoint, connections, blob_files=False, **options)


@pytest.fixture
def direct(reactor_thread: ReactorThread, store: StoreProcess):
    """A client straight to the store, for what a test sets up around the client under test."""
    c = store_client(reactor_thread, store.socket_path)
    yield c
    reactor_thread.call(c.close)


@pytest.fixture
def client(reactor_thread: ReactorThread, relay: RelayFactory):
    c = store_client(reactor_thread, relay.path)
    yield c
    reactor_thread.call(c.close)


@pytest.fixture
def session(reactor_thread: ReactorThread, direct: StoreClient) -> str:
    answer = reactor_thread.call(direct.call, "logon", [("user", "alice"), ("password", USERS["alice"])])
    return codec.field(answer, "sessionId")


def whoami(session_id: str) -> list[tuple[str, str]]:
    return [("sessionId", session_id)]


def inbox_id(rt: ReactorThread, client: StoreClient, session_id: str) -> int:
    return inbox_of(rt.call(client.call, "listFolders", whoami(session_id)))


def message_of_size(size: int) -> bytes:
    head = b"Subject: sized\r\n\r\n"
    line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n"
    body = line * ((size - len(head)) // len(line) + 1)
    return head + body[:size - len(head) - 2] + b"\r\n"


def stored_message(rt: ReactorThread, client: StoreClient, session_id: str, source: bytes, tmp_path) -> str:
    """Store `source` in alice's Inbox (through an upload); the href of its stream."""
    path = tmp_path / "stored.eml"
    path.write_bytes(source)
    upload_id = rt.call(client.upload, session_id, str(path))
    inbox = inbox_id(rt, client, session_id)
    created = rt.call(client.call, "createMessage", [*whoami(session_id), ("folderId", inbox),
                                                      ("uploadId", upload_id)])
    stream = rt.call(client.call, "openStream", [*whoami(session_id), ("folderId", inbox),
                                                  ("uid", int(codec.field(created, "uid")))])
    assert int(codec.field(stream, "size")) == len(source)
    return codec.field(stream, "href")


@implementer(IConsumer)
class SlowConsumer:
    def __init__(self) -> None:
        self.received = 0
        self.producer = None
        self.unregistered = False

    def registerProducer(self, producer, streaming):
        assert streaming
        self.producer = producer

    def unregisterProducer(self):
        self.unregistered = True

    def write(self, data):
        if self.received == 0:
            self.producer.pauseProducing()
        self.received += len(data)


# -- against the real store server ------------------------------------------------------------------

def test_simple_call_and_keep_alive(reactor_thread, relay, client, session):
    for _ in range(5):
        el = reactor_thread.call(client.call, "whoami", whoami(session))
        assert el.tag == codec.gw("whoamiResponse")
    assert relay.connections == 1
    head, body = relay.requests[0]
    assert head.startswith("POST /soap HTTP/1.1")
    assert 'SOAPAction: "urn:groupware:store:1#whoami"' in head
    assert codec.operation_of(codec.body_of(body)) == "whoami"


def test_refused_is_unavailable(reactor_thread, tmp_path):
    c = StoreClient(reactor_thread.reactor, str(tmp_path / "nothing.sock"), 2)
    with pytest.raises(Unavailable):
        reactor_thread.call(c.call, "whoami", whoami("s1"))
    c2 = StoreClient(reactor_thread.reactor, "tcp:127.0.0.1:%d" % _free_port(), 2)
    with pytest.raises(Unavailable):
        reactor_thread.call(c2.call, "whoami", whoami("s1"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_413_maps_to_too_large(reactor_thread, direct, session):
    over_max_soap_size = "x" * (1024 * 1024 + 1)
    with pytest.raises(TooLarge):
        reactor_thread.call(direct.call, "whoami", [*whoami(session), ("padding", over_max_soap_size)])
    # And the connection pool carries on.
    assert reactor_thread.call(direct.call, "whoami", whoami(session)) is not None


def test_fault_maps_to_error_class(reactor_thread, direct, session):
    with pytest.raises(NotFound, match="folder 7777777 not found"):
        reactor_thread.call(direct.call, "queryRows", [*whoami(session), ("folderId", 7777777),
                                                        ("columns", "uid")])


def test_response_over_cap(reactor_thread, store, session):
    c = store_client(reactor_thread, store.socket_path, 1, max_response_size=1000)
    with pytest.raises(Unavailable, match="over"):
        reactor_thread.call(c.call, "listFolders", whoami(session))  # alice's folders: over 1000 bytes
    reactor_thread.call(c.close)


def test_pool_queues_requests(reactor_thread, relay, session):
    c = store_client(reactor_thread, relay.path, 2)

    def many():
        return defer.gatherResults([c.call("whoami", whoami(session)) for _ in range(20)], consumeErrors=True)
    results = reactor_thread.call(many)
    assert len(results) == 20
    assert relay.connections == 2
    reactor_thread.call(c.close)


def test_cancel_drops_the_connection(reactor_thread, relay, client, direct, session):
    inbox = inbox_id(reactor_thread, direct, session)
    highest = reactor_thread.call(direct.call, "getChanges", [*whoami(session), ("folderId", inbox),
                                                               ("sinceModseq", 0)])
    watch = codec.element("watch", folderId=str(inbox), modseq=codec.field(highest, "highestModseq"))
    calls = {}
    reactor_thread.call(lambda: calls.update(poll=client.call(
        "waitForChanges", [*whoami(session), ("watch", watch), ("timeout", 60)], long_poll=True)))
    # Cancelled once the store holds the poll, which it would answer only on a change.
    wait_until(lambda: relay.requests, message="the long poll never reached the store")
    reactor_thread.call(calls["poll"].cancel)
    with pytest.raises(defer.CancelledError):
        reactor_thread.call(lambda: calls["poll"])


def test_stream_backpressure(reactor_thread, relay, client, direct, session, tmp_path):
    total = 8 * 1024 * 1024
    href = stored_message(reactor_thread, direct, session, message_of_size(total), tmp_path)
    consumer = SlowConsumer()
    d_holder = {}
    reactor_thread.call(lambda: d_holder.update(d=client.stream(session, href, consumer)))
    wait_until(lambda: consumer.received, message="the stream never started")
    time.sleep(0.3)  # the consumer holds the stream paused: what comes meanwhile is the check
    # Paused: only what one read plus kernel buffers hold arrived, not the body.
    assert 0 < consumer.received < total // 4
    reactor_thread.call(consumer.producer.resumeProducing)
    got = reactor_thread.call(lambda: d_holder["d"])
    assert got == total == consumer.received
    assert consumer.unregistered
    assert relay.requests[0][0].startswith(f"GET {href} HTTP/1.1")


def test_stream_range_and_callback(reactor_thread, relay, client, direct, session, tmp_path):
    data = message_of_size(25600)
    href = stored_message(reactor_thread, direct, session, data, tmp_path)
    pieces: list[bytes] = []
    n = reactor_thread.call(client.stream, session, href, pieces.append, 10, 20)
    assert n == 10 and b"".join(pieces) == data[10:20]
    assert "Range: bytes=10-19" in relay.requests[0][0]


def test_stream_stop_and_not_found(reactor_thread, direct, session, tmp_path):
    with pytest.raises(NotFound):
        reactor_thread.call(direct.stream, session, "/stream/gone", lambda chunk: None)
    href = stored_message(reactor_thread, direct, session, message_of_size(1024 * 1024), tmp_path)

    @implementer(IConsumer)
    class Quitter(SlowConsumer):
        def write(self, data):
            self.producer.stopProducing()
    with pytest.raises(StreamStopped):
        reactor_thread.call(direct.stream, session, href, Quitter())


def test_upload_streams_file(reactor_thread, relay, client, direct, session, tmp_path):
    path = tmp_path / "big.eml"
    payload = message_of_size(3 * 1024 * 1024 + 17)
    path.write_bytes(payload)
    upload_id = reactor_thread.call(client.upload, session, str(path))
    head, body = relay.requests[-1]
    assert head.startswith("PUT /upload HTTP/1.1") and f"X-Session-Id: {session}" in head
    assert body == payload
    # The id is the store's name for exactly those bytes.
    created = reactor_thread.call(direct.call, "createMessage", [
        *whoami(session), ("folderId", inbox_id(reactor_thread, direct, session)), ("uploadId", upload_id)])
    assert int(codec.field(created, "size")) == len(payload)


def test_upload_refused_with_413(reactor_thread, direct, session, tmp_path):
    path = tmp_path / "big.eml"
    path.write_bytes(b"x" * (MAX_MESSAGE + 1))
    with pytest.raises(TooLarge):
        reactor_thread.call(direct.upload, session, str(path))


def test_tcp_and_verified_tls(reactor_thread, store, session):
    reactor = reactor_thread.reactor
    tcp_port, tls_port = store.ports[0], store.ports[-1]
    clients = [
        StoreClient(reactor, f"tcp:127.0.0.1:{tcp_port}", 2),
        StoreClient(reactor, f"tls:localhost:{tls_port}:ca={store.ca}", 2),
        StoreClient(reactor, f"tls:localhost:{tls_port}", 2, ca_file=store.ca),
    ]
    for c in clients:
        for _ in range(3):
            assert reactor_thread.call(c.call, "whoami", whoami(session)).tag == codec.gw("whoamiResponse")
        reactor_thread.call(c.close)
    # Without our CA the certificate can't be verified: refused, reported as Unavailable.
    untrusted = StoreClient(reactor, f"tls:localhost:{tls_port}", 1)
    with pytest.raises(Unavailable):
        reactor_thread.call(untrusted.call, "whoami", whoami(session))
    # Nor is a certificate for another name accepted.
    wrong_name = StoreClient(reactor, f"tls:127.0.0.2:{tls_port}", 1, ca_file=store.ca)
    with pytest.raises(Unavailable):
        reactor_thread.call(wrong_name.call, "whoami", whoami(session))


def test_bad_endpoint_strings():
    from twisted.internet import reactor
    for address in ("tcp:host", "tcp::80", "tcp:host:port", "tls:host:1:bogus=1"):
        with pytest.raises(ValueError):
            StoreClient(reactor, address)


def test_connection_reused_after_paused_stream_and_upload(reactor_thread, relay, direct, session, tmp_path):
    body = message_of_size(100000)
    href = stored_message(reactor_thread, direct, session, body, tmp_path)
    c = store_client(reactor_thread, relay.path, 1)

    @implementer(IConsumer)
    class PausesAtTheEnd(SlowConsumer):
        def write(self, data):
            self.received += len(data)
            if self.received == len(body):
                self.producer.pauseProducing()  # and never resumes
    assert reactor_thread.call(c.stream, session, href, PausesAtTheEnd()) == len(body)
    assert reactor_thread.call(c.call, "whoami", whoami(session)) is not None
    path = tmp_path / "m.eml"
    path.write_bytes(message_of_size(200000))
    assert reactor_thread.call(c.upload, session, str(path))
    assert reactor_thread.call(c.call, "whoami", whoami(session)) is not None
    assert relay.connections == 1
    reactor_thread.call(c.close)


# -- transport faults, from a scripted server ---------------------------------------------------------

WHOAMI = [("sessionId", "s1")]
OK_BODY = codec.envelope(codec.element("whoamiResponse", codec.element("storeId")))


def response(body: bytes = OK_BODY, status: str = "200 OK", extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 %s\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: %d\r\n%s\r\n"
            % (status.encode(), len(body), extra)) + body


class FakeHTTP(protocol.Protocol):
    def connectionMade(self) -> None:
        self.factory.connections += 1
        self.requests_here = 0
        self.reader = RequestReader(self.got)

    def dataReceived(self, data: bytes) -> None:
        self.reader.feed(data)

    def got(self, head: str, body: bytes) -> None:
        self.requests_here += 1
        self.factory.requests.append((head, body))
        self.factory.script(self, head, body)


class FakeServer:
    def __init__(self, reactor, path: str) -> None:
        self.factory = protocol.Factory.forProtocol(FakeHTTP)
        self.factory.connections = 0
        self.factory.requests = []
        self.factory.script = lambda conn, head, body: conn.transport.write(response())
        self.port = reactor.listenUNIX(path, self.factory)
        self.path = path


@pytest.fixture
def server(reactor_thread: ReactorThread, tmp_path):
    path = os.path.join(str(tmp_path), "s.sock")
    srv = reactor_thread.call(FakeServer, reactor_thread.reactor, path)
    yield srv
    reactor_thread.call(srv.port.stopListening)


@pytest.fixture
def fake_client(reactor_thread: ReactorThread, server: FakeServer):
    c = reactor_thread.call(StoreClient, reactor_thread.reactor, server.path, 4)
    yield c
    reactor_thread.call(c.close)


def script(server: FakeServer, fn) -> None:
    server.factory.script = fn


def later_writes(conn, pieces, step=0.002, close=False):
    from twisted.internet import reactor
    for i, piece in enumerate(pieces):
        reactor.callLater(step * i, conn.transport.write, piece)
    if close:
        reactor.callLater(step * len(pieces), conn.transport.loseConnection)


def test_response_in_tiny_pieces(reactor_thread, server, fake_client):
    data = response()
    script(server, lambda conn, h, b: later_writes(conn, [data[i:i + 7] for i in range(0, len(data), 7)], 0.0005))
    el = reactor_thread.call(fake_client.call, "whoami", WHOAMI)
    assert el.tag == codec.gw("whoamiResponse")


def test_chunked_response_with_extensions_and_trailer(reactor_thread, server, fake_client):
    body = OK_BODY
    chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(body[i:i + 10]), body[i:i + 10]) for i in range(0, len(body), 10))
    data = (b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n"
            + chunks + b"0\r\nX-Trailer: yes\r\n\r\n")
    script(server, lambda conn, h, b: later_writes(conn, [data[i:i + 13] for i in range(0, len(data), 13)], 0.0005))
    for _ in range(2):  # and the connection stays usable after the trailer
        assert reactor_thread.call(fake_client.call, "whoami", WHOAMI).tag == codec.gw("whoamiResponse")
    assert server.factory.connections == 1


def test_drop_mid_response_is_unavailable(reactor_thread, server, fake_client):
    data = response()
    script(server, lambda conn, h, b: later_writes(conn, [data[:len(data) // 2]], close=True))
    with pytest.raises(Unavailable):
        reactor_thread.call(fake_client.call, "whoami", WHOAMI)
    # The next call gets a fresh connection and works.
    script(server, lambda conn, h, b: conn.transport.write(response()))
    assert reactor_thread.call(fake_client.call, "whoami", WHOAMI) is not None


def test_oversized_headers_are_refused(reactor_thread, server, fake_client):
    def huge(conn, h, b):
        conn.transport.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(200):
            conn.transport.write(b"X-Junk: " + b"a" * 1000 + b"\r\n")
    script(server, huge)
    with pytest.raises(Unavailable, match="headers"):
        reactor_thread.call(fake_client.call, "whoami", WHOAMI)


@pytest.mark.parametrize("raw", [
    b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n\r\n<x/>",                        # no length
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",                  # bad chunk size
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",                           # unknown coding
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",       # conflicting lengths
    b"SMTP ready\r\n\r\n",                                                           # not HTTP
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 2000,         # endless size line
])
def test_broken_framing_is_unavailable(reactor_thread, server, fake_client, raw):
    script(server, lambda conn, h, b: conn.transport.write(raw))
    with pytest.raises(Unavailable):
        reactor_thread.call(fake_client.call, "whoami", WHOAMI)


def test_stale_connection_retried_for_idempotent_calls(reactor_thread, server, fake_client):
    def answer_once_then_drop(conn, h, b):
        if conn.requests_here == 1:
            conn.transport.write(response())
        else:
            conn.transport.loseConnection()  # a keep-alive timeout racing our request
    script(server, answer_once_then_drop)
    reactor_thread.call(fake_client.call, "whoami", WHOAMI)
    assert reactor_thread.call(fake_client.call, "whoami", WHOAMI) is not None
    assert server.factory.connections == 2
    # Not retried when resending could do the work twice.
    with pytest.raises(Unavailable):
        reactor_thread.call(fake_client.call, "createMessage", WHOAMI)


def test_silent_server_times_out_as_unavailable(reactor_thread, server, fake_client):
    script(server, lambda conn, h, b: None)
    with pytest.raises(Unavailable, match="did not answer"):
        reactor_thread.call(lambda: fake_client.call("whoami", WHOAMI, timeout=0.2))
    # Queued behind busy connections counts too.
    c = StoreClient(reactor_thread.reactor, server.path, 1)

    def two():
        first = c.call("whoami", WHOAMI, timeout=0.3)
        second = c.call("whoami", WHOAMI, timeout=0.1)
        return defer.DeferredList([first, second])
    results = reactor_thread.call(two)
    assert all(not ok and r.check(Unavailable) for ok, r in results)
    reactor_thread.call(c.close)


def test_413_without_a_fault_maps_to_too_large(reactor_thread, server, fake_client):
    # An empty 413 with Connection: close, as a proxy in front of the store would answer.
    script(server, lambda conn, h, b: conn.transport.write(
        b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
    with pytest.raises(TooLarge):
        reactor_thread.call(fake_client.call, "whoami", WHOAMI)


def test_chunked_response_over_cap(reactor_thread, server):
    c = StoreClient(reactor_thread.reactor, server.path, 1, max_response_size=1000)
    script(server, lambda conn, h, b: conn.transport.write(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"400\r\n" + b"x" * 1024 + b"\r\n" * 3))
    with pytest.raises(Unavailable, match="over"):
        reactor_thread.call(c.call, "whoami", WHOAMI)
    reactor_thread.call(c.close)


# -- several store endpoints ---------------------------------------------------------------------

def answer_op(conn, head: str, body: bytes) -> None:
    """An empty `<op>Response` to whatever operation the request names."""
    op = head.split('#', 1)[1].split('"', 1)[0]
    conn.transport.write(response(codec.envelope(codec.element(op + "Response"))))


@pytest.fixture
def two_servers(reactor_thread: ReactorThread, tmp_path):
    servers = [reactor_thread.call(FakeServer, reactor_thread.reactor, os.path.join(str(tmp_path), f"{n}.sock"))
               for n in ("a", "b")]
    for srv in servers:
        script(srv, answer_op)
    yield servers
    for srv in servers:
        if srv.port.connected:
            reactor_thread.call(srv.port.stopListening)


def test_a_call_that_cannot_connect_goes_to_the_next_endpoint(reactor_thread, two_servers):
    a, b = two_servers
    c = reactor_thread.call(StoreClient, reactor_thread.reactor, [a.path, b.path], 4, retry_wait=0.3)
    assert reactor_thread.call(c.call, "whoami", WHOAMI) is not None
    assert (len(a.factory.requests), len(b.factory.requests)) == (1, 0)
    reactor_thread.call(a.port.stopListening)
    reactor_thread.call(lambda: [conn.transport.loseConnection() for conn in c.endpoints[0].pool.idle])
    # Any call, changing things or not, goes on to b when a cannot be reached: nothing was sent.
    assert reactor_thread.call(c.call, "createMessage", WHOAMI) is not None
    assert reactor_thread.call(c.call, "whoami", WHOAMI) is not None
    assert len(b.factory.requests) == 2
    # a is back; after its back-off the calls go to it again.
    a.port = reactor_thread.call(reactor_thread.reactor.listenUNIX, a.path, a.factory)
    wait_until(lambda: reactor_thread.call(c.call, "whoami", WHOAMI) is not None and len(a.factory.requests) > 1,
               timeout=10, interval=0.1)
    reactor_thread.call(c.close)


@pytest.mark.parametrize("op, goes_elsewhere", [("queryRows", True), ("createMessage", False)])
def test_a_call_lost_in_flight_goes_elsewhere_only_when_idempotent(reactor_thread, two_servers, op, goes_elsewhere):
    a, b = two_servers

    def die(conn, head, body):
        # The instance dies with the request in hand: its port and connections go.
        a.port.stopListening()
        conn.transport.abortConnection()
    script(a, die)
    c = reactor_thread.call(StoreClient, reactor_thread.reactor, [a.path, b.path], 4)
    if goes_elsewhere:
        assert reactor_thread.call(c.call, op, WHOAMI) is not None
        assert len(b.factory.requests) == 1
    else:
        with pytest.raises(Unavailable):
            reactor_thread.call(c.call, op, WHOAMI)
        assert len(b.factory.requests) == 0
        # The next call finds a down and goes to b at once.
        assert reactor_thread.call(c.call, op, WHOAMI) is not None
    assert len(a.factory.requests) == 1
    reactor_thread.call(c.close)
