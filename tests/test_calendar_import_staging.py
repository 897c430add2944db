"""saveCalendarItems staged over several calls (an import larger than one call) against the real
store server, every request and answer validated against the XSD: nothing is stored until the
call that commits, which stores everything in one transaction; an import the server lost is
`unavailable` (send it again); a refused object ends the import; the session's end and a
refused object discard the staged blobs; `max_calendar_import_objects` bounds what a session
may stage."""
from __future__ import annotations

import glob
import os

import pytest

from harness import USERS, StoreProcess
from shared import codec
from shared.errors import BadRequest, TooLarge, Unavailable
from soap_client import SoapClient, calendar_items, schema
from waiting import wait_until

XSD = schema()
LIMIT = 6


@pytest.fixture(scope="module")
def store_options() -> dict[str, str]:
    return {"max_calendar_import_objects": str(LIMIT), "attachment_files_fsync": "no"}


def event(uid: str) -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20260301T090000Z\r\nDTSTART:20260302T090000Z\r\n"
            f"SUMMARY:{uid}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


def items(*uids: str) -> tuple[str, list]:
    return calendar_items(event, *uids)


def blob_files(server) -> set[str]:
    return set(glob.glob(os.path.join(server.data_dir, "attachments", "*", "*", "*")))


def names(client: SoapClient, fid: int) -> list[str]:
    answer = client.call("queryRows", ("folderId", fid), ("columns", "name"))
    return sorted(codec.table_from_xml(answer.find(codec.gw("table")))[1].get("name", []))


def calendar(client: SoapClient, name: str) -> int:
    folder = client.call("createFolder", ("name", name), ("containerClass", "calendar")).find(codec.gw("folder"))
    return int(codec.field(folder, "id"))


def test_staged_import_is_stored_by_its_last_call_at_once(server):
    alice = SoapClient(server.connect("unix"), XSD)
    alice.logon("alice", USERS["alice"], "caldav")
    fid = calendar(alice, "Staged")
    alice.call("saveCalendarItems", ("folderId", fid), items("old"))

    first = alice.call("saveCalendarItems", ("folderId", fid), ("stage", True), items("a", "b"))
    import_id = codec.field(first, "importId")
    assert import_id and codec.field(first, "highestModseq") is None
    alice.call("saveCalendarItems", ("folderId", fid), ("importId", import_id), ("stage", True), items("c"),
               ("deleteName", ["old.ics"]))
    assert names(alice, fid) == ["old.ics"]  # nothing stored while staging
    done = alice.call("saveCalendarItems", ("folderId", fid), ("importId", import_id), items("d"))
    assert names(alice, fid) == ["a.ics", "b.ics", "c.ics", "d.ics"]
    assert [codec.field(s, "name") for s in done.iterchildren(codec.gw("saved"))] == \
        ["a.ics", "b.ics", "c.ics", "d.ics"]
    assert len(codec.field(done, "deleted").split()) == 1
    # Committed: the import is gone.
    with pytest.raises(Unavailable):
        alice.call("saveCalendarItems", ("folderId", fid), ("importId", import_id), items("e"))
    with pytest.raises(Unavailable):
        alice.call("saveCalendarItems", ("folderId", fid), ("importId", "0" * 32), ("stage", True), items("e"))


def test_staging_is_bounded_and_cleaned_up(server):
    alice = SoapClient(server.connect("unix"), XSD)
    alice.logon("alice", USERS["alice"], "caldav")
    fid = calendar(alice, "Bounded")
    before = blob_files(server)

    first = alice.call("saveCalendarItems", ("folderId", fid), ("stage", True), items("a", "b", "c", "d"))
    import_id = codec.field(first, "importId")
    with pytest.raises(TooLarge):
        alice.call("saveCalendarItems", ("folderId", fid), ("importId", import_id), ("stage", True),
                   items("e", "f", "g"))
    # A refused object ends the import and its staged blobs go.
    assert len(blob_files(server) - before) == 4
    bad = codec.element("item")
    codec.add(bad, "name", "bad.ics")
    codec.add(bad, "icalendar", "not a calendar")
    with pytest.raises(BadRequest):
        alice.call("saveCalendarItems", ("folderId", fid), ("importId", import_id), ("stage", True), ("item", [bad]))
    with pytest.raises(Unavailable):
        alice.call("saveCalendarItems", ("folderId", fid), ("importId", import_id), items("h"))
    assert blob_files(server) == before
    assert names(alice, fid) == []

    # A session that ends with an import staged leaves no blobs behind.
    alice.call("saveCalendarItems", ("folderId", fid), ("stage", True), items("x", "y"))
    assert len(blob_files(server) - before) == 2
    alice.call("logoff")
    wait_until(lambda: blob_files(server) == before, timeout=30, message="staged blobs left after logoff")


def test_an_abandoned_import_is_dropped_after_session_timeout(tmp_path):
    """Nobody staged to it for `session_timeout` seconds: the store drops it and its blobs,
    though the session that staged it stays in use."""
    options = {"session_timeout": "3", "attachment_files_fsync": "no"}
    with StoreProcess(str(tmp_path / "store"), options) as server:
        alice = SoapClient(server.connect("unix"), XSD)
        alice.logon("alice", USERS["alice"], "caldav")
        fid = calendar(alice, "Abandoned")
        before = blob_files(server)
        import_id = codec.field(alice.call("saveCalendarItems", ("folderId", fid), ("stage", True), items("a", "b")),
                                "importId")
        assert len(blob_files(server) - before) == 2
        wait_until(lambda: blob_files(server) == before
                   and "dropped 2 staged calendar objects of abandoned imports" in server.log(),
                   timeout=30, message="abandoned import not dropped")
        alice.logon("alice", USERS["alice"], "caldav")
        with pytest.raises(Unavailable):
            alice.call("saveCalendarItems", ("folderId", fid), ("importId", import_id), items("c"))
        alice.http.close()
