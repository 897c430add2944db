"""The LMTP protocol layer without a network: each command, pipelining, the per-recipient
replies after DATA and BDAT, and every kind of bad input, over an in-memory transport.

The store side is the delivery pipeline's seam (`resolve`, `deliver`) answered by
`Seam` below, which records what reached it; the real pipeline and store are tested
end to end in test_lmtp_delivery.py.
"""
import ipaddress
import os
from types import SimpleNamespace

import pytest
from twisted.internet import defer, task
from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.testing import StringTransport

from gateways.lmtp.server import LMTPFactory
from gateways.lmtp.session import Limits
from shared.delivery import RecipientResult
from shared.errors import NotFound, Unavailable
from shared.spool import BUFFER


class Seam:
    """The pipeline's two calls. `outcomes` maps an address to the status `deliver` gives it;
    addresses starting "nobody" are unknown, "down" an outage."""

    def __init__(self):
        self.outcomes = {}
        self.delivered = []  # (message bytes, sender, [addresses])
        self.resolving = None  # a Deferred to hold resolve() on, when set
        self.outage = False

    def resolve(self, address):
        if address.startswith("nobody"):
            raise NotFound(address)
        if address.startswith("down"):
            raise Unavailable("store down")
        recipient = SimpleNamespace(address=address, user=address.split("@")[0], detail=None)
        if self.resolving is not None:
            return self.resolving.addCallback(lambda _: recipient)
        return recipient

    def deliver(self, message, sender, recipients):
        if isinstance(message, str):  # a spooled message's file
            with open(message, "rb") as fp:
                message = fp.read()
        self.delivered.append((message, sender, [r.address for r in recipients]))
        if self.outage:
            raise Unavailable("store went away")
        return [RecipientResult(r.address, self.outcomes.get(r.address, "stored")) for r in recipients]


class Client:
    def __init__(self, tmp_path, limits=Limits(), peer=None, trusted=("127.0.0.0/8",)):
        self.seam = Seam()
        self.spool_dir = str(tmp_path / "spool")
        self.factory = LMTPFactory(self.seam, limits, self.spool_dir,
                                   [ipaddress.ip_network(n) for n in trusted], "mx.test")
        self.clock = task.Clock()
        self.server = self.factory.buildProtocol(None)
        self.server.callLater = self.clock.callLater
        self.transport = StringTransport(peerAddress=peer or UNIXAddress(None))
        self.server.makeConnection(self.transport)
        self.greeting = self.take()

    def send(self, data: bytes):
        self.server.dataReceived(data)
        return self.take()

    def take(self):
        text = self.transport.value().decode()
        self.transport.clear()
        return text.splitlines()

    def start(self, *recipients, sender="sender@example.net"):
        lines = [b"LHLO client.test", f"MAIL FROM:<{sender}>".encode()]
        lines += [f"RCPT TO:<{r}>".encode() for r in recipients]
        return self.send(b"\r\n".join(lines) + b"\r\n")

    def spooled(self):
        return os.listdir(self.spool_dir) if os.path.isdir(self.spool_dir) else []


@pytest.fixture
def client(tmp_path):
    return Client(tmp_path)


def test_greeting_and_lhlo_name_the_extensions(client):
    assert client.greeting == ["220 mx.test groupware LMTP ready"]
    assert client.send(b"LHLO client.test\r\n") == [
        "250-mx.test", "250-PIPELINING", "250-ENHANCEDSTATUSCODES", "250-8BITMIME",
        f"250-SIZE {64 * 1024 * 1024}", "250 CHUNKING"]


def test_smtp_greetings_are_refused(client):
    """RFC 2033 §4.1: an LMTP server does not answer HELO/EHLO."""
    assert client.send(b"EHLO client.test\r\n")[0].startswith("500 5.5.1")
    assert client.send(b"HELO client.test\r\n")[0].startswith("500 5.5.1")
    assert client.send(b"LHLO\r\n")[0].startswith("501 5.5.4")


def test_one_reply_per_recipient_after_data_in_rcpt_order(client):
    """RFC 2033 §4.2."""
    client.seam.outcomes = {"full@example.org": "quota", "big@example.org": "toolarge",
                            "busy@example.org": "unavailable", "dup@example.org": "duplicate",
                            "filter@example.org": "rejected"}
    replies = client.start("alice@example.org", "full@example.org", "nobody@example.org", "big@example.org",
                           "busy@example.org", "dup@example.org", "filter@example.org")
    assert replies[-8:] == ["250 2.1.0 OK", "250 2.1.5 OK", "250 2.1.5 OK",
                            "550 5.1.1 <nobody@example.org> User doesn't exist",
                            "250 2.1.5 OK", "250 2.1.5 OK", "250 2.1.5 OK", "250 2.1.5 OK"]
    assert client.send(b"DATA\r\n") == ["354 Send message, end with <CRLF>.<CRLF>"]
    assert client.send(b"Subject: hi\r\n\r\nbody\r\n.\r\n") == [
        "250 2.0.0 <alice@example.org> Saved",
        "552 5.2.2 <full@example.org> Mailbox is full",
        "552 5.3.4 <big@example.org> Message too large",
        "451 4.3.0 <busy@example.org> Temporary failure, try again later",
        "250 2.0.0 <dup@example.org> Already delivered (duplicate)",
        "550 5.7.1 <filter@example.org> Rejected by filter"]
    message, sender, addresses = client.seam.delivered[0]
    assert message == b"Subject: hi\r\n\r\nbody\r\n"
    assert sender == "sender@example.net"
    assert addresses == ["alice@example.org", "full@example.org", "big@example.org", "busy@example.org",
                         "dup@example.org", "filter@example.org"]
    assert client.spooled() == []


def test_a_message_within_the_spool_buffer_never_touches_the_disk_and_a_bigger_one_does(client):
    small = b"Subject: small\r\n\r\n" + b"s" * (BUFFER - 100) + b"\r\n"
    big = b"Subject: big\r\n\r\n" + (b"b" * 998 + b"\r\n") * (2 * BUFFER // 1000)
    seen = []
    deliver = client.seam.deliver
    client.seam.deliver = lambda message, *rest: (seen.append(type(message)), deliver(message, *rest))[1]
    for message in (small, big):
        client.start("alice@example.org")
        client.send(b"DATA\r\n")
        assert client.send(message + b".\r\n") == ["250 2.0.0 <alice@example.org> Saved"]
    assert seen == [bytes, str]
    assert [m for m, _, _ in client.seam.delivered] == [small, big]
    assert client.spooled() == []


def test_a_whole_pipelined_session_in_one_write(client):
    """RFC 2920: replies come in command order, whatever arrives at once."""
    replies = client.send(b"LHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n"
                          b"DATA\r\nx\r\n.\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<a@example.org>\r\n"
                          b"DATA\r\ny\r\n.\r\nQUIT\r\n")
    assert replies[6:] == ["250 2.1.0 OK", "250 2.1.5 OK", "250 2.1.5 OK", "354 Send message, end with <CRLF>.<CRLF>",
                           "250 2.0.0 <a@example.org> Saved", "250 2.0.0 <b@example.org> Saved",
                           "250 2.1.0 OK", "250 2.1.5 OK", "354 Send message, end with <CRLF>.<CRLF>",
                           "250 2.0.0 <a@example.org> Saved", "221 2.0.0 Bye"]
    assert [d[:2] for d in client.seam.delivered] == [(b"x\r\n", ""), (b"y\r\n", "s@example.net")]
    assert client.transport.disconnecting


def test_commands_wait_for_a_slow_store_and_keep_their_order(client):
    client.seam.resolving = defer.Deferred()
    replies = client.send(b"LHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<a@example.org>\r\nNOOP\r\n")
    assert replies[-1] == "250 2.1.0 OK"  # the RCPT waits; NOOP is held behind it
    client.seam.resolving.callback(None)
    assert client.take() == ["250 2.1.5 OK", "250 2.0.0 OK"]


def test_store_outage_at_rcpt_and_after_data_is_temporary(client):
    assert client.start("down@example.org")[-1] == "451 4.3.0 Temporary failure, try again later"
    assert client.send(b"RCPT TO:<a@example.org>\r\nDATA\r\n")[-1].startswith("354")
    client.seam.outage = True
    assert client.send(b"text\r\n.\r\n") == ["451 4.3.0 Temporary failure, try again later"]
    assert client.spooled() == []


def test_sequence_errors(client):
    assert client.send(b"MAIL FROM:<>\r\n")[0].startswith("503 5.5.1")
    client.send(b"LHLO c\r\n")
    assert client.send(b"RCPT TO:<a@example.org>\r\n")[0].startswith("503 5.5.1")
    assert client.send(b"DATA\r\n")[0].startswith("503 5.5.1")
    client.send(b"MAIL FROM:<>\r\n")
    assert client.send(b"MAIL FROM:<>\r\n")[0].startswith("503 5.5.1")
    assert client.send(b"DATA\r\n")[0] == "503 5.5.1 No valid recipients"
    assert client.send(b"RCPT TO:<nobody@example.org>\r\nDATA\r\n")[-1] == "503 5.5.1 No valid recipients"


def test_rset_noop_vrfy_help_and_unknown_commands(client):
    client.start("a@example.org")
    assert client.send(b"RSET\r\n") == ["250 2.0.0 OK"]
    assert client.send(b"DATA\r\n")[0].startswith("503")  # the transaction is gone
    assert client.send(b"NOOP\r\n") == ["250 2.0.0 OK"]
    assert client.send(b"VRFY alice\r\n")[0].startswith("252 2.5.2")
    assert client.send(b"HELP\r\n")[0].startswith("214 2.0.0")
    assert client.send(b"EXPN staff\r\n")[0].startswith("502 5.5.1")
    assert client.send(b"FROB\r\n")[0].startswith("500 5.5.1")
    assert client.send(b"QUIT\r\n") == ["221 2.0.0 Bye"]


def test_mail_parameters(client):
    """SIZE (RFC 1870) over the limit is 552 5.3.4 at MAIL; BODY (RFC 6152) 7BIT or 8BITMIME."""
    client.send(b"LHLO c\r\n")
    assert client.send(b"MAIL FROM:<> SIZE=999999999999\r\n") == [
        f"552 5.3.4 Message too large (at most {64 * 1024 * 1024} octets)"]
    assert client.send(b"MAIL FROM:<> BODY=BINARYMIME\r\n")[0].startswith("501 5.5.4")
    assert client.send(b"MAIL FROM:<> SIZE=x\r\n")[0].startswith("501 5.5.4")
    assert client.send(b"MAIL FROM:<> FOO=1\r\n")[0].startswith("555 5.5.4")
    assert client.send(b"MAIL FROM:<> SIZE=10 BODY=8BITMIME\r\n") == ["250 2.1.0 OK"]
    assert client.send(b"RCPT TO:<a@example.org> NOTIFY=NEVER\r\n")[0].startswith("555 5.5.4")


def test_dot_stuffing_is_undone(client):
    """RFC 5321 §4.5.2."""
    client.start("a@example.org")
    client.send(b"DATA\r\n")
    client.send(b"..leading dot\r\n...\r\n. \r\n.\r\n")
    assert client.seam.delivered[0][0] == b".leading dot\r\n..\r\n \r\n"


def test_bare_lf_is_stored_as_crlf_and_never_ends_the_data(client):
    """Only CRLF.CRLF ends DATA (RFC 5321 §2.3.8, no smuggling); bare LF and CR are kept as CRLF."""
    client.start("a@example.org")
    client.send(b"DATA\r\n")
    assert client.send(b"a\nb\n.\nc\rd\r\n") == []
    assert client.send(b".\r\n") == ["250 2.0.0 <a@example.org> Saved"]
    assert client.seam.delivered[0][0] == b"a\r\nb\r\n.\r\nc\r\nd\r\n"


def test_crlf_split_across_reads(client):
    client.start("a@example.org")
    client.send(b"DATA\r\n")
    for piece in (b"one\r", b"\n.", b"\r", b"\n"):
        client.send(piece)
    assert client.seam.delivered[0][0] == b"one\r\n"


def test_nul_in_data_is_refused_for_every_recipient(client):
    client.start("a@example.org", "b@example.org")
    client.send(b"DATA\r\n")
    assert client.send(b"x\x00y\r\n.\r\nNOOP\r\n") == [
        "554 5.6.0 Message contains NUL characters"] * 2 + ["250 2.0.0 OK"]
    assert client.seam.delivered == [] and client.spooled() == []


def test_long_lines(tmp_path):
    """Lines over RFC 5322's 998 octets are taken up to lmtp_max_line_length; longer: 554 5.6.0."""
    client = Client(tmp_path, Limits(max_line_length=2000))
    client.start("a@example.org")
    client.send(b"DATA\r\n")
    assert client.send(b"x" * 1500 + b"\r\n.\r\n") == ["250 2.0.0 <a@example.org> Saved"]
    client.send(b"MAIL FROM:<>\r\nRCPT TO:<a@example.org>\r\nDATA\r\n")
    assert client.send(b"y" * 2001 + b"\r\n.\r\n") == [
        "554 5.6.0 Message has a line longer than 2000 octets"]
    assert len(client.seam.delivered) == 1


def test_a_message_over_the_size_limit_is_read_to_its_end_and_refused(tmp_path):
    client = Client(tmp_path, Limits(max_message_size=100))
    client.start("a@example.org")
    client.send(b"DATA\r\n")
    assert client.send(b"z" * 60 + b"\r\n" + b"z" * 60 + b"\r\n.\r\nNOOP\r\n") == [
        "552 5.3.4 Message too large", "250 2.0.0 OK"]
    assert client.seam.delivered == [] and client.spooled() == []


def test_a_missing_final_dot_stores_nothing(client):
    client.start("a@example.org")
    client.send(b"DATA\r\nSubject: half\r\n\r\n" + b"the client stops here\r\n" * 4000)
    assert client.spooled()  # beyond the spool's buffer: written to a file as it arrives
    client.server.connectionLost(None)
    assert client.seam.delivered == [] and client.spooled() == []


def test_too_many_recipients(tmp_path):
    client = Client(tmp_path, Limits(max_recipients=3))
    replies = client.start(*[f"u{i}@example.org" for i in range(5)])
    assert replies[-5:] == ["250 2.1.5 OK"] * 3 + ["452 4.5.3 Too many recipients"] * 2
    client.send(b"DATA\r\n")
    assert len(client.send(b"x\r\n.\r\n")) == 3


def test_a_thousand_rcpts(client):
    replies = client.start(*[f"u{i}@example.org" for i in range(1000)])
    assert replies.count("250 2.1.5 OK") == 100
    assert replies.count("452 4.5.3 Too many recipients") == 900
    assert not client.transport.disconnecting  # refusals are not errors of the client


def test_quoted_and_routed_addresses_reach_the_store_literally(client):
    client.start('"alice"@example.org', "nobody%other.example@example.org", "@relay.example:b@example.org")
    assert client.take() == []
    client.send(b"DATA\r\n")
    assert client.send(b"x\r\n.\r\n") == ["250 2.0.0 <alice@example.org> Saved", "250 2.0.0 <b@example.org> Saved"]
    assert client.send(b"RCPT TO:<bad address@example.org>\r\n")[0].startswith("503")


def test_bdat_chunks(client):
    """RFC 3030: a reply per chunk, then one per recipient after LAST; no dot-stuffing."""
    client.start("a@example.org", "b@example.org")
    assert client.send(b"BDAT 6\r\n.x\r\n.\r") == ["250 2.0.0 6 octets received"]
    assert client.send(b"BDAT 3 LAST\r\n\nyz") == ["250 2.0.0 <a@example.org> Saved",
                                                   "250 2.0.0 <b@example.org> Saved"]
    assert client.seam.delivered[0][0] == b".x\r\n.\r\nyz"
    client.send(b"MAIL FROM:<>\r\nRCPT TO:<a@example.org>\r\n")
    assert client.send(b"BDAT 0 LAST\r\n") == ["554 5.6.0 Message is empty"]
    assert len(client.seam.delivered) == 1


def test_bdat_pipelined_with_the_envelope(client):
    replies = client.send(b"LHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<a@example.org>\r\nBDAT 2 LAST\r\nhiQUIT\r\n")
    assert replies[-2:] == ["250 2.0.0 <a@example.org> Saved", "221 2.0.0 Bye"]


def test_a_refused_bdat_chunk_is_skipped(client):
    client.send(b"LHLO c\r\nMAIL FROM:<>\r\n")
    assert client.send(b"BDAT 5\r\nNOOP\rNOOP\r\n") == ["503 5.5.1 No valid recipients", "250 2.0.0 OK"]
    client.send(b"RCPT TO:<a@example.org>\r\nBDAT 1\r\nx")
    assert client.send(b"DATA\r\n")[0] == "503 5.5.1 DATA after BDAT"
    assert client.send(b"BDAT x\r\n")[0].startswith("501 5.5.4")
    assert client.transport.disconnecting  # no size: the chunk cannot be skipped


def test_bdat_nul_and_size(tmp_path):
    client = Client(tmp_path, Limits(max_message_size=4))
    client.start("a@example.org")
    assert client.send(b"BDAT 5 LAST\r\n12345") == ["552 5.3.4 Message too large"]
    client.send(b"MAIL FROM:<>\r\nRCPT TO:<a@example.org>\r\n")
    assert client.send(b"BDAT 3 LAST\r\n1\x002") == ["554 5.6.0 Message contains NUL characters"]


def test_overlong_command_lines(client):
    assert client.send(b"NOOP " + b"x" * 5000) == ["500 5.5.2 Line too long"]
    assert client.send(b"more\r\nNOOP\r\n") == ["250 2.0.0 OK"]


def test_too_many_bad_commands_close_the_connection(tmp_path):
    client = Client(tmp_path, Limits(max_bad_commands=3))
    replies = client.send(b"X\r\nY\r\nZ\r\nNOOP\r\n")
    assert replies[-1].startswith("421 4.7.0")
    assert client.transport.disconnecting


def test_idle_timeout(tmp_path):
    client = Client(tmp_path, Limits(timeout=300))
    client.start("a@example.org")
    client.send(b"DATA\r\npart of a message\r\n")
    client.clock.advance(299)
    assert client.take() == []
    client.clock.advance(2)
    assert client.take()[0].startswith("421 4.4.2")
    assert client.transport.disconnecting
    client.server.connectionLost(None)
    assert client.seam.delivered == [] and client.spooled() == []


def test_tcp_clients_outside_the_trusted_networks_are_refused(tmp_path):
    stranger = Client(tmp_path, peer=IPv4Address("TCP", "192.0.2.7", 5000))
    assert stranger.greeting[0].startswith("554 5.7.1")
    assert stranger.transport.disconnecting
    local = Client(tmp_path, peer=IPv4Address("TCP", "127.0.0.1", 5000))
    assert local.greeting[0].startswith("220 ")


def test_connections_over_the_limit_are_told_to_come_back(tmp_path):
    first = Client(tmp_path, Limits(max_connections=1))
    second = first.factory.buildProtocol(None)
    transport = StringTransport(peerAddress=UNIXAddress(None))
    second.makeConnection(transport)
    assert transport.value().startswith(b"421 4.3.2 ")
    second.connectionLost(None)
    first.server.connectionLost(None)
    assert first.factory.connections == 0
