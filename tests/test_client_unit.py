"""HTTP framing of the store client against a scripted in-process server.

The fake server reads one request at a time and hands it to the test's script,
which writes whatever bytes the test wants: split responses, chunked bodies,
truncated answers, hostile headers.
"""
from __future__ import annotations

import os
import socket

import pytest
from twisted.internet import defer, protocol, task
from twisted.internet.interfaces import IConsumer
from zope.interface import implementer

from shared import codec
from shared.client import StoreClient, StreamStopped
from shared.errors import NotFound, TooLarge, Unavailable

from reactor_thread import ReactorThread, reactor_thread  # noqa: F401  (fixture)

OK_BODY = codec.envelope(codec.element("whoamiResponse", codec.element("storeId")))
WHOAMI = [("sessionId", "s1")]


def response(body: bytes = OK_BODY, status: str = "200 OK", extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 %s\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: %d\r\n%s\r\n"
            % (status.encode(), len(body), extra)) + body


class FakeHTTP(protocol.Protocol):
    def connectionMade(self) -> None:
        self.buf = b""
        self.factory.connections += 1
        self.requests_here = 0

    def dataReceived(self, data: bytes) -> None:
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
def client(reactor_thread: ReactorThread, server: FakeServer):
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


def test_simple_call_and_keep_alive(reactor_thread, server, client):
    for _ in range(5):
        el = reactor_thread.call(client.call, "whoami", WHOAMI)
        assert el.tag == codec.gw("whoamiResponse")
    assert server.factory.connections == 1
    head, body = server.factory.requests[0]
    assert head.startswith("POST /soap HTTP/1.1")
    assert 'SOAPAction: "urn:groupware:store:1#whoami"' in head
    assert codec.operation_of(codec.body_of(body)) == "whoami"


def test_response_in_tiny_pieces(reactor_thread, server, client):
    data = response()
    script(server, lambda conn, h, b: later_writes(conn, [data[i:i + 7] for i in range(0, len(data), 7)], 0.0005))
    el = reactor_thread.call(client.call, "whoami", WHOAMI)
    assert el.tag == codec.gw("whoamiResponse")


def test_chunked_response_with_extensions_and_trailer(reactor_thread, server, client):
    body = OK_BODY
    chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(body[i:i + 10]), body[i:i + 10]) for i in range(0, len(body), 10))
    data = (b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n"
            + chunks + b"0\r\nX-Trailer: yes\r\n\r\n")
    script(server, lambda conn, h, b: later_writes(conn, [data[i:i + 13] for i in range(0, len(data), 13)], 0.0005))
    for _ in range(2):  # and the connection stays usable after the trailer
        assert reactor_thread.call(client.call, "whoami", WHOAMI).tag == codec.gw("whoamiResponse")
    assert server.factory.connections == 1


def test_drop_mid_response_is_unavailable(reactor_thread, server, client):
    data = response()
    script(server, lambda conn, h, b: later_writes(conn, [data[:len(data) // 2]], close=True))
    with pytest.raises(Unavailable):
        reactor_thread.call(client.call, "whoami", WHOAMI)
    # The next call gets a fresh connection and works.
    script(server, lambda conn, h, b: conn.transport.write(response()))
    assert reactor_thread.call(client.call, "whoami", WHOAMI) is not None


def test_refused_is_unavailable(reactor_thread, tmp_path):
    c = StoreClient(reactor_thread.reactor, str(tmp_path / "nothing.sock"), 2)
    with pytest.raises(Unavailable):
        reactor_thread.call(c.call, "whoami", WHOAMI)
    c2 = StoreClient(reactor_thread.reactor, "tcp:127.0.0.1:%d" % _free_port(), 2)
    with pytest.raises(Unavailable):
        reactor_thread.call(c2.call, "whoami", WHOAMI)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_413_maps_to_too_large(reactor_thread, server, client):
    fault = codec.fault(TooLarge("request body over 16M"))
    script(server, lambda conn, h, b: conn.transport.write(response(fault, "413 Payload Too Large")))
    with pytest.raises(TooLarge):
        reactor_thread.call(client.call, "whoami", WHOAMI)
    script(server, lambda conn, h, b: conn.transport.write(
        b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
    with pytest.raises(TooLarge):
        reactor_thread.call(client.call, "whoami", WHOAMI)


def test_fault_maps_to_error_class(reactor_thread, server, client):
    fault = codec.fault(NotFound("no folder 7"))
    script(server, lambda conn, h, b: conn.transport.write(response(fault, "500 Internal Server Error")))
    with pytest.raises(NotFound, match="no folder 7"):
        reactor_thread.call(client.call, "whoami", WHOAMI)


def test_oversized_headers_are_refused(reactor_thread, server, client):
    def huge(conn, h, b):
        conn.transport.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(200):
            conn.transport.write(b"X-Junk: " + b"a" * 1000 + b"\r\n")
    script(server, huge)
    with pytest.raises(Unavailable, match="headers"):
        reactor_thread.call(client.call, "whoami", WHOAMI)


@pytest.mark.parametrize("raw", [
    b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n\r\n<x/>",                        # no length
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",                  # bad chunk size
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",                           # unknown coding
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",       # conflicting lengths
    b"SMTP ready\r\n\r\n",                                                           # not HTTP
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 2000,         # endless size line
])
def test_broken_framing_is_unavailable(reactor_thread, server, client, raw):
    script(server, lambda conn, h, b: conn.transport.write(raw))
    with pytest.raises(Unavailable):
        reactor_thread.call(client.call, "whoami", WHOAMI)


def test_response_over_cap(reactor_thread, server):
    c = StoreClient(reactor_thread.reactor, server.path, 1, max_response_size=1000)
    script(server, lambda conn, h, b: conn.transport.write(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"400\r\n" + b"x" * 1024 + b"\r\n" * 3))
    with pytest.raises(Unavailable, match="over"):
        reactor_thread.call(c.call, "whoami", WHOAMI)
    script(server, lambda conn, h, b: conn.transport.write(response(b"x" * 5000)))
    with pytest.raises(Unavailable, match="over"):
        reactor_thread.call(c.call, "whoami", WHOAMI)
    reactor_thread.call(c.close)


def test_stale_connection_retried_for_idempotent_calls(reactor_thread, server, client):
    def answer_once_then_drop(conn, h, b):
        if conn.requests_here == 1:
            conn.transport.write(response())
        else:
            conn.transport.loseConnection()  # a keep-alive timeout racing our request
    script(server, answer_once_then_drop)
    reactor_thread.call(client.call, "whoami", WHOAMI)
    assert reactor_thread.call(client.call, "whoami", WHOAMI) is not None
    assert server.factory.connections == 2
    # Not retried when resending could do the work twice.
    with pytest.raises(Unavailable):
        reactor_thread.call(client.call, "createMessage", WHOAMI)


def test_pool_queues_requests(reactor_thread, server):
    c = StoreClient(reactor_thread.reactor, server.path, 2)
    script(server, lambda conn, h, b: later_writes(conn, [response()], 0.01))

    def many():
        return defer.gatherResults([c.call("whoami", WHOAMI) for _ in range(20)], consumeErrors=True)
    results = reactor_thread.call(many)
    assert len(results) == 20
    assert server.factory.connections == 2
    reactor_thread.call(c.close)


def test_cancel_drops_the_connection(reactor_thread, server, client):
    script(server, lambda conn, h, b: None)  # a long poll that never answers

    def start_and_cancel():
        d = client.call("waitForChanges", WHOAMI, long_poll=True)
        from twisted.internet import reactor
        reactor.callLater(0.05, d.cancel)
        return d
    with pytest.raises(defer.CancelledError):
        reactor_thread.call(start_and_cancel)


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


def test_stream_backpressure(reactor_thread, server, client):
    total = 8 * 1024 * 1024
    block = os.urandom(64 * 1024)

    def serve_big(conn, h, b):
        conn.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                             b"Content-Length: %d\r\n\r\n" % total)
        for _ in range(total // len(block)):
            conn.transport.write(block)
    script(server, serve_big)
    consumer = SlowConsumer()
    d_holder = {}
    reactor_thread.call(lambda: d_holder.update(d=client.stream("/stream/abc", consumer)))
    reactor_thread.call(task.deferLater, reactor_thread.reactor, 0.3, lambda: None)
    # Paused: only what one read plus kernel buffers hold arrived, not the body.
    assert 0 < consumer.received < total // 4
    reactor_thread.call(consumer.producer.resumeProducing)
    got = reactor_thread.call(lambda: d_holder["d"])
    assert got == total == consumer.received
    assert consumer.unregistered
    assert server.factory.requests[0][0].startswith("GET /stream/abc HTTP/1.1")


def test_stream_range_and_callback(reactor_thread, server, client):
    data = bytes(range(256)) * 100

    def ranged(conn, h, b):
        assert "Range: bytes=10-19" in h
        part = data[10:20]
        later_writes(conn, [b"HTTP/1.1 206 Partial Content\r\nContent-Length: %d\r\n\r\n" % len(part), part])
    script(server, ranged)
    pieces: list[bytes] = []
    n = reactor_thread.call(client.stream, "/stream/t", pieces.append, 10, 20)
    assert n == 10 and b"".join(pieces) == data[10:20]


def test_stream_stop_and_not_found(reactor_thread, server, client):
    script(server, lambda conn, h, b: conn.transport.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
    with pytest.raises(NotFound):
        reactor_thread.call(client.stream, "/stream/gone", lambda chunk: None)

    def endless(conn, h, b):
        conn.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n" + b"x" * 70000)
    script(server, endless)

    @implementer(IConsumer)
    class Quitter(SlowConsumer):
        def write(self, data):
            self.producer.stopProducing()
    with pytest.raises(StreamStopped):
        reactor_thread.call(client.stream, "/stream/x", Quitter())


def test_upload_streams_file(reactor_thread, server, client, tmp_path):
    path = tmp_path / "big.eml"
    payload = os.urandom(3 * 1024 * 1024 + 17)
    path.write_bytes(payload)
    script(server, lambda conn, h, b: conn.transport.write(
        b"HTTP/1.1 201 Created\r\nContent-Length: 6\r\n\r\nup-123"))
    upload_id = reactor_thread.call(client.upload, "sess", str(path))
    assert upload_id == "up-123"
    head, body = server.factory.requests[-1]
    assert head.startswith("PUT /upload HTTP/1.1") and "X-Session-Id: sess" in head
    assert body == payload


def test_upload_refused_with_413(reactor_thread, server, client, tmp_path):
    path = tmp_path / "big.eml"
    path.write_bytes(b"x" * 200000)
    script(server, lambda conn, h, b: conn.transport.write(
        b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
    with pytest.raises(TooLarge):
        reactor_thread.call(client.upload, "sess", str(path))


# -- TCP and TLS endpoints ----------------------------------------------------------------------

def _make_ca_and_server_cert(directory) -> tuple[str, str, str]:
    """A throwaway CA and a localhost certificate it signed: (ca.pem, cert.pem, key.pem)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("Test CA")).issuer_name(name("Test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("localhost")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = [os.path.join(str(directory), n) for n in ("ca.pem", "cert.pem", "key.pem")]
    with open(paths[0], "wb") as fp:
        fp.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as fp:
        fp.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[2], "wb") as fp:
        fp.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    return paths[0], paths[1], paths[2]


def test_tcp_and_verified_tls(reactor_thread, tmp_path):
    from shared.tls import server_options

    ca, cert, key = _make_ca_and_server_cert(tmp_path)
    reactor = reactor_thread.reactor

    def listen():
        factory = protocol.Factory.forProtocol(FakeHTTP)
        factory.connections, factory.requests = 0, []
        factory.script = lambda conn, head, body: conn.transport.write(response())
        tcp = reactor.listenTCP(0, factory, interface="127.0.0.1")
        tls = reactor.listenSSL(0, factory, server_options(cert, key), interface="127.0.0.1")
        return tcp, tls
    tcp, tls = reactor_thread.call(listen)
    try:
        clients = [
            StoreClient(reactor, f"tcp:127.0.0.1:{tcp.getHost().port}", 2),
            StoreClient(reactor, f"tls:localhost:{tls.getHost().port}:ca={ca}", 2),
            StoreClient(reactor, f"tls:localhost:{tls.getHost().port}", 2, ca_file=ca),
        ]
        for c in clients:
            for _ in range(3):
                assert reactor_thread.call(c.call, "whoami", WHOAMI).tag == codec.gw("whoamiResponse")
            reactor_thread.call(c.close)
        # Without our CA the certificate can't be verified: refused, reported as Unavailable.
        untrusted = StoreClient(reactor, f"tls:localhost:{tls.getHost().port}", 1)
        with pytest.raises(Unavailable):
            reactor_thread.call(untrusted.call, "whoami", WHOAMI)
        # Nor is a certificate for another name accepted.
        wrong_name = StoreClient(reactor, f"tls:127.0.0.2:{tls.getHost().port}", 1, ca_file=ca)
        with pytest.raises(Unavailable):
            reactor_thread.call(wrong_name.call, "whoami", WHOAMI)
    finally:
        reactor_thread.call(tcp.stopListening)
        reactor_thread.call(tls.stopListening)


def test_bad_endpoint_strings():
    from twisted.internet import reactor
    for address in ("tcp:host", "tcp::80", "tcp:host:port", "tls:host:1:bogus=1"):
        with pytest.raises(ValueError):
            StoreClient(reactor, address)


def test_silent_server_times_out_as_unavailable(reactor_thread, server, client):
    script(server, lambda conn, h, b: None)
    with pytest.raises(Unavailable, match="did not answer"):
        reactor_thread.call(lambda: client.call("whoami", WHOAMI, timeout=0.2))
    # Queued behind busy connections counts too.
    c = StoreClient(reactor_thread.reactor, server.path, 1)

    def two():
        first = c.call("whoami", WHOAMI, timeout=0.3)
        second = c.call("whoami", WHOAMI, timeout=0.1)
        return defer.DeferredList([first, second])
    results = reactor_thread.call(two)
    assert all(not ok and r.check(Unavailable) for ok, r in results)
    reactor_thread.call(c.close)


def test_connection_reused_after_paused_stream_and_upload(reactor_thread, server, tmp_path):
    c = StoreClient(reactor_thread.reactor, server.path, 1)
    body = b"y" * 100000

    def answer(conn, h, b):
        if h.startswith("GET"):
            conn.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        elif h.startswith("PUT"):
            conn.transport.write(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nid")
        else:
            conn.transport.write(response())
    script(server, answer)

    @implementer(IConsumer)
    class PausesAtTheEnd(SlowConsumer):
        def write(self, data):
            self.received += len(data)
            if self.received == len(body):
                self.producer.pauseProducing()  # and never resumes
    assert reactor_thread.call(c.stream, "/stream/a", PausesAtTheEnd()) == len(body)
    assert reactor_thread.call(c.call, "whoami", WHOAMI) is not None
    path = tmp_path / "m.eml"
    path.write_bytes(b"z" * 200000)
    assert reactor_thread.call(c.upload, "s", str(path)) == "id"
    assert reactor_thread.call(c.call, "whoami", WHOAMI) is not None
    assert server.factory.connections == 1
    reactor_thread.call(c.close)
