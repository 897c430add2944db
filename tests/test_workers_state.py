"""What a client's consecutive store calls rely on holds when each call reaches another store
process: two store servers on one database sharing a session key, as the store workers of
`groupware serve` do, and a client that sends every call to the other one on a new
connection. Staged calendar imports (kept in the database), stream hrefs and upload ids,
sessions and their logoff, rights after a folder went or a grant was taken back, changes
and push, and the logon guard's bans. Then the same for staged imports across two store
instances on one MariaDB database (no shared key: the client logs on at each)."""
from __future__ import annotations

import calendar as calendar_module
import glob
import os
import threading
import time

import pytest

from harness import USERS, mysql_options, store_workers, throwaway_mariadb_database
from server.service import open_storage
from shared import codec
from shared.errors import AuthFailed, BANNED, BadRequest, NotFound, SessionInvalid, TooLarge, Unavailable
from soap_client import HoppingClient, RawHTTP, SoapClient, calendar_items, schema
from waiting import scaled, wait_until

XSD = schema()
LIMIT = 8
MESSAGE = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: across\r\n\r\n" + b"body line\r\n" * 400


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    options = {"max_calendar_import_objects": str(LIMIT), "attachment_files_fsync": "no",
               # Sources always through stream hrefs, never inline.
               "inline_source_limit": "1k",
               "auth_exempt_loopback": "no", "auth_failure_delay": "0", "auth_ban_threshold": "3",
               "auth_ban_time": "600"}
    processes = store_workers(str(tmp_path_factory.mktemp("workers-state")), options)
    for process in processes:
        process.start()
    yield processes
    for process in processes:
        process.stop()


def hopping(pair, user: str = "alice", protocol: str = "caldav") -> HoppingClient:
    client = HoppingClient(pair, XSD)
    client.logon(user, USERS[user], protocol)
    return client


def event(uid: str) -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20260301T090000Z\r\nDTSTART:20260302T090000Z\r\n"
            f"RRULE:FREQ=WEEKLY;COUNT=3\r\nSUMMARY:{uid}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


def items(*uids: str) -> tuple[str, list]:
    return calendar_items(event, *uids)


def blob_files(data_dir: str) -> set[str]:
    return set(glob.glob(os.path.join(data_dir, "attachments", "*", "*", "*")))


def calendar(client: SoapClient, name: str) -> int:
    folder = client.call("createFolder", ("name", name), ("containerClass", "calendar")).find(codec.gw("folder"))
    return int(codec.field(folder, "id"))


def names(client: SoapClient, fid: int) -> list[str]:
    answer = client.call("queryRows", ("folderId", fid), ("columns", "name"))
    return sorted(codec.table_from_xml(answer.find(codec.gw("table")))[1].get("name", []))


def stored(client: SoapClient, fid: int) -> list[dict]:
    answer = client.call("queryRows", ("folderId", fid), ("columns", "name modseq etag"))
    _, columns = codec.table_from_xml(answer.find(codec.gw("table")))
    return [dict(zip(columns, row)) for row in zip(*columns.values())]


# -- staged calendar imports -------------------------------------------------------------------

def test_an_import_staged_in_one_process_is_committed_by_the_other(pair):
    alice = hopping(pair)
    fid = calendar(alice, "Across")
    alice.call("saveCalendarItems", ("folderId", fid), items("old"))
    alice.goes_to(0)
    first = alice.call("saveCalendarItems", ("folderId", fid), ("stage", True), items("a", "b"))
    import_id = codec.field(first, "importId")
    assert alice.last == 0 and import_id
    alice.call("saveCalendarItems", ("folderId", fid), ("importId", import_id), ("stage", True), items("c"),
               ("deleteName", ["old.ics"]))
    assert alice.last == 1
    assert names(alice, fid) == ["old.ics"]  # nothing stored while staging
    alice.goes_to(1)
    done = alice.call("saveCalendarItems", ("folderId", fid), ("importId", import_id), items("d"))
    assert [codec.field(s, "name") for s in done.iterchildren(codec.gw("saved"))] == ["a.ics", "b.ics", "c.ics", "d.ics"]
    rows = stored(alice, fid)
    assert sorted(r["name"] for r in rows) == ["a.ics", "b.ics", "c.ics", "d.ics"]
    assert len({r["modseq"] for r in rows}) == 1  # one transaction
    # The recurring objects' occurrence index came through staging too.
    second = calendar_module.timegm((2026, 3, 9, 8, 0, 0))  # around the second occurrence
    week = alice.call("queryRows", ("folderId", fid), ("columns", "name"), ("restriction", codec.restriction_to_xml(
        {"occurs": (second, second + 7200)})))
    assert codec.field(week, "total") == "4"
    for _ in range(2):  # committed: gone for every process
        with pytest.raises(Unavailable):
            alice.call("saveCalendarItems", ("folderId", fid), ("importId", import_id), items("e"))


def test_staging_calls_in_flight_together_in_both_processes(pair):
    alice = hopping(pair)
    fid = calendar(alice, "Together")
    import_id = codec.field(alice.call("saveCalendarItems", ("folderId", fid), ("stage", True), items("s0")), "importId")
    failures: list = []

    def stage(index: int) -> None:
        client = HoppingClient(pair, XSD)
        client.session_id = alice.session_id
        client.goes_to(index % 2)
        try:
            client.call("saveCalendarItems", ("folderId", fid), ("importId", import_id), ("stage", True),
                        items(f"s{index + 1}"))
        except Exception as err:
            failures.append(err)
        finally:
            client.close()
    threads = [threading.Thread(target=stage, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(scaled(60))
    assert not failures, failures
    alice.call("saveCalendarItems", ("folderId", fid), ("importId", import_id), items("s5"))
    assert names(alice, fid) == [f"s{i}.ics" for i in range(6)]


def test_the_bound_and_a_refused_object_hold_across_processes(pair):
    alice = hopping(pair)
    fid = calendar(alice, "Bounded")
    data_dir = pair[0].data_dir
    before = blob_files(data_dir)
    alice.goes_to(0)
    import_id = codec.field(alice.call("saveCalendarItems", ("folderId", fid), ("stage", True),
                                       items("a", "b", "c", "d", "e")), "importId")
    # Process 1 counts what process 0 staged: the user's staged objects stay within the bound.
    with pytest.raises(TooLarge):
        alice.call("saveCalendarItems", ("folderId", fid), ("importId", import_id), ("stage", True),
                   items("f", "g", "h", "i"))
    assert alice.last == 1
    other = codec.field(alice.call("saveCalendarItems", ("folderId", fid), ("stage", True), items("x", "y")),
                        "importId")  # a second import of the user fits in what is left
    with pytest.raises(TooLarge):
        alice.call("saveCalendarItems", ("folderId", fid), ("stage", True), items("z1", "z2"))
    assert len(blob_files(data_dir) - before) == 7
    # A refused object, in the other process, ends the import and its staged blobs go.
    bad = codec.element("item")
    codec.add(bad, "name", "bad.ics")
    codec.add(bad, "icalendar", "not a calendar")
    alice.goes_to(1)
    with pytest.raises(BadRequest):
        alice.call("saveCalendarItems", ("folderId", fid), ("importId", import_id), ("stage", True), ("item", [bad]))
    with pytest.raises(Unavailable):
        alice.call("saveCalendarItems", ("folderId", fid), ("importId", import_id), items("j"))
    assert len(blob_files(data_dir) - before) == 2
    # A conflict at commit ends that import too.
    alice.call("saveCalendarItems", ("folderId", fid), items("y"))  # y.ics is taken now...
    dup = codec.element("item")
    codec.add(dup, "name", "dup.ics")
    codec.add(dup, "icalendar", event("y"))  # ...and its UID too: the commit conflicts
    with pytest.raises(Exception):
        alice.call("saveCalendarItems", ("folderId", fid), ("importId", other), ("item", [dup]))
    with pytest.raises(Unavailable):
        alice.call("saveCalendarItems", ("folderId", fid), ("importId", other), items("k"))
    assert names(alice, fid) == ["y.ics"]
    assert len(blob_files(data_dir) - before) == 1  # y.ics's own


def test_an_import_belongs_to_its_user(pair):
    alice, bob = hopping(pair), hopping(pair, "bob")
    fid = calendar(alice, "Mine")
    import_id = codec.field(alice.call("saveCalendarItems", ("folderId", fid), ("stage", True), items("a")), "importId")
    bobs = calendar(bob, "Bobs")
    for _ in range(2):
        with pytest.raises(Unavailable):
            bob.call("saveCalendarItems", ("folderId", bobs), ("importId", import_id), items("b"))
    # Named with another folder of the user, the import is not found either.
    elsewhere = calendar(alice, "Elsewhere")
    with pytest.raises(Unavailable):
        alice.call("saveCalendarItems", ("folderId", elsewhere), ("importId", import_id), items("b"))
    alice.call("saveCalendarItems", ("folderId", fid), ("importId", import_id), items("b"))
    assert names(alice, fid) == ["a.ics", "b.ics"]


def test_logoff_in_the_other_process_drops_what_the_session_staged(pair):
    alice = hopping(pair)
    fid = calendar(alice, "Dropped")
    before = blob_files(pair[0].data_dir)
    alice.goes_to(0)
    alice.call("saveCalendarItems", ("folderId", fid), ("stage", True), items("p", "q"))
    assert len(blob_files(pair[0].data_dir) - before) == 2
    alice.call("logoff")
    assert alice.last == 1
    assert blob_files(pair[0].data_dir) == before  # gone by the time logoff answers


# -- stream hrefs, uploads, sessions ---------------------------------------------------------

def test_stream_hrefs_and_uploads_made_in_one_process_work_in_the_other(pair):
    alice = hopping(pair, protocol="imap")
    inbox = alice.inbox_id()
    alice.goes_to(0)
    upload = alice.put("/upload", MESSAGE)
    assert upload.status == 201 and alice.last == 0
    created = alice.call("createMessage", ("folderId", inbox), ("uploadId", upload.body.decode()))
    assert alice.last == 1
    uid = int(codec.field(created, "uid"))
    for start in (0, 1):
        alice.goes_to(start)
        href = codec.field(alice.call("openStream", ("folderId", inbox), ("uid", uid)), "href")
        got = alice.get(href)
        assert alice.last == 1 - start and got.status == 200 and got.body == MESSAGE
    # Another session gets nothing from the href, in either process.
    bob = hopping(pair, "bob", "imap")
    for _ in range(2):
        assert bob.get(href).status == 404
    # A stream whose items changed is refused where it is rebuilt.
    alice.goes_to(0)
    href = codec.field(alice.call("openStream", ("folderId", inbox), ("uids", str(uid))), "href")
    alice.call("deleteItems", ("folderId", inbox), ("uids", str(uid)))
    alice.goes_to(1)
    assert alice.get(href).status == 404


def test_a_logoff_in_one_process_ends_the_session_in_the_other(pair):
    alice = hopping(pair, protocol="imap")
    for _ in range(2):
        alice.call("whoami")
    alice.goes_to(0)
    alice.call("logoff")

    def refused() -> bool:
        alice.goes_to(1)
        try:
            alice.call("whoami")
        except SessionInvalid:
            return True
        return False
    wait_until(refused, timeout=scaled(10), message="the other store process still takes a session logged off")


# -- rights, changes, push -----------------------------------------------------------------

def test_rights_follow_a_folder_deleted_or_a_grant_taken_back_elsewhere(pair):
    alice, bob = hopping(pair, protocol="imap"), hopping(pair, "bob", "imap")
    folder = alice.call("createFolder", ("name", "Shared across")).find(codec.gw("folder"))
    fid = int(codec.field(folder, "id"))
    alice.call("setAcl", ("folderId", fid), ("identifier", "bob"), ("rights", "lrs"))
    for _ in range(2):  # both processes have answered bob (and alice) for it
        assert codec.field(bob.call("queryRows", ("folderId", fid), ("columns", "uid")), "total") == "0"
        alice.call("queryRows", ("folderId", fid), ("columns", "uid"))
    alice.goes_to(0)
    alice.call("deleteAcl", ("folderId", fid), ("identifier", "bob"))
    for _ in range(2):
        with pytest.raises(NotFound):
            bob.call("queryRows", ("folderId", fid), ("columns", "uid"))
    alice.goes_to(1)
    alice.call("deleteFolder", ("folderId", fid))
    for _ in range(2):
        with pytest.raises(NotFound):
            alice.call("createMessage", ("folderId", fid), ("source", MESSAGE))


def test_changes_and_push_reach_the_other_process(pair):
    alice = hopping(pair, protocol="imap")
    inbox = alice.inbox_id()
    highest = int(codec.field(alice.call("getChanges", ("folderId", inbox), ("sinceModseq", 0)), "highestModseq"))
    alice.goes_to(0)
    alice.call("createMessage", ("folderId", inbox), ("source", MESSAGE))
    changes = alice.call("getChanges", ("folderId", inbox), ("sinceModseq", highest))
    assert alice.last == 1 and int(codec.field(changes, "highestModseq")) > highest
    highest = int(codec.field(changes, "highestModseq"))
    # A long poll parked in process 1 wakes for a change made in process 0.
    poller = HoppingClient(pair, XSD)
    poller.session_id = alice.session_id
    poller.goes_to(1)
    woken: list = []
    waiter = threading.Thread(target=lambda: woken.append(poller.call(
        "waitForChanges", ("watch", codec.element("watch", folderId=str(inbox), modseq=str(highest))),
        ("timeout", 60))))
    waiter.start()
    time.sleep(0.3)
    assert not woken
    started = time.monotonic()
    alice.goes_to(0)
    alice.call("createMessage", ("folderId", inbox), ("source", MESSAGE))
    waiter.join(scaled(30))
    assert woken and int(woken[0].find(codec.gw("changed")).get("modseq")) > highest
    assert time.monotonic() - started < scaled(5)
    poller.close()


# -- the logon guard -----------------------------------------------------------------------

def test_a_ban_made_in_one_process_holds_in_the_other_at_once(pair):
    here = "127.0.0.9"

    def logon(index: int, password: str) -> str:
        client = SoapClient(RawHTTP(("tcp", ("127.0.0.1", pair[index].tcp_port)), source=here), XSD)
        try:
            client.call("logon", ("user", "alice"), ("password", password), ("protocol", "imap"))
            return "ok"
        except AuthFailed as err:
            return "banned" if err.reason == BANNED else "failed"
        finally:
            client.http.close()
    # Failures are counted in each process (auth_ban_threshold = 3 there): the fifth,
    # alternating, is process 0's third, and it bans the address; the failure is answered
    # once the ban is kept in the database.
    assert [logon(n % 2, f"guess{n}") for n in range(5)] == ["failed"] * 5
    storage = open_storage(pair[0].config())
    try:
        assert storage.address_banned_until(here) > time.time()
    finally:
        storage.close()
    # Process 1 saw two failures only; the ban it finds in the database refuses even the
    # right password, at once, and so does process 0.
    assert logon(1, USERS["alice"]) == "banned"
    assert logon(0, USERS["alice"]) == "banned"


# -- store instances on one MariaDB ----------------------------------------------------------

def test_an_import_goes_on_at_another_instance_on_the_same_mariadb(tmp_path):
    with throwaway_mariadb_database() as database:
        options = {**mysql_options(database), "attachment_storage": "database",
                   "max_calendar_import_objects": str(LIMIT)}
        first, second = store_workers(str(tmp_path / "a"), options)
        # Separate instances: data dirs and session keys of their own, one database.
        second.data_dir = str(tmp_path / "b")
        second.options["server_socket"] = os.path.join(second.data_dir, "server.sock")
        second.environment.clear()
        with first, second:
            at_first = SoapClient(first.connect("unix"), XSD)
            at_first.logon("alice", USERS["alice"], "caldav")
            fid = calendar(at_first, "Instances")
            import_id = codec.field(at_first.call("saveCalendarItems", ("folderId", fid), ("stage", True),
                                                  items("m1", "m2")), "importId")
            # The gateway lands on the other instance, which does not know the session: it logs on there.
            at_second = SoapClient(second.connect("unix"), XSD)
            at_second.session_id = at_first.session_id
            with pytest.raises(SessionInvalid):
                at_second.call("whoami")
            at_second.logon("alice", USERS["alice"], "caldav")
            with pytest.raises(TooLarge):  # the bound counts what the first instance staged
                at_second.call("saveCalendarItems", ("folderId", fid), ("importId", import_id), ("stage", True),
                               items(*(f"n{i}" for i in range(LIMIT - 1))))
            at_second.call("saveCalendarItems", ("folderId", fid), ("importId", import_id), ("stage", True),
                           items("m3"))
            done = at_second.call("saveCalendarItems", ("folderId", fid), ("importId", import_id), items("m4"))
            assert len(list(done.iterchildren(codec.gw("saved")))) == 4
            assert names(at_first, fid) == ["m1.ics", "m2.ics", "m3.ics", "m4.ics"]
            at_first.http.close()
            at_second.http.close()
