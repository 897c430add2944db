"""Check-then-write across gateway processes: two `groupware ical` front ends (and several
threads in each) PUT into one calendar at once; the store decides, in the transaction that
writes, who gets the UID and whose If-Match / If-None-Match still holds."""
from __future__ import annotations

import os
import threading

import pytest
import requests

from caldav_env import event, new_calendar, start_env
from harness import ServerProcess
from server.icalcolumns import calendar_columns
from server.service import StoreServer, open_storage
from server.users import hash_password
from shared.config import Config

ROUNDS = 8


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """The demo server (with its own gateway) and a second gateway process on the same store."""
    e = start_env(str(tmp_path_factory.mktemp("caldav-race") / "var"))
    try:
        proc, second = ical_gateway(e.server.data_dir, e.server.socket_path, "ical2.log")
    except BaseException:
        e.server.stop()
        raise
    try:
        yield e, [e.base, second]
    finally:
        proc.stop()
        e.server.stop()


def ical_gateway(data_dir: str, socket_path: str, log_name: str) -> tuple[ServerProcess, str]:
    """A `groupware ical` process on the store at `socket_path`, and its base URL."""
    gateway = ServerProcess(data_dir, {"server_socket": socket_path, "ical_listen": "127.0.0.1:0",
                                       "log_file": os.path.join(data_dir, log_name)}, command="ical").start()
    return gateway, f"http://127.0.0.1:{gateway.port('ical')}"


def race(e, requests_to_send: list[tuple], method: str = "PUT") -> list[requests.Response]:
    """Send (base, path, body, headers[, method]) all at once, one thread each; the answers
    in order."""
    barrier = threading.Barrier(len(requests_to_send))
    answers: list[requests.Response | None] = [None] * len(requests_to_send)
    sessions = [requests.Session() for _ in requests_to_send]
    for s in sessions:
        s.auth = ("demo", e.password)
        s.request("OPTIONS", requests_to_send[0][0] + "/caldav/", timeout=30)  # log on before the race

    def send(i: int) -> None:
        base, path, body, headers, *how = requests_to_send[i]
        barrier.wait()
        answers[i] = sessions[i].request(how[0] if how else method, base + path, data=body.encode(), timeout=60,
                                         headers={"Content-Type": "text/calendar", **headers})
    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests_to_send))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers  # type: ignore[return-value]


def test_one_uid_under_several_names_at_once_gets_one_object(two):
    e, bases = two
    cal = new_calendar(e, "uidrace")
    for r in range(ROUNDS):
        uid = f"race-{r}"
        answers = race(e, [(bases[i % 2], f"{cal}{uid}-{i}.ics", event(uid), {}) for i in range(4)])
        codes = sorted(a.status_code for a in answers)
        assert codes == [201, 409, 409, 409], [(a.status_code, a.text) for a in answers]
        assert all("no-uid-conflict" in a.text for a in answers if a.status_code == 409)
    r = e.request("REPORT", cal, '<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">'
                  '<d:prop><d:getetag/></d:prop><c:filter><c:comp-filter name="VCALENDAR"/></c:filter>'
                  '</c:calendar-query>', Depth="1", Content_Type="application/xml")
    assert r.text.count("<D:response>") + r.text.count("<response>") == ROUNDS


def test_if_none_match_on_one_name_at_once_creates_once(two):
    e, bases = two
    cal = new_calendar(e, "createrace")
    for r in range(ROUNDS):
        answers = race(e, [(bases[i % 2], f"{cal}new-{r}.ics", event(f"new-{r}", summary=f"writer {i}"),
                            {"If-None-Match": "*"}) for i in range(4)])
        assert sorted(a.status_code for a in answers) == [201, 412, 412, 412]


def test_if_match_on_one_etag_at_once_changes_once(two):
    e, bases = two
    cal = new_calendar(e, "matchrace")
    for r in range(ROUNDS):
        etag = e.request("PUT", f"{cal}m-{r}.ics", event(f"m-{r}")).headers["ETag"]
        answers = race(e, [(bases[i % 2], f"{cal}m-{r}.ics", event(f"m-{r}", summary=f"writer {i}"),
                            {"If-Match": etag}) for i in range(4)])
        assert sorted(a.status_code for a in answers) == [204, 412, 412, 412]
        winner = next(i for i, a in enumerate(answers) if a.status_code == 204)
        assert f"SUMMARY:writer {winner}" in e.request("GET", f"{cal}m-{r}.ics").text


def test_if_match_deletes_and_changes_at_once_let_one_win(two):
    e, bases = two
    cal = new_calendar(e, "deleterace")
    for r in range(ROUNDS):
        path = f"{cal}d-{r}.ics"
        etag = e.request("PUT", path, event(f"d-{r}")).headers["ETag"]
        answers = race(e, [(bases[0], path, "", {"If-Match": etag}, "DELETE"),
                           (bases[1], path, "", {"If-Match": etag}, "DELETE"),
                           (bases[0], path, event(f"d-{r}", summary="kept"), {"If-Match": etag}, "PUT"),
                           (bases[1], path, event(f"d-{r}", summary="kept"), {"If-Match": etag}, "PUT")])
        codes = [a.status_code for a in answers]
        assert sum(c in (200, 204) for c in codes) == 1, codes
        assert all(c in (200, 204, 404, 412) for c in codes), codes
        exists = e.request("GET", path).status_code == 200
        assert exists == (codes[2] == 204 or codes[3] == 204)


class ReplacedAfterItsRowIsRead:
    """Wraps the store's read of items by name: once armed, right after the next read of
    `name` has its rows and before the server reads their blobs, another writer replaces
    the object, and its save releases the blob those rows name. Two gateway processes
    writing one object under load meet in this window now and then; here every time."""

    def __init__(self, storage, name: str) -> None:
        self.storage = storage
        self.name = name
        self.read = storage.items_by_name
        self.text: str | None = None

    def arm(self, text: str) -> None:
        self.text = text

    def __call__(self, folder_id: int, names, columns):
        names = list(names)
        rows = self.read(folder_id, names, columns)
        if self.text is not None and self.name in names:
            data, self.text = self.text.encode(), None
            key = self.storage.blobs.put_bytes(data)
            self.storage.save_calendar_item(folder_id, self.name, key, len(data), calendar_columns(data.decode()))
        return rows


@pytest.fixture
def store_with_writer_in_between(tmp_path, monkeypatch, reactor_thread):
    """A store server in this process whose reads of race.ics meet a replacement of it,
    and a CalDAV gateway process in front of it."""
    socket_path = str(tmp_path / "store.sock")
    cfg = Config({"server_socket": socket_path, "server_listen": "", "threads": "4"}, str(tmp_path))
    storage = open_storage(cfg)
    storage.create_user("demo", hash_password("demo-secret"))
    storage.close()
    server = StoreServer(cfg)
    reactor_thread.call(server.start, reactor_thread.reactor)
    try:
        writer = ReplacedAfterItsRowIsRead(server.storage, "race.ics")
        monkeypatch.setattr(server.storage, "items_by_name", writer)
        proc, base = ical_gateway(str(tmp_path), socket_path, "ical.log")
        try:
            yield base, writer
        finally:
            proc.stop()
    finally:
        reactor_thread.call(server.stop)


def test_if_match_on_an_object_replaced_while_it_is_read_fails_its_precondition(store_with_writer_in_between):
    """The object exists throughout: a PUT whose If-Match no longer holds is 412, never 404."""
    base, writer = store_with_writer_in_between
    http = requests.Session()
    http.auth = ("demo", "demo-secret")
    cal = f"{base}/caldav/demo/Calendar/race.ics"
    created = http.put(cal, data=event("race").encode(), headers={"Content-Type": "text/calendar"}, timeout=30)
    assert created.status_code == 201, created.text
    writer.arm(event("race", summary="other writer"))
    late = http.put(cal, data=event("race", summary="late writer").encode(), timeout=30,
                    headers={"Content-Type": "text/calendar", "If-Match": created.headers["ETag"]})
    assert late.status_code == 412, (late.status_code, late.text)
    assert writer.text is None
    assert "SUMMARY:other writer" in http.get(cal, timeout=30).text
