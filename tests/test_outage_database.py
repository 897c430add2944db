"""The store's MariaDB goes away under load and comes back, twice: once stopped (SIGTERM), once
killed (SIGKILL). `groupware serve` keeps running throughout.

IMAP, POP3, CalDAV and LMTP clients work in loops the whole time. While the database is away
each gets its protocol's temporary failure (`NO [UNAVAILABLE]`, `-ERR [SYS/TEMP]`, 503 with
Retry-After, `451 4.3.0`) and nothing else: no connection dropped, no bad-password answer, no
server error. Once it is back each works again on its own, on the connections it kept, and every
message or event a client saw acknowledged is in the store, whole.
"""
from __future__ import annotations

import imaplib
import os
import poplib
import re
import smtplib
import threading
import time

import pytest
import requests

from harness import ServerProcess
from outages import own_mariadb
from waiting import scaled, wait_until

OK, TEMP, BUSY = "ok", "temp", "busy"  # BUSY: the maildrop is another POP3 session's


class Loop:
    """One client doing `step()` over and over on a thread; each outcome is kept with its time.
    `step` returns (OK, acknowledged thing or None) or (TEMP, answer); anything else it returns
    or raises is an outcome of its own, which the test does not accept."""

    def __init__(self, name: str, step) -> None:
        self.name, self.step = name, step
        self.outcomes: list[tuple[float, str, object]] = []
        self.acked: list[object] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                kind, detail = self.step()
            except Exception as exc:  # what the client got instead of an answer
                kind, detail = "error", repr(exc)
            self.outcomes.append((time.monotonic(), kind, detail))
            if kind == OK and detail is not None:
                self.acked.append(detail)
            # A client that failed waits a little before it tries again, as real ones do.
            self.stopping.wait(0.2 if kind != OK else 0.02)

    def seen_since(self, kind: str, since: float) -> bool:
        return any(t >= since and k == kind for t, k, _ in self.outcomes)

    def unexpected(self) -> list:
        return [(k, d) for _, k, d in self.outcomes if k not in (OK, TEMP, BUSY)]


def message(label: str) -> bytes:
    return (f"From: Load <load@example.net>\r\nTo: demo@localhost\r\nSubject: {label}\r\n"
            f"Message-ID: <{label}@example.net>\r\n\r\nbody of {label}\r\n").encode()


def event(uid: str) -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20261201T100000Z\r\n"
            f"DTEND:20261201T110000Z\r\nSUMMARY:{uid}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


class Clients:
    """The four protocols' loops against one `groupware serve`."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.password = server.demo_password()
        self.counter = iter(range(1, 1_000_000))
        self.imap = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=scaled(60))
        self.imap.login("demo", self.password)
        self.http = requests.Session()
        self.http.auth = ("demo", self.password)
        self.loops = [Loop("imap-append", self.imap_append), Loop("imap-login", self.imap_login),
                      Loop("pop3", self.pop3), Loop("caldav", self.caldav_put), Loop("lmtp", self.lmtp)]

    def label(self, kind: str) -> str:
        return f"{kind}-{next(self.counter)}"

    def imap_append(self):
        label = self.label("imap")
        typ, data = self.imap.append("INBOX", None, None, message(label))
        text = data[-1].decode() if data and data[-1] else ""
        if typ == "OK":
            uid = int(re.search(r"APPENDUID \d+ (\d+)", text).group(1))
            return OK, (uid, label)
        return (TEMP if "[UNAVAILABLE]" in text else typ), text

    def imap_login(self):
        client = imaplib.IMAP4("127.0.0.1", self.server.port("imap"), timeout=scaled(60))
        try:
            try:
                client.login("demo", self.password)
            except imaplib.IMAP4.error as exc:
                return (TEMP if "[UNAVAILABLE]" in str(exc) else "login refused"), str(exc)
            typ, data = client.select("INBOX", readonly=True)
            if typ != "OK":
                text = data[-1].decode()
                return (TEMP if "[UNAVAILABLE]" in text else typ), text
            return OK, None
        finally:
            try:
                client.logout()
            except (imaplib.IMAP4.error, OSError):
                pass

    def pop3(self):
        client = poplib.POP3("127.0.0.1", self.server.port("pop3"), timeout=scaled(60))
        try:
            try:
                client.user("demo")
                client.pass_(self.password)
                client.stat()
                client.uidl()
            except poplib.error_proto as exc:
                text = exc.args[0].decode()
                if text.startswith("-ERR [IN-USE]"):
                    return BUSY, text
                return (TEMP if text.startswith("-ERR [SYS/TEMP]") else "refused"), text
            return OK, None
        finally:
            try:
                client.quit()
            except (poplib.error_proto, OSError):
                pass

    def caldav_put(self):
        label = self.label("event")
        path = f"/caldav/demo/Calendar/{label}.ics"
        r = self.http.put(f"http://127.0.0.1:{self.server.port('ical')}{path}", data=event(label).encode(),
                          headers={"Content-Type": "text/calendar"}, timeout=scaled(60))
        if r.status_code == 201:
            return OK, (path, label)
        if r.status_code == 503 and r.headers.get("Retry-After", "").isdigit():
            return TEMP, r.status_code
        return f"HTTP {r.status_code}", r.text[:200]

    def lmtp(self):
        label = self.label("lmtp")
        client = smtplib.LMTP("127.0.0.1", self.server.port("lmtp"), timeout=scaled(60))
        try:
            try:
                client.sendmail("load@example.net", ["demo@localhost"], message(label))
            except smtplib.SMTPRecipientsRefused as exc:
                (code, text), = exc.recipients.values()
                return (TEMP if (code, text[:5]) == (451, b"4.3.0") else f"RCPT {code}"), text
            except smtplib.SMTPDataError as exc:
                return (TEMP if (exc.smtp_code, exc.smtp_error[:5]) == (451, b"4.3.0")
                        else f"DATA {exc.smtp_code}"), exc.smtp_error
            return OK, label
        finally:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                pass

    def start(self) -> None:
        for loop in self.loops:
            loop.thread.start()

    def stop(self) -> None:
        for loop in self.loops:
            loop.stopping.set()
        for loop in self.loops:
            loop.thread.join(scaled(90))
        self.imap.logout()

    def wait_all(self, kind: str, since: float, what: str) -> None:
        wait_until(lambda: all(loop.seen_since(kind, since) for loop in self.loops), timeout=120, interval=0.1,
                   message=f"{what}: " + ", ".join(f"{loop.name}: {loop.outcomes[-1:]}" for loop in self.loops))
        assert not any(loop.unexpected() for loop in self.loops), {loop.name: loop.unexpected()[:3]
                                                                    for loop in self.loops}


@pytest.fixture
def database(tmp_path):
    with own_mariadb(str(tmp_path / "mariadb")) as db:
        yield db


def test_database_outage_under_load_loses_nothing(database, tmp_path):
    options = {**database.options(database.create_database()), "log_level": "warning",
               "lmtp_listen": "127.0.0.1:0", "recipient_cache_time": "0"}
    with ServerProcess(str(tmp_path / "var"), options, demo=True) as server:
        clients = Clients(server)
        kept: list[bytes] = []
        clients.start()
        try:
            clients.wait_all(OK, 0, "the clients do not work before the outage")
            for take_away in (database.stop, database.kill):
                # A POP3 session that marked a message deleted before the database went.
                pop = wait_until(lambda: pop3_session(server, clients.password), timeout=60,
                                 message="the maildrop stayed locked")
                marked = pop.uidl(1).split()[2]
                pop.dele(1)
                gone = time.monotonic()
                take_away()
                clients.wait_all(TEMP, gone, "a client saw no temporary failure while the database was away")
                # Its QUIT cannot delete: -ERR (RFC 1939 section 6), and the message stays.
                with pytest.raises(poplib.error_proto) as refused:
                    pop.quit()
                assert refused.value.args[0].startswith(b"-ERR [SYS/TEMP]"), refused.value.args
                kept.append(marked)
                back = time.monotonic()
                database.start()
                clients.wait_all(OK, back, "a client did not recover once the database was back")
        finally:
            clients.stop()
        assert server.alive(), "groupware serve died"
        # One line per failed request: no tracebacks from the CalDAV engine for an outage.
        noisy = [line for line in server_log(server).splitlines() if " radicale: " in line or " root: " in line]
        assert not noisy, noisy[:3]
        for loop in clients.loops:
            assert not loop.unexpected(), (loop.name, loop.unexpected()[:5])
        check_acknowledged(server, clients)
        pop = wait_until(lambda: pop3_session(server, clients.password), timeout=60,
                         message="the maildrop stayed locked")
        still = {line.split()[1] for line in pop.uidl()[1]}
        pop.quit()
        assert set(kept) <= still, "a message whose deletion failed is gone"


def pop3_session(server: ServerProcess, password: str) -> poplib.POP3 | None:
    """A logged-in POP3 session of demo, or None while the load's own holds the maildrop."""
    pop = poplib.POP3("127.0.0.1", server.port("pop3"), timeout=scaled(60))
    pop.user("demo")
    try:
        pop.pass_(password)
    except poplib.error_proto as exc:
        pop.quit()
        if b"[IN-USE]" in exc.args[0]:
            return None
        raise
    return pop


def server_log(server: ServerProcess) -> str:
    with open(server.options["log_file"], encoding="utf-8", errors="replace") as fp:
        return fp.read()


def check_acknowledged(server: ServerProcess, clients: Clients) -> None:
    """Everything acknowledged is there: IMAP appends at their APPENDUIDs, deliveries and
    events by their labels."""
    imap_acked = dict(next(loop for loop in clients.loops if loop.name == "imap-append").acked)
    lmtp_acked = next(loop for loop in clients.loops if loop.name == "lmtp").acked
    events = next(loop for loop in clients.loops if loop.name == "caldav").acked
    assert imap_acked and lmtp_acked and events
    client = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=scaled(60))
    client.login("demo", clients.password)
    try:
        assert client.select("INBOX", readonly=True)[0] == "OK"
        typ, data = client.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK", (data, server_log(server)[-3000:])
        subjects = {}
        for item in data:
            if isinstance(item, tuple):
                uid = int(re.search(rb"UID (\d+)", item[0]).group(1))
                subjects[uid] = item[1].decode().split(":", 1)[1].strip()
        for uid, label in imap_acked.items():
            assert subjects.get(uid) == label, f"acknowledged APPEND {label} (uid {uid}) lost"
        present = set(subjects.values())
        lost = [label for label in lmtp_acked if label not in present]
        assert not lost, f"acknowledged deliveries lost: {lost}"
    finally:
        client.logout()
    for path, label in events:
        r = clients.http.get(f"http://127.0.0.1:{server.port('ical')}{path}", timeout=scaled(60))
        assert r.status_code == 200 and f"UID:{label}" in r.text, f"acknowledged PUT {path} lost"


def commit_after(statement: bytes):
    """True for the first COMMIT (the MySQL protocol's COM_QUERY packet, 0x03 "COMMIT") sent
    after `statement` on the connection: the commit of the transaction that wrote."""
    state = {"seen": False, "done": False}

    def check(chunk: bytes) -> bool:
        if state["done"]:
            return False
        if statement in chunk:
            state["seen"] = True
        elif state["seen"] and chunk.endswith(b"\x03COMMIT"):
            state["done"] = True
        return state["done"]
    return check


def test_connection_lost_during_commit_keeps_what_was_stored(database, tmp_path, reactor_thread):
    """The store's connection to the database drops after COMMIT was sent, before its answer
    came: the client is told Unavailable, and whatever the database did commit is whole (its
    blob was not deleted under it), for messages, deliveries and calendar objects alike."""
    from adapter_client import adapter_on
    from harness import StoreProcess
    from outages import LatencyProxy
    from shared.errors import Unavailable
    from shared.model.delivery import Delivery

    rt = reactor_thread
    name = database.create_database()
    with LatencyProxy(("127.0.0.1", database.port)) as proxy:
        options = {**database.options(name), "mysql_port": str(proxy.port), "log_level": "warning"}
        with StoreProcess(tmp_path / "store", options) as store:
            adapter = adapter_on(rt, store.socket_path, store.data_dir)
            try:
                session = rt.call(adapter.logon, "alice", "alice-secret", "imap", "127.0.0.1")
                inbox = rt.call(lambda: session.store().inbox())
                calendar = rt.call(lambda: session.store().create_folder("Cal", None, "calendar"))
                delivery = rt.call(adapter.delivery_logon)  # as root on the UNIX socket
                source, delivered = message("in-doubt"), message("delivered")
                for save in (lambda: inbox.append(source),
                             lambda: delivery.deliver(delivered, "a@example.net", [Delivery("alice")]),
                             lambda: calendar.save_calendar_item("e.ics", event("in-doubt"))):
                    proxy.cut = commit_after(b"INSERT INTO items")
                    with pytest.raises(Unavailable):
                        rt.call(save)
                    assert proxy.cuts
                    proxy.cuts = 0
                proxy.cut = lambda chunk: False
                _, stored = rt.call(inbox.messages, ("uid", "size"), sort=[("uid", False)])
                assert len(stored) == 2, "a committed message is not there"
                assert rt.call(stored[0].source) == source
                assert rt.call(stored[1].source).endswith(delivered)
                _, events = rt.call(calendar.messages, ("uid", "name", "source"))
                assert [e.name for e in events] == ["e.ics"]
                assert "UID:in-doubt" in rt.call(events[0].ical)
                rt.call(session.logoff)
            finally:
                rt.call(adapter.close)
