"""SIGKILL of `groupware serve` in the middle of a bulk change: after the restart the change is
there whole or not at all.

Each operation works on thousands of items so that it takes a while; the server is killed
while the client still waits for the answer (the test checks that at least one kill per
operation came before the answer). MOVE and COPY: the target holds all the messages or none,
with new uids above everything the folder had handed out, and the source all or none (MOVE)
or all (COPY); EXPUNGE: all flagged messages gone or all there. Every message left reads back
byte for byte (its blob is there). PUT of a whole calendar (the iCal feed): every object in
its old version or every one in its new version. MULTIAPPEND (RFC 3502): the folder holds every
message of the APPEND or none, each byte for byte.
"""
from __future__ import annotations

import contextlib
import imaplib
import os
import re
import socket
import time

import pytest
import requests

from harness import ServerProcess, mysql_options, throwaway_mariadb_database
from raw_clients import RawIMAP
from waiting import scaled

MESSAGES = 2500
EVENTS = 2200  # above the adapter's batch of 2000 objects: more than one call


def message(i: int) -> bytes:
    return (b"From: a@example.net\r\nTo: demo@localhost\r\nSubject: crash %d\r\n"
            b"Message-ID: <crash-%d@example.net>\r\n\r\nbody of message %d\r\n" % (i, i, i))


@contextlib.contextmanager
def sqlite_engine(tmp_path):
    yield {}


@contextlib.contextmanager
def mariadb_engine(tmp_path):
    with throwaway_mariadb_database("gw_atomic") as name:
        yield mysql_options(name)


# With two store and two gateway processes, the calls of one operation (the staged calls of
# a whole-calendar PUT among them) reach both store processes, and the kill takes all of them.
@pytest.fixture(params=[(sqlite_engine, "1"), (mariadb_engine, "1"), (sqlite_engine, "2")],
                ids=["sqlite", "mariadb", "sqlite-2-workers"])
def options(request, tmp_path):
    engine, workers = request.param
    with engine(tmp_path) as engine_options:
        # SIGKILL leaves the page cache to the kernel, so fsyncs add nothing here but minutes on
        # a busy disk; what is tested is where the transactions begin and end.
        yield {**engine_options, "log_level": "warning", "attachment_files_fsync": "no",
               "store_workers": workers, "gateway_workers": workers}


class Crashes:
    """A `groupware serve` that the test kills and starts again on the same data."""

    def __init__(self, data_dir: str, options: dict[str, str]) -> None:
        self.data_dir, self.options = data_dir, options
        self.server = ServerProcess(data_dir, options, demo=True).start()
        self.password = self.server.demo_password()
        self.answered_first = 0  # kills that came after the client had its answer
        self._reader = None

    def imap(self) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.server.port("imap"), timeout=scaled(120))
        client.login("demo", self.password)
        return client

    def kill_during(self, send, when) -> bool:
        """Call `send()` (which starts a request and returns the socket that will carry the
        answer), SIGKILL the server as soon as `when()` holds and start it again. True when
        the kill came before the answer."""
        sock = send()
        deadline = time.monotonic() + scaled(120)
        while not when() and time.monotonic() < deadline:
            time.sleep(0.002)
        ready = False
        sock.setblocking(False)
        try:
            ready = bool(sock.recv(1, socket.MSG_PEEK))
        except (BlockingIOError, OSError):
            pass
        self.server.kill()
        sock.close()
        self.server.stop()
        self.server = ServerProcess(self.data_dir, self.options, demo=True).start()
        if ready:
            self.answered_first += 1
        return not ready

    def count_rows(self, where: str) -> int:
        """Items rows matching the SQL condition `where`, read straight from the database
        while the server works (a reader never waits for the writer)."""
        from sqlalchemy import create_engine, text

        from server.storage.engine import database_url
        from shared.config import Config

        if self._reader is None:
            self._reader = create_engine(database_url(Config(self.options, self.data_dir), self.data_dir))
        with self._reader.connect() as conn:
            return conn.execute(text(f"SELECT COUNT(*) FROM items WHERE {where}")).scalar()

    def stop(self) -> None:
        self.server.stop()
        if self._reader is not None:
            self._reader.dispose()


def folder_state(client: imaplib.IMAP4, name: str) -> dict[int, bytes]:
    """uid -> full source of every message in folder `name`."""
    typ, data = client.select(name)
    assert typ == "OK", data
    if int(data[0]) == 0:
        return {}
    typ, data = client.uid("FETCH", "1:*", "(BODY.PEEK[])")
    assert typ == "OK"
    return {int(re.search(rb"UID (\d+)", item[0]).group(1)): item[1] for item in data if isinstance(item, tuple)}


def uidnext(client: imaplib.IMAP4, name: str) -> int:
    typ, data = client.status(name, "(UIDNEXT)")
    assert typ == "OK"
    return int(re.search(rb"UIDNEXT (\d+)", data[0]).group(1))


def bulk_fill(crashes: Crashes, rt, name: str, count: int, flags=()) -> None:
    from shared.config import Config
    from shared.model import Adapter

    cfg = Config({"server_socket": crashes.server.socket_path, "server_connections": "2"}, crashes.data_dir)
    adapter = rt.call(Adapter, cfg, rt.reactor)
    try:
        session = rt.call(adapter.logon, "demo", crashes.password, "imap", "127.0.0.1")

        async def make():
            store = session.store()
            for folder in await store.folders():
                if folder.name == name:
                    await folder.delete()
            folder = await store.create_folder(name)
            await folder.append_many([message(i) for i in range(count)], flags=flags)
        rt.coro(make, timeout=scaled(300))
        rt.call(session.logoff)
    finally:
        rt.call(adapter.close)


def send_imap(crashes: Crashes, *commands: str):
    """A raw IMAP connection, logged in, that has sent `commands`; the last one's answer is
    what the kill races with."""
    def send() -> socket.socket:
        raw = RawIMAP(crashes.server.port("imap"))
        assert raw.cmd(f"LOGIN demo {crashes.password}")[-1].startswith(b"r1 OK")
        for command in commands[:-1]:
            assert raw.cmd(command)[-1].split()[1] == b"OK"
        raw.file.close()
        raw.send(b"x " + commands[-1].encode() + b"\r\n")
        return raw.sock
    return send


DELAYS = (0.05, 0.25)


@pytest.mark.parametrize("operation", ["MOVE", "COPY", "EXPUNGE"])
def test_sigkill_during_bulk_mail_change_is_all_or_nothing(reactor_thread, tmp_path, options, operation):
    crashes = Crashes(str(tmp_path / "var"), options)
    in_flight = 0
    try:
        for delay in DELAYS:
            bulk_fill(crashes, reactor_thread, "Src", MESSAGES, flags=("\\Deleted",) if operation == "EXPUNGE" else ())
            client = crashes.imap()
            client.delete("Dst")
            assert client.create("Dst")[0] == "OK"
            src_before = folder_state(client, "Src")
            dst_next = uidnext(client, "Dst")
            client.logout()
            assert len(src_before) == MESSAGES
            command = {"MOVE": "UID MOVE 1:* Dst", "COPY": "UID COPY 1:* Dst", "EXPUNGE": "EXPUNGE"}[operation]
            started = time.monotonic()
            in_flight += crashes.kill_during(send_imap(crashes, "SELECT Src", command),
                                             lambda: time.monotonic() - started >= delay)

            client = crashes.imap()
            src, dst = folder_state(client, "Src"), folder_state(client, "Dst")
            client.logout()
            if operation == "EXPUNGE":
                assert src in ({}, src_before), f"EXPUNGE left {len(src)} of {MESSAGES}"
                continue
            assert sorted(dst.values()) in ([], sorted(src_before.values())), \
                f"{operation} left {len(dst)} of {MESSAGES} in the target"
            if dst:
                assert min(dst) >= dst_next and max(dst) - min(dst) == MESSAGES - 1
            if operation == "COPY":
                assert src == src_before
            else:
                assert (src == {}) == bool(dst) and (src == src_before or not src), \
                    f"MOVE left {len(src)} in the source and {len(dst)} in the target"
    finally:
        crashes.stop()
    assert in_flight, "every kill came after the answer: nothing was interrupted"


APPENDED = 1000  # one MULTIAPPEND, the most the store takes in one call


def blob_files(data_dir: str) -> int:
    return sum(len(files) for _, _, files in os.walk(os.path.join(data_dir, "attachments")))


def test_sigkill_during_multiappend_is_all_or_nothing(tmp_path, options):
    crashes = Crashes(str(tmp_path / "var"), {**options, "imap_max_append_messages": str(APPENDED)})
    sources = [message(i) * 20 for i in range(APPENDED)]
    command = b"x APPEND Appended" + b"".join(b" {%d+}\r\n" % len(m) + m for m in sources) + b"\r\n"
    in_flight = 0
    try:
        for delay in DELAYS:
            client = crashes.imap()
            client.delete("Appended")
            assert client.create("Appended")[0] == "OK"
            client.logout()

            def send() -> socket.socket:
                raw = RawIMAP(crashes.server.port("imap"))
                assert raw.cmd(f"LOGIN demo {crashes.password}")[-1].startswith(b"r1 OK")
                raw.file.close()
                raw.send(command)
                return raw.sock
            started = time.monotonic()
            blobs = blob_files(crashes.data_dir)
            if delay == DELAYS[0]:
                # Killed once the store has written the first message of the APPEND: in the
                # middle of storing them.
                in_flight += crashes.kill_during(send, lambda: blob_files(crashes.data_dir) > blobs)
            else:
                in_flight += crashes.kill_during(send, lambda: time.monotonic() - started >= delay)

            client = crashes.imap()
            stored = folder_state(client, "Appended")
            client.logout()
            print(f"MULTIAPPEND killed ({'first blob written' if delay == DELAYS[0] else f'{delay} s'}): "
                  f"{len(stored)} of {APPENDED} stored")
            assert sorted(stored.values()) in ([], sorted(sources)), \
                f"MULTIAPPEND left {len(stored)} of {APPENDED}"
    finally:
        crashes.stop()
    assert in_flight, "every kill came after the answer: nothing was interrupted"


def calendar_feed(version: str) -> bytes:
    events = "".join(
        f"BEGIN:VEVENT\r\nUID:crash-{i}@example.net\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART:20261201T{i % 24:02d}0000Z\r\nDURATION:PT30M\r\nSUMMARY:{version} {i}\r\nEND:VEVENT\r\n"
        for i in range(EVENTS))
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n" + events + "END:VCALENDAR\r\n").encode()


def calendar_versions(crashes: Crashes) -> dict[str, int]:
    """How many events of the calendar carry each version's summary."""
    r = requests.get(f"http://127.0.0.1:{crashes.server.port('ical')}/ical/demo/Import",
                     auth=("demo", crashes.password), timeout=scaled(120))
    if r.status_code == 404:
        return {}
    assert r.status_code == 200, r.status_code
    counts: dict[str, int] = {}
    for summary in re.findall(r"SUMMARY:(\w+) \d+", r.text):
        counts[summary] = counts.get(summary, 0) + 1
    return counts


def test_sigkill_during_whole_calendar_put_is_all_or_nothing(tmp_path, options):
    crashes = Crashes(str(tmp_path / "var"), options)
    in_flight = 0

    def put_old() -> None:
        r = requests.put(f"http://127.0.0.1:{crashes.server.port('ical')}/ical/demo/Import",
                         data=calendar_feed("old"), auth=("demo", crashes.password),
                         headers={"Content-Type": "text/calendar"}, timeout=scaled(300))
        assert r.status_code in (201, 204), (r.status_code, r.text)

    try:
        put_old()
        assert calendar_versions(crashes) == {"old": EVENTS}
        # Killed as soon as the first new version is committed: a PUT stored in parts is cut
        # in two there; a PUT stored at once is complete by then.
        for version in ("new",):
            body = calendar_feed(version)

            def send() -> socket.socket:
                sock = socket.create_connection(("127.0.0.1", crashes.server.port("ical")), timeout=scaled(60))
                auth = requests.auth._basic_auth_str("demo", crashes.password)
                sock.sendall(b"PUT /ical/demo/Import HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: "
                             + auth.encode() + b"\r\nContent-Type: text/calendar\r\nContent-Length: %d\r\n\r\n"
                             % len(body) + body)
                return sock
            in_flight += crashes.kill_during(send, lambda: crashes.count_rows(f"summary LIKE '{version} %'") > 0)
            versions = calendar_versions(crashes)
            assert len(versions) == 1 and sum(versions.values()) == EVENTS, \
                f"the calendar PUT was cut in half: {versions}"
            # Whichever version is there is complete; a next PUT replaces it whole.
            put_old()
            assert calendar_versions(crashes) == {"old": EVENTS}
    finally:
        crashes.stop()
    assert in_flight, "every kill came after the answer: nothing was interrupted"
