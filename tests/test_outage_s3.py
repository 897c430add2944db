"""The blobs' S3 goes away under load and comes back. `groupware serve` keeps running.

IMAP (APPEND and FETCH), POP3 (RETR), CalDAV (PUT) and LMTP clients work in loops the
whole time. While S3 refuses connections, whatever needs a blob gets its protocol's
temporary failure (`NO [UNAVAILABLE]`, `-ERR [SYS/TEMP]`, 503 with Retry-After,
`451 4.3.0`) and nothing else; once S3 is back every client works again on its own, every
message or event a client saw acknowledged is in the store, whole, and nothing refused is.
"""
from __future__ import annotations

import imaplib
import poplib
import re
import time

import pytest

from harness import ServerProcess
from s3_server import S3Server
from test_outage_database import OK, TEMP, Clients, Loop, check_acknowledged, message, pop3_session
from waiting import scaled


class BlobClients(Clients):
    """The clients whose every step reads or writes a blob."""

    def __init__(self, server: ServerProcess) -> None:
        super().__init__(server)
        self.reader = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=scaled(60))
        self.reader.login("demo", self.password)
        self.loops = [Loop("imap-append", self.imap_append), Loop("imap-fetch", self.imap_fetch),
                      Loop("pop3-retr", self.pop3_retr), Loop("caldav", self.caldav_put), Loop("lmtp", self.lmtp)]

    def imap_fetch(self):
        typ, data = self.reader.select("INBOX", readonly=True)
        if typ == "OK":
            typ, data = self.reader.fetch("1", "(BODY.PEEK[])")
        if typ == "OK":
            return OK, None
        text = data[-1].decode() if data and data[-1] else ""
        return (TEMP if "[UNAVAILABLE]" in text else typ), text

    def pop3_retr(self):
        pop = pop3_session(self.server, self.password)
        if pop is None:
            return "busy", None
        try:
            pop.retr(1)
        except poplib.error_proto as exc:
            text = exc.args[0].decode()
            return (TEMP if text.startswith("-ERR [SYS/TEMP]") else "refused"), text
        finally:
            try:
                pop.quit()
            except (poplib.error_proto, OSError):
                pass
        return OK, None

    def stop(self) -> None:
        super().stop()
        self.reader.logout()


@pytest.fixture
def own_s3():
    """An S3 of this test's own, which it stops and starts again."""
    with S3Server() as server:
        yield server


def test_s3_outage_under_load_loses_nothing(own_s3, tmp_path):
    options = {**own_s3.options(own_s3.new_bucket(), attachment_s3_attempts="2", attachment_s3_timeout="10"),
               "log_level": "warning", "lmtp_listen": "127.0.0.1:0", "recipient_cache_time": "0"}
    with ServerProcess(str(tmp_path / "var"), options, demo=True) as server:
        imap = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=scaled(60))
        imap.login("demo", server.demo_password())
        assert imap.append("INBOX", None, None, message("first"))[0] == "OK"  # for FETCH 1 and RETR 1
        imap.logout()
        clients = BlobClients(server)
        clients.start()
        try:
            clients.wait_all(OK, 0, "the clients do not work before the outage")
            gone = time.monotonic()
            own_s3.stop()
            clients.wait_all(TEMP, gone, "a client saw no temporary failure while S3 was away")
            back = time.monotonic()
            own_s3.start()
            clients.wait_all(OK, back, "a client did not recover once S3 was back")
        finally:
            clients.stop()
        assert server.alive(), "groupware serve died"
        for loop in clients.loops:
            assert not loop.unexpected(), (loop.name, loop.unexpected()[:5])
        check_acknowledged(server, clients)
        # Nothing refused was stored: the Inbox holds exactly what was acknowledged.
        appended = next(loop for loop in clients.loops if loop.name == "imap-append").acked
        delivered = next(loop for loop in clients.loops if loop.name == "lmtp").acked
        imap = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=scaled(60))
        imap.login("demo", server.demo_password())
        try:
            typ, data = imap.select("INBOX", readonly=True)
            assert int(data[0]) == 1 + len(appended) + len(delivered)
            typ, data = imap.fetch("1:*", "(BODY.PEEK[])")
            assert typ == "OK"
            bodies = [item[1] for item in data if isinstance(item, tuple)]
            subjects = {re.search(rb"Subject: (\S+)", body).group(1).decode() for body in bodies}
            assert {label for _, label in appended} | set(delivered) | {"first"} == subjects
            # What IMAP appended comes back byte for byte (deliveries gain a Return-Path).
            by_subject = {re.search(rb"Subject: (\S+)", body).group(1).decode(): body for body in bodies}
            for label in [label for _, label in appended] + ["first"]:
                assert by_subject[label] == message(label), label
        finally:
            imap.logout()
