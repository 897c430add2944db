"""saveCalendarItems: many calendar objects saved and deleted in one transaction, through the
storage API (SQLite and MariaDB) and through the adapter against a real store server."""
from __future__ import annotations

import calendar as calendar_module
import os
import time

import pytest

from server.storage.calendar_batch import CalendarSave
from server.icalcolumns import calendar_columns
from shared.model import calendar_items
from shared.errors import UID_CONFLICT, Conflict
from adapter_client import logon

pytestmark = pytest.mark.database_engines("sqlite", "mariadb")


def ical(uid: str, summary: str = "meeting", rrule: str = "") -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20261201T100000Z\r\nDTEND:20261201T110000Z\r\n"
            f"SUMMARY:{summary}\r\n{rrule}END:VEVENT\r\nEND:VCALENDAR\r\n")


def save(st, name: str, text: str) -> CalendarSave:
    data = text.encode()
    columns = calendar_columns(text)
    return CalendarSave(name, st.blobs.put_bytes(data), len(data), columns)


def test_storage_saves_replaces_and_deletes_in_one_modseq(st, user):
    folder = st.create_folder(user["store_id"], None, "batch", "calendar")
    fid = folder["id"]
    first = st.save_calendar_items(fid, [save(st, f"{i}.ics", ical(f"u{i}")) for i in range(5)])
    assert [s["created"] for s in first["saved"]] == [True] * 5
    etags = {s["name"]: s["etag"] for s in first["saved"]}
    second = st.save_calendar_items(fid, [save(st, "1.ics", ical("u1", "moved")), save(st, "9.ics", ical("u9"))],
                                    ["2.ics", "3.ics", "not-there.ics"])
    assert [(s["name"], s["created"]) for s in second["saved"]] == [("1.ics", False), ("9.ics", True)]
    assert len(second["deleted"]) == 2 and second["modseq"] > first["modseq"]
    _, table = st.query_items(fid, ["name", "etag", "modseq", "summary"], None, [("uid", False)])
    rows = dict(zip(table["name"], zip(table["etag"], table["modseq"], table["summary"])))
    assert sorted(rows) == ["0.ics", "1.ics", "4.ics", "9.ics"]
    # Untouched objects keep their ETag and modseq; the changed ones share the new modseq.
    assert rows["0.ics"][0] == etags["0.ics"] and rows["0.ics"][1] == first["modseq"]
    assert rows["1.ics"][1] == rows["9.ics"][1] == second["modseq"] and rows["1.ics"][2] == "moved"


def test_storage_refuses_a_uid_held_by_an_object_that_stays(st, user):
    fid = st.create_folder(user["store_id"], None, "batch-uids", "calendar")["id"]
    st.save_calendar_items(fid, [save(st, "a.ics", ical("same"))])
    with pytest.raises(Conflict) as err:
        st.save_calendar_items(fid, [save(st, "ok.ics", ical("fine")), save(st, "b.ics", ical("same"))])
    assert err.value.reason == UID_CONFLICT
    # Nothing of the refused call was kept.
    _, table = st.query_items(fid, ["name"])
    assert table["name"] == ["a.ics"]
    # The UID may move when its old object goes in the same call.
    st.save_calendar_items(fid, [save(st, "b.ics", ical("same"))], ["a.ics"])
    _, table = st.query_items(fid, ["name", "icalUid"])
    assert table["name"] == ["b.ics"] and table["icalUid"] == ["same"]
    with pytest.raises(Conflict):
        st.save_calendar_items(fid, [save(st, "c.ics", ical("twice")), save(st, "d.ics", ical("twice"))])


def test_storage_indexes_occurrences_of_recurring_objects(st, user):
    from server.occurrences import occurrence_index
    fid = st.create_folder(user["store_id"], None, "batch-rrule", "calendar")["id"]
    text = ical("weekly", rrule="RRULE:FREQ=WEEKLY;COUNT=4\r\n")
    columns = calendar_columns(text)
    columns["occurrences"], columns["occurrencesUntil"] = occurrence_index(text, "VEVENT", columns["dtend"])
    data = text.encode()
    st.save_calendar_items(fid, [CalendarSave("w.ics", st.blobs.put_bytes(data), len(data), columns)])
    week = 7 * 86400
    start = 1796119200  # 2026-12-01T10:00Z
    _, table = st.query_items(fid, ["name"], {"occurs": [start + 3 * week - 60, start + 3 * week + 60]})
    assert table["name"] == ["w.ics"]
    _, table = st.query_items(fid, ["name"], {"occurs": [start + 4 * week - 60, start + 4 * week + 60]})
    assert table["name"] == []


def test_adapter_imports_in_batches_and_keeps_untouched_etags(reactor_thread, adapter, monkeypatch):
    monkeypatch.setattr(calendar_items, "CALENDAR_BATCH_ITEMS", 7)
    session = logon(reactor_thread, adapter, protocol="caldav")

    async def scenario():
        cal = await session.store().create_folder(f"Import {time.time()}", container_class="calendar")
        objects = [(f"e{i}.ics", ical(f"e{i}")) for i in range(20)]
        result = await cal.save_calendar_items(objects)
        assert sorted(result["saved"]) == sorted(n for n, _ in objects)
        assert all(s["created"] for s in result["saved"].values())
        before = {i.name: i.etag for i in await cal.calendar_items()}
        result = await cal.save_calendar_items([("e3.ics", ical("e3", "changed")), ("new.ics", ical("new"))],
                                               [f"e{i}.ics" for i in range(10, 20)])
        assert len(result["deleted"]) == 10 and cal.highest_modseq == result["highest_modseq"]
        after = {i.name: i.etag for i in await cal.calendar_items()}
        assert sorted(after) == sorted([f"e{i}.ics" for i in range(10)] + ["new.ics"])
        assert all(after[n] == before[n] for n in after if n not in ("e3.ics", "new.ics"))
        assert after["e3.ics"] != before["e3.ics"]
        with pytest.raises(Conflict) as err:
            await cal.save_calendar_items([("other.ics", ical("e1"))])
        assert err.value.reason == UID_CONFLICT
        await cal.delete()

    reactor_thread.coro(scenario)


def test_blob_stores_put_many(tmp_path):
    from server.blobs import DatabaseBlobStore, FileBlobStore
    from server.storage.engine import make_engine
    import server.blobs.files as files
    datas = [b"", b"one", bytes(range(256)) * 10] + [b"x%d" % i for i in range(30)]
    stores = [FileBlobStore(str(tmp_path / "fsync"), fsync=True), FileBlobStore(str(tmp_path / "plain"), fsync=False),
              DatabaseBlobStore(make_engine("sqlite:///" + str(tmp_path / "blobs.db")))]
    from server.storage import Storage
    Storage("sqlite:///" + str(tmp_path / "blobs.db")).migrate()
    old, files._BLOBS_PER_SHARD = files._BLOBS_PER_SHARD, 7
    try:
        for store in stores:
            keys = store.put_many(datas)
            assert len(set(keys)) == len(datas)
            assert [store.open(k).read() for k in keys] == datas
    finally:
        files._BLOBS_PER_SHARD = old
    # Blobs of one call share a few shard directories; no temp file is left behind.
    names = [p for p in (tmp_path / "fsync").rglob("*") if p.is_file()]
    assert len(names) == len(datas) and not any(p.name.startswith(".tmp-") for p in names)
    assert len({p.parent for p in names}) == -(-len(datas) // 7)


def test_storage_deletes_only_while_the_etag_matches(st, user):
    from shared.errors import PRECONDITION_FAILED
    fid = st.create_folder(user["store_id"], None, "batch-ifmatch", "calendar")["id"]
    etag = st.save_calendar_items(fid, [save(st, "a.ics", ical("a"))])["saved"][0]["etag"]
    for condition in ('"stale"', None):
        with pytest.raises(Conflict) as err:
            st.save_calendar_items(fid, [], ["missing.ics"], {"missing.ics": condition or "*"})
        assert err.value.reason == PRECONDITION_FAILED
    with pytest.raises(Conflict):
        st.save_calendar_items(fid, [], ["a.ics"], {"a.ics": '"stale"'})
    assert st.save_calendar_items(fid, [], ["a.ics"], {"a.ics": etag})["deleted"]


def test_adapter_deletes_one_object_with_its_condition(reactor_thread, adapter):
    session = logon(reactor_thread, adapter, protocol="caldav")

    async def scenario():
        cal = await session.store().create_folder(f"Delete {time.time()}", container_class="calendar")
        etag = (await cal.save_calendar_items([("x.ics", ical("x"))]))["saved"]["x.ics"]["etag"]
        with pytest.raises(Conflict):
            await cal.delete_calendar_item("x.ics", '"other"')
        assert len(await cal.delete_calendar_item("x.ics", etag)) == 1
        assert await cal.delete_calendar_item("x.ics") == []
        await cal.delete()

    reactor_thread.coro(scenario)


def test_staged_imports_are_kept_in_the_database_and_swept_by_age(st, user):
    """Staging parks rows (and names blobs) in the database; the commit takes them out in
    its transaction, a failed commit leaves them, and the sweep drops what nobody touched."""
    from server.storage.calendar_imports import ImportGone
    from shared.errors import TooLarge

    fid = st.create_folder(user["store_id"], None, "staged", "calendar")["id"]
    st.save_calendar_items(fid, [save(st, "old.ics", ical("old"))])
    etag = st.query_items(fid, ["etag"], None, [("uid", False)])[1]["etag"][0]
    weekly = "RRULE:FREQ=WEEKLY;COUNT=4\r\n"
    parked = [save(st, "a.ics", ical("a", rrule=weekly)), save(st, "b.ics", ical("b"))]
    import_id = st.stage_calendar_objects(user["id"], fid, None, "s1", parked, ["old.ics"], {"old.ics": etag}, 10, 1000)
    keys = [s.blob_key for s in parked]
    assert st.staged_calendar_objects(user["id"]) == 3
    assert st.calendar_import_exists(import_id, user["id"], fid)
    assert not st.calendar_import_exists(import_id, user["id"] + 1, fid)
    assert st.unreferenced_blob_keys(keys) == set()  # `groupware blobs gc` leaves them alone
    with pytest.raises(TooLarge):
        st.stage_calendar_objects(user["id"], fid, import_id, "s1", [], [f"{i}.ics" for i in range(8)], {}, 10, 1001)
    with pytest.raises(ImportGone):
        st.stage_calendar_objects(user["id"], fid, "0" * 32, "s1", [], ["x.ics"], {}, 10, 1001)
    # A failed commit changes nothing and leaves the import staged.
    clash = save(st, "c.ics", ical("a"))
    with pytest.raises(Conflict):
        st.save_calendar_items(fid, [clash], staged=(import_id, user["id"]))
    st.blobs.delete(clash.blob_key)
    assert st.staged_calendar_objects(user["id"]) == 3
    done = st.save_calendar_items(fid, [save(st, "c.ics", ical("c"))], staged=(import_id, user["id"]))
    assert [s["name"] for s in done["saved"]] == ["a.ics", "b.ics", "c.ics"] and len(done["deleted"]) == 1
    assert st.staged_calendar_objects(user["id"]) == 0
    with pytest.raises(ImportGone):
        st.save_calendar_items(fid, [], staged=(import_id, user["id"]))
    # The recurring object's occurrences came through staging: four of them are indexed.
    week = 7 * 86400
    start = calendar_module.timegm((2026, 12, 1, 10, 0, 0))
    _, table = st.query_items(fid, ["name"], {"occurs": (start + 3 * week, start + 3 * week + 60)}, [("uid", False)])
    assert table["name"] == ["a.ics"]

    # Abandoned: the sweep drops imports last touched before its cut-off, with their blobs.
    gone = [save(st, "d.ics", ical("d"))]
    st.stage_calendar_objects(user["id"], fid, None, "s2", gone, [], {}, 10, 2000)
    kept = [save(st, "e.ics", ical("e"))]
    st.stage_calendar_objects(user["id"], fid, None, "s3", kept, [], {}, 10, 3000)
    assert st.drop_stale_calendar_imports(1000) == 0
    assert st.drop_stale_calendar_imports(2500) == 1
    assert st.unreferenced_blob_keys([gone[0].blob_key, kept[0].blob_key]) == {gone[0].blob_key}
    assert not os.path.exists(st.blobs.path(gone[0].blob_key))
    assert os.path.exists(st.blobs.path(kept[0].blob_key))
    # A logoff drops what its session staged to last.
    assert st.drop_calendar_imports_of_session("s2") == 0
    assert st.drop_calendar_imports_of_session("s3") == 1
    assert not os.path.exists(st.blobs.path(kept[0].blob_key))
    assert st.staged_calendar_objects(user["id"]) == 0
