"""LMTP end to end: `groupware serve` with its LMTP gateway on a real socket, the real store,
and what arrives read back over IMAP; `groupware lmtp` alone through a store outage;
`groupware deliver` into the same store."""
from __future__ import annotations

import imaplib
import os
import socket
import statistics
import subprocess
import time

import pytest

from gateways.lmtp.service import SPOOL_DIR
from harness import ServerProcess, StoreProcess, run_deliver
from raw_clients import RawIMAP
from smtp_sink import SmtpSink
from waiting import scaled, wait_until

USERS = [f"user{i}" for i in range(10)]
PASSWORD = "secret-of-%s"
MESSAGE = (b"From: Sender <sender@example.net>\r\nTo: user0@example.org\r\nSubject: Hello\r\n"
           b"Message-ID: <%s@example.net>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
           b"Line one\r\n.leading dot\r\n\xc3\xa4 8bit\r\n")


class LMTPClient:
    """LMTP by hand: each reply line as it comes, so that per-recipient replies are seen."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=scaled(30))
        self.file = self.sock.makefile("rb")
        self.greeting = self.reply()
        self.command("LHLO client.test")

    def reply(self) -> list[str]:
        lines = []
        while True:
            line = self.file.readline().decode()
            if not line:
                raise ConnectionError("closed")
            lines.append(line.rstrip("\r\n"))
            if line[3:4] != "-":
                return lines

    def command(self, line: str) -> list[str]:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def send(self, sender: str, recipients: list[str], message: bytes) -> tuple[list[str], list[str]]:
        """The RCPT replies, and one DATA reply per accepted recipient."""
        assert self.command(f"MAIL FROM:<{sender}>")[0].startswith("250")
        rcpt = [self.command(f"RCPT TO:<{r}>")[0] for r in recipients]
        accepted = sum(r.startswith("250") for r in rcpt)
        if not accepted:
            self.command("RSET")
            return rcpt, []
        assert self.command("DATA")[0].startswith("354")
        stuffed = b"".join(b"." + line if line.startswith(b".") else line
                           for line in message.splitlines(keepends=True))
        self.sock.sendall(stuffed + b".\r\n")
        return rcpt, [self.reply()[0] for _ in range(accepted)]

    def close(self) -> None:
        try:
            self.command("QUIT")
        finally:
            self.sock.close()


def add_users(server: ServerProcess) -> None:
    for name in USERS:
        server.cli("user", "add", name, "--password-stdin", "--email", f"{name}@example.org",
                   stdin=PASSWORD % name + "\n")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("lmtp")
    # The store takes less than the gateway, so that the store's own refusal is seen too;
    # messages over 128k are spooled to files (and all over 64k go to the store as uploads).
    proc = ServerProcess(str(directory / "var"), {"relay_host": "", "sieve_script_cache_time": "0",
                                                  "max_message_size": "256k", "lmtp_max_message_size": "1M",
                                                  "inline_source_limit": "128k"})
    os.makedirs(proc.data_dir, exist_ok=True)
    add_users(proc)
    with proc.start():
        yield proc


def imap(server: ServerProcess, user: str) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=scaled(30))
    client.login(user, PASSWORD % user)
    return client


def messages(server: ServerProcess, user: str, mailbox: str = "INBOX") -> list[bytes]:
    client = imap(server, user)
    try:
        typ, data = client.select(f'"{mailbox}"', readonly=True)
        assert typ == "OK", data
        if int(data[0]) == 0:
            return []
        typ, data = client.fetch("1:*", "(BODY.PEEK[])")
        return [item[1] for item in data if isinstance(item, tuple)]
    finally:
        client.logout()


def without_trace(message: bytes) -> bytes:
    lines = message.splitlines(keepends=True)
    while lines and lines[0].startswith((b"Return-Path:", b"Delivered-To:")):
        lines.pop(0)
    return b"".join(lines)


def unique(label: str) -> bytes:
    return MESSAGE % f"{label}-{time.monotonic_ns()}".encode()


def activate_script(server: ServerProcess, user: str, text: str) -> None:
    """Make `text` the user's active Sieve script, written into the store as ManageSieve would."""
    from server.service import open_storage
    from shared.config import Config

    storage = open_storage(Config(server.options, server.data_dir))
    try:
        user_id = storage.get_user(user)["id"]
        storage.put_sieve_script(user_id, "test", text)
        storage.activate_sieve_script(user_id, "test")
    finally:
        storage.close()


def deliver_over_lmtp(server: ServerProcess, recipient: str, message: bytes, sender: str = "sender@example.net"):
    lmtp = LMTPClient(server.port("lmtp"))
    try:
        return lmtp.send(sender, [recipient], message)[1]
    finally:
        lmtp.close()


def flags_of(server: ServerProcess, user: str, mailbox: str) -> list[bytes]:
    client = imap(server, user)
    try:
        client.select(f'"{mailbox}"', readonly=True)
        typ, data = client.fetch("1:*", "(FLAGS)")
        return data
    finally:
        client.logout()


def test_one_recipient_byte_for_byte_with_trace_headers(server):
    message = unique("one")
    client = LMTPClient(server.port("lmtp"))
    rcpt, data = client.send("sender@example.net", ["user0@example.org"], message)
    client.close()
    assert rcpt == ["250 2.1.5 OK"] and data == ["250 2.0.0 <user0@example.org> Saved"]
    stored = [m for m in messages(server, "user0") if without_trace(m) == message]
    assert len(stored) == 1
    assert stored[0].startswith(b"Return-Path: <sender@example.net>\r\nDelivered-To: user0@example.org\r\n")


@pytest.mark.parametrize("lines", [80, 200])  # about 80 KB held in memory, 200 KB spooled to a file
def test_a_big_message_is_uploaded_byte_for_byte_behind_its_trace_headers(server, lines):
    message = unique(f"big-{lines}") + (b"z" * 998 + b"\r\n") * lines
    assert deliver_over_lmtp(server, "user1@example.org", message) == ["250 2.0.0 <user1@example.org> Saved"]
    stored = [m for m in messages(server, "user1") if without_trace(m) == message]
    assert len(stored) == 1
    assert stored[0] == b"Return-Path: <sender@example.net>\r\nDelivered-To: user1@example.org\r\n" + message
    # Nothing left in the spool: neither the message nor a copy of it.
    assert os.listdir(os.path.join(server.data_dir, SPOOL_DIR)) == []


def test_ten_recipients_one_transaction(server):
    message = unique("ten")
    client = LMTPClient(server.port("lmtp"))
    rcpt, data = client.send("sender@example.net", [f"{u}@example.org" for u in USERS], message)
    client.close()
    assert rcpt == ["250 2.1.5 OK"] * 10
    assert data == [f"250 2.0.0 <{u}@example.org> Saved" for u in USERS]
    for user in USERS:
        stored = [m for m in messages(server, user) if without_trace(m) == message]
        assert len(stored) == 1, user
        assert not stored[0].startswith(b"Return-Path: <sender@example.net>\r\nDelivered-To:")


def test_unknown_recipients_and_case_insensitive_local_parts(server):
    client = LMTPClient(server.port("lmtp"))
    rcpt, data = client.send("", ["nobody@example.org", "USER1@example.org", "user1%x@example.org"],
                             unique("case"))
    client.close()
    assert rcpt[0].startswith("550 5.1.1") and rcpt[2].startswith("550 5.1.1")
    assert data == ["250 2.0.0 <USER1@example.org> Saved"]


def test_sub_addressing_files_into_the_detail_folder(server):
    client = imap(server, "user2")
    assert client.create("Lists")[0] == "OK"
    client.logout()
    first, second = unique("detail"), unique("nodetail")
    lmtp = LMTPClient(server.port("lmtp"))
    assert lmtp.send("", ["user2+Lists@example.org"], first)[1][0].startswith("250 2.0.0")
    assert lmtp.send("", ["user2+nosuch@example.org"], second)[1][0].startswith("250 2.0.0")
    lmtp.close()
    assert [without_trace(m) for m in messages(server, "user2", "Lists")] == [first]
    assert second in [without_trace(m) for m in messages(server, "user2")]


def test_spam_goes_to_junk(server):
    message = b"X-Spam-Flag: YES\r\n" + unique("spam")
    lmtp = LMTPClient(server.port("lmtp"))
    assert lmtp.send("", ["user3@example.org"], message)[1] == ["250 2.0.0 <user3@example.org> Saved"]
    lmtp.close()
    assert message in [without_trace(m) for m in messages(server, "user3", "Junk")]
    assert message not in [without_trace(m) for m in messages(server, "user3")]


def test_a_duplicate_message_id_is_stored_once(server):
    message = unique("dup")
    lmtp = LMTPClient(server.port("lmtp"))
    for _ in range(2):
        assert lmtp.send("", ["user4@example.org"], message)[1][0].startswith("250 2.0.0")
    lmtp.close()
    assert [without_trace(m) for m in messages(server, "user4")].count(message) == 1


def test_delivery_reaches_an_idle_client_within_100_ms(server):
    raw = RawIMAP(server.port("imap"))
    assert raw.cmd(f"LOGIN user5 {PASSWORD % 'user5'}")[-1].startswith(b"r1 OK")
    assert raw.cmd("SELECT INBOX")[-1].startswith(b"r2 OK")
    raw.send(b"r3 IDLE\r\n")
    assert raw.readline().startswith(b"+")
    lmtp = LMTPClient(server.port("lmtp"))
    latencies = []
    for i in range(5):
        lmtp.command("MAIL FROM:<>")
        lmtp.command("RCPT TO:<user5@example.org>")
        lmtp.command("DATA")
        lmtp.sock.sendall(unique(f"idle{i}") + b".\r\n")
        assert lmtp.reply()[0].startswith("250 2.0.0")
        answered = time.monotonic()
        while not raw.readline().rstrip().endswith(b"EXISTS"):
            pass
        latencies.append(time.monotonic() - answered)
    lmtp.close()
    raw.send(b"DONE\r\n")
    assert statistics.median(latencies) < scaled(0.1), latencies


def test_too_large_for_the_gateway_or_the_store_is_552_5_3_4(server):
    big = unique("big") + b"x" * 998 + b"\r\n"
    big = big + (b"y" * 998 + b"\r\n") * 300  # about 300 KB: over the store's 256k
    assert deliver_over_lmtp(server, "user0@example.org", big) == ["552 5.3.4 <user0@example.org> Message too large"]
    lmtp = LMTPClient(server.port("lmtp"))
    assert lmtp.command("MAIL FROM:<> SIZE=2000000")[0].startswith("552 5.3.4")
    lmtp.close()


# -- groupware deliver ---------------------------------------------------------------------

def deliver(server: ServerProcess, stdin: bytes, *args: str) -> subprocess.CompletedProcess:
    """`groupware deliver` against the server's store, with its options."""
    shared = {k: v for k, v in server.options.items() if not k.endswith("_listen") and k != "log_file"}
    return run_deliver(server.data_dir, stdin, *args, options=shared)


def test_deliver_stores_and_exits_0(server):
    message = unique("deliver")
    result = deliver(server, message.replace(b"\r\n", b"\n"), "-f", "sender@example.net", "-r", "user6@example.org")
    assert result.returncode == 0, result.stderr
    stored = [m for m in messages(server, "user6") if without_trace(m) == message]
    assert len(stored) == 1
    assert stored[0].startswith(b"Return-Path: <sender@example.net>\r\nDelivered-To: user6@example.org\r\n")


def test_deliver_behind_a_local_delivery_that_traced_the_message_adds_nothing(server):
    """Postfix's local(8) puts Return-Path and Delivered-To on before it runs mailbox_command."""
    message = b"Return-Path: <sender@example.net>\r\nDelivered-To: user6@example.org\r\n" + unique("traced")
    result = deliver(server, message, "-f", "sender@example.net", "-r", "user6@example.org")
    assert result.returncode == 0, result.stderr
    assert message in messages(server, "user6")


def test_deliver_of_a_message_too_large_for_the_store_is_ex_cantcreat(server):
    result = deliver(server, unique("big") + (b"z" * 998 + b"\n") * 300, "-r", "user6@example.org")
    assert result.returncode == 73, result.stderr


def test_deliver_to_an_unknown_user_is_ex_nouser(server):
    result = deliver(server, unique("nouser"), "-r", "nobody@example.org")
    assert result.returncode == 67, result.stderr


# -- a store outage ------------------------------------------------------------------------

def test_store_outage_at_rcpt_and_after_data_is_451_and_nothing_is_lost(tmp_path):
    store = StoreProcess(str(tmp_path / "store"), users={"alice": "alice-secret"})
    store.start()
    gateway = ServerProcess(str(tmp_path / "gateway"), {"server_socket": store.socket_path, "log_file": "-",
                                                        "relay_host": ""}, command="lmtp")
    try:
        gateway.start()
        port = gateway.port("lmtp")
        message = unique("outage")
        lmtp = LMTPClient(port)
        store.stop()
        assert lmtp.send("", ["alice@example.org"], message)[0] == [
            "451 4.3.0 Temporary failure, try again later"]
        store.start()
        # Accepted at RCPT, then the store goes away before the message is stored.
        assert lmtp.command("MAIL FROM:<>")[0].startswith("250")
        assert wait_until(lambda: lmtp.command("RCPT TO:<alice@example.org>")[0].startswith("250"),
                          timeout=30)
        assert lmtp.command("DATA")[0].startswith("354")
        store.stop()
        lmtp.sock.sendall(message + b".\r\n")
        assert lmtp.reply() == ["451 4.3.0 Temporary failure, try again later"]
        store.start()
        # The MTA tries again: stored once.
        assert wait_until(lambda: lmtp.send("", ["alice@example.org"], message)[1] ==
                          ["250 2.0.0 <alice@example.org> Saved"], timeout=30)
        lmtp.close()
        count = imap_count_through_store(store, message)
        assert count == 1
    finally:
        gateway.stop()
        store.stop()


def imap_count_through_store(store: StoreProcess, message: bytes) -> int:
    """How many copies of `message` alice's Inbox holds, through an IMAP gateway on the store."""
    gateway = ServerProcess(os.path.join(store.data_dir, "imap"), {"server_socket": store.socket_path,
                                                                   "log_file": "-"}, command="imap").start()
    try:
        client = imaplib.IMAP4("127.0.0.1", gateway.port("imap"), timeout=scaled(30))
        client.login("alice", "alice-secret")
        client.select("INBOX", readonly=True)
        typ, data = client.fetch("1:*", "(BODY.PEEK[])")
        client.logout()
        return sum(1 for item in data if isinstance(item, tuple) and without_trace(item[1]) == message)
    finally:
        gateway.stop()


# -- Sieve at delivery ---------------------------------------------------------------------

def test_sieve_fileinto_create_with_flags_and_spam_kept_where_the_script_says(server):
    activate_script(server, "user7", 'require ["fileinto", "mailbox", "imap4flags"];\n'
                                     'if header :contains "subject" "Report" {\n'
                                     '  fileinto :create :flags "\\\\Flagged" "Projects/Reports"; stop; }\n'
                                     'if header :is "X-Spam-Flag" "YES" { fileinto "INBOX"; stop; }\n')
    report = unique("report").replace(b"Subject: Hello", b"Subject: Weekly Report")
    assert deliver_over_lmtp(server, "user7@example.org", report) == ["250 2.0.0 <user7@example.org> Saved"]
    assert [without_trace(m) for m in messages(server, "user7", "Projects/Reports")] == [report]
    assert b"\\Flagged" in flags_of(server, "user7", "Projects/Reports")[0]
    spam = b"X-Spam-Flag: YES\r\n" + unique("wanted-spam")
    deliver_over_lmtp(server, "user7@example.org", spam)
    assert spam in [without_trace(m) for m in messages(server, "user7")]


def test_sieve_discard_and_reject(server):
    activate_script(server, "user8", 'require ["reject"];\n'
                                     'if header :contains "subject" "junk" { discard; stop; }\n'
                                     'if header :contains "subject" "refuse" { reject "Not wanted here"; }\n')
    discarded = unique("d").replace(b"Subject: Hello", b"Subject: junk mail")
    assert deliver_over_lmtp(server, "user8@example.org", discarded) == [
        "250 2.0.0 <user8@example.org> Discarded by filter"]
    refused = unique("r").replace(b"Subject: Hello", b"Subject: please refuse")
    assert deliver_over_lmtp(server, "user8@example.org", refused) == [
        "550 5.7.1 <user8@example.org> Not wanted here"]
    stored = [without_trace(m) for m in messages(server, "user8")]
    assert discarded not in stored and refused not in stored


def test_a_script_error_keeps_the_message(server):
    # A run-time error (fileinto a mailbox that cannot be made) or a broken script never loses mail.
    activate_script(server, "user9", 'require "fileinto";\nfileinto "a//b";\n')
    message = unique("error")
    assert deliver_over_lmtp(server, "user9@example.org", message) == ["250 2.0.0 <user9@example.org> Saved"]
    assert message in [without_trace(m) for m in messages(server, "user9")]


def test_a_redirect_that_would_loop_is_kept(server):
    activate_script(server, "user1", 'redirect "user1@example.org";\n')
    original = unique("loop")
    message = b"Delivered-To: user1@example.org\r\n" + original
    assert deliver_over_lmtp(server, "user1@example.org", message) == ["250 2.0.0 <user1@example.org> Saved"]
    assert original in [without_trace(m) for m in messages(server, "user1")]



def test_deliver_over_tcp_with_the_delivery_secret(tmp_path):
    """Away from the store's socket only the secret of delivery_secret_file gives the right."""
    secret = tmp_path / "delivery.secret"
    secret.write_text("a-long-random-secret\n")
    store = StoreProcess(str(tmp_path / "store"), {"delivery_secret_file": str(secret)},
                         users={"alice": "alice-secret"})
    with store:
        agent = tmp_path / "agent"
        agent.mkdir()
        tcp = {"server_socket": f"tcp:127.0.0.1:{store.tcp_port}"}
        message = unique("tcp")
        refused = run_deliver(agent, message, "-r", "alice@example.org", options=tcp)
        assert refused.returncode == 75, refused.stderr
        done = run_deliver(agent, message, "-r", "alice@example.org",
                           options={**tcp, "delivery_secret_file": str(secret)})
        assert done.returncode == 0, done.stderr
        assert imap_count_through_store(store, message) == 1


# -- Sieve redirects and vacation replies leave through the relay (relay_host) to an SMTP sink

@pytest.fixture(scope="module")
def sink():
    with SmtpSink() as running:
        yield running


@pytest.fixture(scope="module")
def relayed(tmp_path_factory, sink):
    proc = ServerProcess(str(tmp_path_factory.mktemp("relay") / "var"),
                         {"relay_host": "127.0.0.1", "relay_port": str(sink.port), "sieve_script_cache_time": "0"})
    add_users(proc)
    with proc.start():
        yield proc


def test_redirect_keeps_the_sender_and_marks_the_copy(relayed, sink):
    activate_script(relayed, "user2", 'redirect "elsewhere@example.net";\n')
    message = unique("redirect")
    assert deliver_over_lmtp(relayed, "user2@example.org", message) == ["250 2.0.0 <user2@example.org> Redirected"]
    (copy,) = sink.to("elsewhere@example.net")  # sent before the reply
    assert copy.sender == "sender@example.net"
    assert copy.data == b"Delivered-To: user2@example.org\r\n" + message
    assert message not in [without_trace(m) for m in messages(relayed, "user2")]  # redirect cancels the keep


def test_vacation_replies_once_with_the_null_sender(relayed, sink):
    activate_script(relayed, "user3", 'require "vacation";\n'
                                     'vacation :days 1 :subject "Away" "I am away until Monday.";\n')
    def to_user3(label):
        return unique(label).replace(b"To: user0@", b"To: user3@")  # RFC 5230 §4.5: addressed to them
    for label in ("first", "second"):
        assert deliver_over_lmtp(relayed, "user3@example.org", to_user3(label), sender="writer@example.net") == [
            "250 2.0.0 <user3@example.org> Saved"]
    (reply,) = sink.wait_for("writer@example.net")
    assert reply.sender == ""
    assert b"Auto-Submitted: auto-replied" in reply.data and b"I am away until Monday." in reply.data
    # Mail from a list is never answered (RFC 3834 §2).
    listed = b"List-Id: <team.example.net>\r\n" + to_user3("list")
    deliver_over_lmtp(relayed, "user3@example.org", listed, sender="list@example.net")
    deliver_over_lmtp(relayed, "user3@example.org", to_user3("after"), sender="writer@example.net")
    assert sink.to("list@example.net") == [] and len(sink.to("writer@example.net")) == 1
