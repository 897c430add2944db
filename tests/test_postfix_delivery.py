"""Mail delivery behind a real Postfix (tests/postfix.py), as a site runs it.

The store server runs alone (so it can fail while the gateways stay up), with `groupware lmtp`
and `groupware imap` in front of it. One Postfix hands local mail to the LMTP gateway's UNIX
socket (`mailbox_transport = lmtp:unix:...`), a second one runs `groupware deliver` as
`mailbox_command` for recipients with a system account, which gets the delivery right over
the store's UNIX socket through `delivery_uids`. Mail for other domains, vacation replies
among it (our relay hands them to Postfix), ends in an SMTP sink (tests/smtp_sink.py).
"""
from __future__ import annotations

import email.utils
import imaplib
import os
import re
import secrets
import shlex
import smtplib
import socket
import subprocess

import pytest

from adapter_client import adapter_on
from certificates import self_signed_certificate
from debian import command as has_command, ensure_packages
from harness import CONFIG_DIR, USERS, ServerProcess, StoreProcess
from postfix import DOMAIN, PrivatePostfix, groupware_for
from smtp_sink import SmtpSink
from unix_accounts import Account
from waiting import scaled

SENDER = "carol@remote.example"
# Users for the Sieve tests beside harness.USERS: their first mail arrives after their script is
# active, since the LMTP gateway may trust what it read of a user's script for a few seconds.
SIEVE_USERS = {"vera": "vera-secret", "simon": "simon-secret"}
PASSWORDS = {**USERS, **SIEVE_USERS}
# What the MTA and the delivery agent may put before the message, which is otherwise stored as sent.
TRACE_FIELDS = {b"return-path", b"delivered-to", b"x-original-to", b"received"}


def make_message(subject: str, to: str, sender: str = SENDER) -> tuple[bytes, str]:
    """A message as a client hands it to Postfix: 8-bit UTF-8, a line that starts with a dot,
    a long line; with Date and Message-ID, so that Postfix adds nothing but its Received field."""
    message_id = f"<{secrets.token_hex(8)}@remote.example>"
    head = (f"From: Carol <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {message_id}\r\n"
            f"Date: {email.utils.formatdate()}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
    body = "Grüße, wie besprochen.\r\n.a line that starts with a dot\r\n" + "x" * 900 + "\r\n"
    return head.encode() + body.encode(), message_id


def trace_fields(stored: bytes, original: bytes) -> list[bytes]:
    """The names of the fields put before `original` in `stored`; fails unless `stored` is
    `original` byte for byte behind trace fields only."""
    assert stored.endswith(original), stored[:2000]
    prefix = stored[:len(stored) - len(original)]
    fields = re.split(rb"\r\n(?![ \t])", prefix[:-2]) if prefix else []
    assert prefix.endswith(b"\r\n") or not prefix, prefix
    names = [field.split(b":", 1)[0].lower() for field in fields]
    assert set(names) <= TRACE_FIELDS, prefix
    return names


# -- the servers --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sink():
    with SmtpSink() as s:
        yield s


@pytest.fixture(scope="module")
def accounts():
    """Two system accounts for `groupware deliver` as mailbox_command (local(8) runs it as them)."""
    made = [Account(), Account()]
    yield made
    for account in made:
        account.remove()


@pytest.fixture(scope="module")
def store(open_dir, accounts):
    """The store server alone: alice, bob, the Sieve tests' users, and a store user per system account."""
    options = {"log_level": "info",
               # Anyone on this host may connect; only the accounts' uids get the delivery right.
               "server_pipe_mode": "0666", "delivery_uids": " ".join(a.name for a in accounts)}
    users = {**PASSWORDS, **{a.name: a.password for a in accounts}}
    proc = StoreProcess(os.path.join(open_dir, "store"), options, users)
    os.makedirs(proc.data_dir, mode=0o755)
    with proc:
        yield proc


@pytest.fixture(scope="module")
def postfix_to_lmtp(open_dir, sink):
    """Postfix handing local mail to the LMTP gateway (started by the `lmtp` fixture)."""
    return PrivatePostfix.to_lmtp(os.path.join(open_dir, "postfix-lmtp"), os.path.join(open_dir, "lmtp", "lmtp.sock"),
                                  sink.port)


@pytest.fixture(scope="module")
def lmtp(open_dir, store, postfix_to_lmtp):
    """`groupware lmtp` on a UNIX socket Postfix reaches; replies leave through that Postfix."""
    options = {"server_socket": store.socket_path, "log_file": "-",
               "lmtp_listen": os.path.join(open_dir, "lmtp", "lmtp.sock"),
               "relay_host": "127.0.0.1", "relay_port": str(postfix_to_lmtp.port)}
    with ServerProcess(os.path.join(open_dir, "lmtp"), options, command="lmtp") as proc:
        yield proc


@pytest.fixture(scope="module")
def postfix(postfix_to_lmtp, lmtp):
    with postfix_to_lmtp:
        yield postfix_to_lmtp


@pytest.fixture(scope="module")
def imap_port(open_dir, store) -> int:
    options = {"server_socket": store.socket_path, "log_file": "-"}
    with ServerProcess(os.path.join(open_dir, "imap"), options, command="imap") as proc:
        yield proc.port("imap")


@pytest.fixture(scope="module")
def postfix_to_deliver(open_dir, sink, store, accounts):
    """Postfix running `groupware deliver` as mailbox_command."""
    # local(8) runs it through /bin/sh, which expands $SENDER and $RECIPIENT from its environment.
    command = shlex.join([*groupware_for(accounts[0].name, open_dir), *deliver_arguments(store)])
    command += ' -f "$SENDER" -r "$RECIPIENT"'
    with PrivatePostfix.to_command(os.path.join(open_dir, "postfix-deliver"), command, sink.port) as pf:
        yield pf


def deliver_arguments(store: StoreProcess) -> list[str]:
    """`deliver` and its options for this store, without the envelope."""
    return ["deliver", "--config-dir", CONFIG_DIR, "--data-dir", store.data_dir,
            "--set", f"server_socket={store.socket_path}", "--set", "log_file=-"]


# -- reading the mailbox ------------------------------------------------------------------------

def stored_messages(port: int, user: str, password: str, message_id: str, mailbox: str = "INBOX") -> list[bytes]:
    """The sources of the messages in `mailbox` whose Message-ID is `message_id`, over IMAP."""
    client = imaplib.IMAP4("127.0.0.1", port)
    try:
        client.login(user, password)
        client.select(mailbox, readonly=True)
        _, found = client.uid("SEARCH", None, "HEADER", "Message-ID", message_id)
        sources = []
        for uid in found[0].split():
            _, data = client.uid("FETCH", uid, "(BODY.PEEK[])")
            sources.append(data[0][1])
        return sources
    finally:
        client.logout()


class Idler:
    """An IMAP client IDLEing on a user's INBOX (RFC 2177)."""

    def __init__(self, port: int, user: str, password: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=scaled(30))
        self.file = self.sock.makefile("rb")
        self.file.readline()
        for request in (f"a LOGIN {user} {password}", "b SELECT INBOX", "c IDLE"):
            self.sock.sendall(request.encode() + b"\r\n")
            tag = request[:1].encode()
            while not (line := self.readline()).startswith((tag + b" OK", b"+")):
                assert not line.startswith(tag + b" "), line

    def readline(self) -> bytes:
        line = self.file.readline()
        if not line:
            raise ConnectionError("the IMAP server closed the connection")
        return line

    def wait_for_exists(self) -> bytes:
        while not (line := self.readline()).endswith(b"EXISTS\r\n"):
            pass
        return line

    def close(self) -> None:
        self.sock.sendall(b"DONE\r\n")
        self.file.close()
        self.sock.close()


def sent_while_idling(postfix: PrivatePostfix, imap_port: int, user: str, password: str) -> tuple[dict, bytes, bytes]:
    """A message sent to `user` through `postfix` while an IMAP client IDLEs on their INBOX:
    Postfix's logged delivery, the message sent and the message stored, once the client saw it."""
    idler = Idler(imap_port, user, password)
    try:
        original, message_id = make_message("pushed", f"{user}@{DOMAIN}")
        queued = postfix.send(SENDER, [f"{user}@{DOMAIN}"], original)
        idler.wait_for_exists()
    finally:
        idler.close()
    attempt, = postfix.wait_for_status(queued)
    stored, = stored_messages(imap_port, user, password, message_id)
    return attempt, original, stored


# -- the harness on its own -----------------------------------------------------------------------

def test_sink_records_each_envelope_and_message_as_sent(sink):
    with smtplib.SMTP("127.0.0.1", sink.port, timeout=30) as smtp:
        smtp.sendmail("", ["one@sink.example", "two@sink.example"], b"Subject: a\r\n\r\n.dot\r\n..two\r\n")
        smtp.rset()
        smtp.sendmail("x@sink.example", ["three@sink.example"], b"Subject: b\r\n\r\nbody\r\n")
    first, = sink.to("TWO@sink.example")
    assert (first.sender, first.recipients) == ("", ("one@sink.example", "two@sink.example"))
    assert first.data == b"Subject: a\r\n\r\n.dot\r\n..two\r\n"
    assert sink.to("three@sink.example")[0].data == b"Subject: b\r\n\r\nbody\r\n"


def test_mail_for_another_domain_reaches_the_sink_unchanged(open_dir, sink):
    """Postfix relays mail for other domains to the sink; only its Received field is added."""
    with PrivatePostfix.to_lmtp(os.path.join(open_dir, "postfix-relay"), os.path.join(open_dir, "none.sock"),
                                sink.port) as pf:
        original, _ = make_message("relayed", "dave@elsewhere.example", sender="alice@example.org")
        queued = pf.send("alice@example.org", ["dave@elsewhere.example"], original)
        pf.wait_for_status(queued)
        got, = sink.wait_for("dave@elsewhere.example")
        assert got.sender == "alice@example.org"
        assert trace_fields(got.data, original) == [b"received"]
        pf.wait_until_drained()


def test_unreachable_lmtp_socket_defers_and_keeps_the_mail(open_dir, sink):
    """A delivery agent that is not there is a temporary failure: the message waits in the queue."""
    with PrivatePostfix.to_lmtp(os.path.join(open_dir, "postfix-nolmtp"), os.path.join(open_dir, "none.sock"),
                                sink.port) as pf:
        queued = pf.send(SENDER, ["alice@example.org"], make_message("waits", "alice@example.org")[0])
        attempt, = pf.wait_for_status(queued, ("deferred", "sent", "bounced"))
        assert attempt["status"] == "deferred" and attempt["dsn"].startswith("4."), attempt
        assert [m["queue_id"] for m in pf.queue()] == [queued.queue_id]


# -- LMTP behind Postfix --------------------------------------------------------------------------

def test_smtp_to_inbox_byte_for_byte_and_idle_sees_it(postfix, imap_port):
    attempt, original, stored = sent_while_idling(postfix, imap_port, "alice", USERS["alice"])
    assert attempt["dsn"] == "2.0.0" and "lmtp" in attempt["text"], attempt
    names = trace_fields(stored, original)
    assert names[:2] == [b"return-path", b"delivered-to"] and names.count(b"return-path") == 1, names
    assert stored.startswith(f"Return-Path: <{SENDER}>\r\nDelivered-To: alice@{DOMAIN}\r\n".encode())


def test_one_message_to_two_local_users_is_stored_for_each(postfix, imap_port):
    original, message_id = make_message("to both", f"alice@{DOMAIN}, bob@{DOMAIN}")
    queued = postfix.send(SENDER, [f"alice@{DOMAIN}", f"bob@{DOMAIN}"], original)
    postfix.wait_for_status(queued)
    for user in ("alice", "bob"):
        stored, = stored_messages(imap_port, user, USERS[user], message_id)
        trace_fields(stored, original)


def test_detail_folder_and_case_of_the_local_part(postfix, imap_port):
    """`alice+lists@` reaches alice's folder `lists` (RFC 5233) when it exists; local parts
    compare case-insensitively; an unknown detail falls back to the Inbox."""
    client = imaplib.IMAP4("127.0.0.1", imap_port)
    try:
        client.login("alice", USERS["alice"])
        client.create("lists")
    finally:
        client.logout()
    to_folder, folder_id = make_message("to the folder", f"Alice+lists@{DOMAIN}")
    to_inbox, inbox_id = make_message("no such folder", f"alice+nothing@{DOMAIN}")
    postfix.wait_for_status(postfix.send(SENDER, [f"Alice+lists@{DOMAIN}"], to_folder))
    postfix.wait_for_status(postfix.send(SENDER, [f"alice+nothing@{DOMAIN}"], to_inbox))
    stored, = stored_messages(imap_port, "alice", USERS["alice"], folder_id, mailbox="lists")
    trace_fields(stored, to_folder)
    stored, = stored_messages(imap_port, "alice", USERS["alice"], inbox_id)
    trace_fields(stored, to_inbox)


def test_spam_verdict_files_into_junk(postfix, imap_port):
    """A message the site's filter marked (spam_header_name/value) goes to Junk, not the Inbox."""
    clean, _ = make_message("spam", f"bob@{DOMAIN}")
    spam = b"X-Spam-Flag: YES\r\n" + clean
    message_id = re.search(rb"Message-ID: (<[^>]+>)", spam).group(1).decode()
    postfix.wait_for_status(postfix.send(SENDER, [f"bob@{DOMAIN}"], spam))
    stored, = stored_messages(imap_port, "bob", USERS["bob"], message_id, mailbox="Junk")
    trace_fields(stored, spam)
    assert stored_messages(imap_port, "bob", USERS["bob"], message_id) == []


def test_large_message_byte_for_byte(postfix, imap_port):
    """A 5 MB message (a base64 attachment, 76-character lines) is stored as Postfix passed it."""
    original, message_id = make_message("large", f"alice@{DOMAIN}")
    attachment = b"".join(b"%076d\r\n" % i for i in range(5 * 1024 * 1024 // 78))
    original += b"\r\n" + attachment
    postfix.wait_for_status(postfix.send(SENDER, [f"alice@{DOMAIN}"], original), timeout=120)
    stored, = stored_messages(imap_port, "alice", USERS["alice"], message_id)
    trace_fields(stored, original)


def test_unknown_recipient_bounces_to_the_sender(postfix, sink):
    """550 5.1.1 at RCPT: Postfix bounces at once (no retries) and the sender gets the report."""
    queued = postfix.send(SENDER, [f"nobody@{DOMAIN}"], make_message("lost", f"nobody@{DOMAIN}")[0])
    attempt, = postfix.wait_for_status(queued, ("bounced", "deferred", "sent"))
    assert attempt["status"] == "bounced" and attempt["dsn"] == "5.1.1", attempt
    report, = sink.wait_for(SENDER)
    assert report.sender == "" and b"nobody@example.org" in report.data
    postfix.wait_until_drained()


def test_vacation_reply_reaches_the_sink_once(postfix, store, sink, reactor_thread):
    script = ('require ["vacation"];\r\n'
              'vacation :days 7 :subject "Away" :addresses ["vera@example.org"] "Vera is away until Monday.";\r\n')
    adapter = adapter_on(reactor_thread, store.socket_path, store.data_dir)
    try:
        session = reactor_thread.call(adapter.logon, "vera", PASSWORDS["vera"], "imap", "127.0.0.1")
        reactor_thread.call(session.put_sieve_script, "away", script)
        reactor_thread.call(session.activate_sieve_script, "away")
    finally:
        reactor_thread.call(adapter.close)
    sender = "erin@remote.example"
    for subject in ("first", "second"):
        queued = postfix.send(sender, [f"vera@{DOMAIN}"], make_message(subject, f"vera@{DOMAIN}", sender)[0])
        postfix.wait_for_status(queued)
    # A later sender's reply leaves after any second reply to the first one would have.
    later = "frank@remote.example"
    postfix.wait_for_status(postfix.send(later, [f"vera@{DOMAIN}"], make_message("third", f"vera@{DOMAIN}", later)[0]))
    sink.wait_for(later)
    postfix.wait_until_drained()
    reply, = sink.to(sender)
    assert reply.sender == ""  # RFC 5230 section 5.4: replies go out with a null return path
    assert b"Auto-Submitted: auto-replied" in reply.data and b"Subject: Away" in reply.data
    assert b"Vera is away until Monday." in reply.data


# -- Sieve through ManageSieve --------------------------------------------------------------------

@pytest.fixture(scope="module")
def managesieve_port(open_dir, store) -> int:
    directory = os.path.join(open_dir, "managesieve")
    os.makedirs(directory)
    cert, key = self_signed_certificate(directory)
    options = {"server_socket": store.socket_path, "log_file": "-", "managesieve_listen": "127.0.0.1:0",
               "ssl_certificate_file": cert, "ssl_private_key_file": key}
    with ServerProcess(directory, options, command="managesieve") as proc:
        yield proc.port("managesieve"), cert


def sieve_connect(managesieve_port, user: str, *action: str) -> str:
    """Debian's sieve-connect against our ManageSieve, over STARTTLS with our certificate checked."""
    port, certificate = managesieve_port
    result = subprocess.run(["sieve-connect", "--server", "127.0.0.1", "--port", str(port), "--user", user,
                             "--passwordfd", "0", "--noclearchan", "--tlscafile", certificate,
                             "--tlshostname", "localhost", *action],
                            input=PASSWORDS[user] + "\n", capture_output=True, text=True, timeout=scaled(60))
    assert result.returncode == 0, result
    return result.stdout


def test_sieve_connect_uploads_a_script_and_delivery_follows_it(open_dir, postfix, managesieve_port, imap_port):
    ensure_packages({"sieve-connect": has_command("sieve-connect")})
    script = os.path.join(open_dir, "lists.sieve")
    with open(script, "w") as fp:
        fp.write('require ["fileinto", "mailbox"];\r\n'
                 'if header :contains "subject" "[lists]" {\r\n  fileinto :create "Lists/Python";\r\n}\r\n')
    sieve_connect(managesieve_port, "simon", "--upload", "--localsieve", script, "--remotesieve", "lists")
    sieve_connect(managesieve_port, "simon", "--activate", "--remotesieve", "lists")
    assert '"lists" ACTIVE' in sieve_connect(managesieve_port, "simon", "--list").splitlines()  # RFC 5804 LISTSCRIPTS
    listed, listed_id = make_message("[lists] weekly summary", f"simon@{DOMAIN}")
    other, other_id = make_message("lunch?", f"simon@{DOMAIN}")
    for original in (listed, other):
        postfix.wait_for_status(postfix.send(SENDER, [f"simon@{DOMAIN}"], original))
    stored, = stored_messages(imap_port, "simon", PASSWORDS["simon"], listed_id, mailbox="Lists/Python")
    trace_fields(stored, listed)
    assert stored_messages(imap_port, "simon", PASSWORDS["simon"], listed_id) == []
    stored, = stored_messages(imap_port, "simon", PASSWORDS["simon"], other_id)
    trace_fields(stored, other)
    sieve_connect(managesieve_port, "simon", "--deactivate")


# -- groupware deliver as mailbox_command ---------------------------------------------------------

def test_groupware_deliver_as_mailbox_command(postfix_to_deliver, accounts, imap_port):
    account = accounts[0]
    attempt, original, stored = sent_while_idling(postfix_to_deliver, imap_port, account.name, account.password)
    assert "delivered to command" in attempt["text"], attempt
    names = trace_fields(stored, original)
    assert names.count(b"return-path") == 1, names


def test_postfix_rejects_recipients_without_a_system_account(postfix_to_deliver):
    """With mailbox_command, Postfix's recipient table (the system accounts) answers at RCPT."""
    with smtplib.SMTP("127.0.0.1", postfix_to_deliver.port, timeout=30) as smtp:
        smtp.ehlo("client.example.net")
        smtp.mail(SENDER)
        code, reply = smtp.rcpt(f"nosuchaccount{secrets.token_hex(3)}@{DOMAIN}")
    assert code == 550, reply


def test_deliver_is_refused_without_the_delivery_right(open_dir, store, accounts):
    """`groupware deliver` run by an account not in delivery_uids gets no delivery session:
    it exits with EX_TEMPFAIL, so an MTA keeps the message."""
    outsider = Account()
    try:
        groupware = groupware_for(outsider.name, open_dir)
        result = subprocess.run(["runuser", "-u", outsider.name, "--", *groupware, *deliver_arguments(store),
                                 "-f", SENDER, "-r", f"{accounts[1].name}@{DOMAIN}"],
                                input=make_message("refused", accounts[1].name)[0], capture_output=True)
    finally:
        outsider.remove()
    assert result.returncode == 75, result  # EX_TEMPFAIL
    assert b"groupware deliver:" in result.stderr, result


# -- a store outage -------------------------------------------------------------------------------

def wait_for_deferral(postfix: PrivatePostfix, original: bytes, to: str):
    """`original` sent to `to` while the store is down: Postfix's logged temporary failure and
    the queued message."""
    queued = postfix.send(SENDER, [to], original)
    attempt, = postfix.wait_for_status(queued, ("deferred", "sent", "bounced"))
    assert attempt["status"] == "deferred" and attempt["dsn"].startswith("4."), attempt
    assert [m["queue_id"] for m in postfix.queue()] == [queued.queue_id]
    return attempt, queued


def delivered_once_after_flush(postfix: PrivatePostfix, queued) -> None:
    """Flush the queue (the store is back): the deferred message goes out once, and only once."""
    postfix.flush()
    postfix.wait_until_drained()
    assert [a["status"] for a in postfix.deliveries(queued.queue_id)] == ["deferred", "sent"]


def test_deliver_during_a_store_outage_exits_tempfail_and_postfix_retries(postfix_to_deliver, store, accounts,
                                                                         imap_port):
    """`groupware deliver` exits with EX_TEMPFAIL (75) while the store is down: Postfix keeps the
    message and delivers it once the store is back."""
    account = accounts[1]
    original, message_id = make_message("deliver during the outage", f"{account.name}@{DOMAIN}")
    store.stop()
    try:
        attempt, queued = wait_for_deferral(postfix_to_deliver, original, f"{account.name}@{DOMAIN}")
        assert "temporary failure" in attempt["text"], attempt
    finally:
        store.start()
    delivered_once_after_flush(postfix_to_deliver, queued)
    stored, = stored_messages(imap_port, account.name, account.password, message_id)
    trace_fields(stored, original)

def test_store_outage_defers_and_delivers_once_when_back(postfix, store, imap_port):
    """A store that is down answers 4xx (never a bounce); once it is back and the queue is
    flushed, the message is in the Inbox exactly once."""
    original, message_id = make_message("during the outage", f"alice@{DOMAIN}")
    store.stop()
    try:
        attempt, queued = wait_for_deferral(postfix, original, f"alice@{DOMAIN}")
        assert re.search(r" said: 4\d\d 4\.", attempt["text"]), attempt  # the LMTP server's own 4xx
    finally:
        store.start()
    delivered_once_after_flush(postfix, queued)
    stored, = stored_messages(imap_port, "alice", USERS["alice"], message_id)
    trace_fields(stored, original)
