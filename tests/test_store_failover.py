"""Gateway failover between two store instances on one MariaDB database: IMAP, POP3, CalDAV
and LMTP clients keep working while one instance is killed (SIGKILL) under their load.
Requests in flight at the kill may get the protocol's temporary error, nothing else; the
clients then go on through the other instance on the sessions they had, and everything
the servers acknowledged (APPEND OK, PUT 201, LMTP 250) is there afterwards."""
from __future__ import annotations

import poplib
import re
import smtplib
import threading
import time
from collections.abc import Callable

import pytest
import requests

from harness import USERS
from raw_clients import RawIMAP
from store_cluster import store_cluster
from waiting import scaled, wait_until

EVENT = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
         "DTSTAMP:20260101T000000Z\r\nDTSTART:20261201T100000Z\r\nDTEND:20261201T110000Z\r\n"
         "SUMMARY:{uid}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


def message(subject: str) -> bytes:
    return (f"From: load@example.org\r\nTo: someone@example.org\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@example.org>\r\n\r\nbody of {subject}\r\n").encode()


class Load:
    """Client loops in threads, each counting its answers: ok, temporary errors, and
    anything else (an error of the test)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok: dict[str, int] = {}
        self.temporary: dict[str, int] = {}
        self.errors: list[str] = []
        self.acknowledged: dict[str, set[str]] = {"alice-mail": set(), "bob-mail": set(), "events": set()}
        self.threads: list[threading.Thread] = []

    def run(self, name: str, loop: Callable[[str], None]) -> None:
        self.ok[name] = self.temporary[name] = 0

        def body() -> None:
            try:
                loop(name)
            except Exception as exc:  # the thread's failure is the test's
                with self.lock:
                    self.errors.append(f"{name}: {exc!r}")
        thread = threading.Thread(target=body, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def answer(self, name: str, good: bool, temporary: bool, what: object) -> bool:
        with self.lock:
            if good:
                self.ok[name] += 1
            elif temporary:
                self.temporary[name] += 1
            else:
                self.errors.append(f"{name}: {what!r}")
        return good

    def ack(self, kind: str, item: str) -> None:
        with self.lock:
            self.acknowledged[kind].add(item)

    def progress(self) -> dict[str, int]:
        with self.lock:
            return dict(self.ok)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(scaled(60))
            assert not thread.is_alive(), f"{thread.name} hangs"


def imap_loop(load: Load, port: int) -> Callable[[str], None]:
    def loop(name: str) -> None:
        raw = RawIMAP(port)
        raw.sock.settimeout(scaled(60))
        while not load.answer(name, *_imap(raw.cmd(f"LOGIN alice {USERS['alice']}"))):
            time.sleep(0.1)
        n = 0
        while not load.stop.is_set():
            n += 1
            subject = f"{name}-{n}"
            source = message(subject)
            if load.answer(name, *_imap(raw.cmd(b'APPEND INBOX {%d+}\r\n%s' % (len(source), source)))):
                load.ack("alice-mail", subject)
            selected = load.answer(name, *_imap(raw.cmd("SELECT INBOX")))
            # A SELECT that failed (NO [UNAVAILABLE] while the instance dies) leaves no mailbox
            # selected (RFC 3501 §6.3.1): a FETCH would rightly be BAD, so a client skips it.
            commands = ("FETCH 1 (FLAGS RFC822.SIZE)",) if selected else ()
            for command in (*commands, "STATUS INBOX (MESSAGES UIDNEXT)", "NOOP"):
                load.answer(name, *_imap(raw.cmd(command)))
        raw.cmd("LOGOUT")
        raw.close()
    return loop


def _imap(lines: list[bytes]) -> tuple[bool, bool, list[bytes]]:
    last = lines[-1].split(b" ", 1)[1] if b" " in lines[-1] else lines[-1]
    return last.startswith(b"OK"), last.startswith(b"NO [UNAVAILABLE]"), lines[-3:]


def pop3_loop(load: Load, port: int, user: str) -> Callable[[str], None]:
    def loop(name: str) -> None:
        while not load.stop.is_set():
            pop = poplib.POP3("127.0.0.1", port, timeout=scaled(60))
            try:
                pop.user(user)
                pop.pass_(USERS[user])
            except poplib.error_proto as exc:
                load.answer(name, False, exc.args[0].startswith(b"-ERR [SYS/TEMP]"), exc.args[0])
                pop.close()
                time.sleep(0.1)
                continue
            load.answer(name, True, False, "")
            for _ in range(5):
                for command in (pop.stat, pop.list, pop.uidl, lambda: pop.retr(1)):
                    try:
                        command()
                        load.answer(name, True, False, "")
                    except poplib.error_proto as exc:
                        load.answer(name, False, exc.args[0].startswith(b"-ERR [SYS/TEMP]"), exc.args[0])
            pop.quit()
    return loop


def caldav_loop(load: Load, port: int) -> Callable[[str], None]:
    def loop(name: str) -> None:
        http = requests.Session()
        http.auth = ("alice", USERS["alice"])
        base = f"http://127.0.0.1:{port}/caldav/alice/Calendar/"
        n = 0
        while not load.stop.is_set():
            n += 1
            uid = f"{name}-{n}"
            put = http.put(base + uid + ".ics", data=EVENT.format(uid=uid).encode(), timeout=scaled(60),
                           headers={"Content-Type": "text/calendar", "If-None-Match": "*"})
            if load.answer(name, put.status_code == 201, put.status_code == 503, (put.status_code, put.text[:200])):
                load.ack("events", uid)
            got = http.get(base + uid + ".ics", timeout=scaled(60))
            # A PUT refused with 503 may or may not have been stored: both answers are fine then.
            load.answer(name, got.status_code == 200 or (got.status_code == 404 and put.status_code == 503),
                        got.status_code == 503, (got.status_code, got.text[:200]))
            listing = http.request("PROPFIND", base, headers={"Depth": "1"}, timeout=scaled(60),
                                   data=b'<propfind xmlns="DAV:"><prop><getetag/></prop></propfind>')
            load.answer(name, listing.status_code == 207, listing.status_code == 503,
                        (listing.status_code, listing.text[:200]))
    return loop


def lmtp_loop(load: Load, port: int) -> Callable[[str], None]:
    def loop(name: str) -> None:
        lmtp = smtplib.LMTP("127.0.0.1", port, timeout=scaled(60))
        lmtp.ehlo_or_helo_if_needed()
        n = 0
        while not load.stop.is_set():
            n += 1
            subject = f"{name}-{n}"
            assert lmtp.mail("sender@example.net")[0] == 250
            code, text = lmtp.rcpt("bob@example.org")
            if code != 250:
                load.answer(name, False, 400 <= code < 500, (code, text))
                lmtp.rset()
                continue
            code, text = lmtp.data(message(subject))
            if load.answer(name, code == 250, 400 <= code < 500, (code, text)):
                load.ack("bob-mail", subject)
        lmtp.quit()
    return loop


def subjects(port: int, user: str) -> list[str]:
    raw = RawIMAP(port)
    raw.sock.settimeout(scaled(60))
    assert raw.cmd(f"LOGIN {user} {USERS[user]}")[-1].startswith(b"r1 OK")
    assert raw.cmd("EXAMINE INBOX")[-1].startswith(b"r2 OK")
    lines = raw.cmd("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    raw.close()
    return re.findall(r"Subject: (\S+)", b"".join(lines).decode())


@pytest.mark.parametrize("victim", [0, 1], ids=["first-listed", "second-listed"])
def test_killing_a_store_instance_under_load_loses_nothing_acknowledged(tmp_path, victim):
    with store_cluster(tmp_path, gateways=("imap", "pop3", "ical", "lmtp")) as cluster:
        # Each mailbox has a message to RETR before the load adds more.
        for user in ("alice", "bob"):
            seed = RawIMAP(cluster.port("imap"))
            assert seed.cmd(f"LOGIN {user} {USERS[user]}")[-1].startswith(b"r1 OK")
            source = message("seed")
            assert seed.cmd(b"APPEND INBOX {%d+}\r\n%s" % (len(source), source))[-1].startswith(b"r2 OK")
            seed.close()

        load = Load()
        for i in range(3):
            load.run(f"imap{i}", imap_loop(load, cluster.port("imap")))
        for i in range(2):
            # One POP3 session a mailbox: each its own user.
            load.run(f"pop{i}", pop3_loop(load, cluster.port("pop3"), ["bob", "alice"][i]))
            load.run(f"dav{i}", caldav_loop(load, cluster.port("ical")))
            load.run(f"lmtp{i}", lmtp_loop(load, cluster.port("lmtp")))
        try:
            wait_until(lambda: min(load.progress().values()) >= 5 or load.errors, timeout=120)
            assert not load.errors, load.errors
            cluster.stores[victim].kill()
            killed = load.progress()
            # Every client gets on through the other instance.
            wait_until(lambda: all(n >= killed[name] + 10 for name, n in load.progress().items()) or load.errors,
                       timeout=120, message=f"clients stalled after the kill: {killed} -> {load.progress()}")
        finally:
            load.finish()
        assert not load.errors, load.errors
        print(f"answers ok {load.ok}, temporary errors {load.temporary}")
        # The instances share the session key: the sessions went on where they were taken up.
        for name, gateway in cluster.gateways.items():
            assert "logging on again" not in gateway.log(), name

        port = cluster.port("imap")
        missing = load.acknowledged["alice-mail"] - set(subjects(port, "alice"))
        assert not missing, f"APPENDs acknowledged but lost: {sorted(missing)}"
        missing = load.acknowledged["bob-mail"] - set(subjects(port, "bob"))
        assert not missing, f"deliveries acknowledged with 250 but lost: {sorted(missing)}"
        http = requests.Session()
        http.auth = ("alice", USERS["alice"])
        base = f"http://127.0.0.1:{cluster.port('ical')}/caldav/alice/Calendar/"
        missing = {uid for uid in load.acknowledged["events"]
                   if http.get(base + uid + ".ics", timeout=scaled(60)).status_code != 200}
        assert not missing, f"PUTs acknowledged with 201 but lost: {sorted(missing)}"


def store_connections(store) -> int:
    """Connections the store server has accepted on its UNIX socket."""
    import psutil
    return sum(1 for conn in psutil.Process(store.pid()).net_connections(kind="unix")
               if conn.laddr == store.socket_path) - 1  # the listening socket


def test_a_failed_instance_is_used_again_after_its_back_off(tmp_path):
    with store_cluster(tmp_path, gateways=("imap",), gateway_options={"server_failover_retry": "0.5"}) as cluster:
        first, second = cluster.stores
        raw = RawIMAP(cluster.port("imap"))
        raw.sock.settimeout(scaled(60))
        assert raw.cmd(f"LOGIN alice {USERS['alice']}")[-1].startswith(b"r1 OK")
        assert raw.cmd("SELECT INBOX")[-1].startswith(b"r2 OK")
        assert store_connections(first) > 0 and store_connections(second) == 0
        first.kill()
        # Nothing was in flight: the next commands go to the second instance without an error,
        # on the same session.
        assert raw.cmd("STATUS INBOX (MESSAGES)")[-1].startswith(b"r3 OK")
        assert store_connections(second) > 0
        first.start()

        def back_on_first() -> bool:
            assert raw.cmd("NOOP")[-1].split(b" ")[1] == b"OK"
            return store_connections(first) > 0
        wait_until(back_on_first, timeout=30, interval=0.2)
        # (The restarted instance takes up no session older than itself, as it cannot know
        # which of them were logged off meanwhile: the gateway logged on again by itself.)
        assert raw.cmd("SELECT INBOX")[-1].split(b" ")[1] == b"OK"
        raw.cmd("LOGOUT")
