"""CalDAV sync-collection (RFC 6578) on getChangedItems: the store call, its cost, and the
poll answered on the reactor against Radicale's own answer."""
from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET

import pytest

from gateways.caldav import sync
from shared import codec
from shared.errors import NotFound
from query_plans import planned, sqlite_calendar
from soap_client import caldav_soap, schema
from caldav_env import DAV, event as vevent, hrefs, new_calendar, sync_collection, xml

pytestmark = pytest.mark.gateway_env("caldav")

XSD = schema()


# -- the store call ---------------------------------------------------------------

def test_get_changed_items_returns_changed_rows_with_their_columns_and_deleted_names(server):
    alice = caldav_soap(server, "alice")
    folder = codec.field(alice.call("createFolder", ("name", "Sync cal"), ("containerClass", "calendar"))
                         .find(codec.gw("folder")), "id")
    for i in range(5):
        alice.call("saveCalendarItem", ("folderId", folder), ("name", f"e{i}.ics"), ("icalendar", vevent(f"e{i}")))
    since = int(codec.field(alice.call("getChanges", ("folderId", folder), ("sinceModseq", 0)), "highestModseq"))
    alice.call("saveCalendarItem", ("folderId", folder), ("name", "e1.ics"), ("icalendar", vevent("e1", summary="moved")))
    uid3 = codec.table_from_xml(alice.call("queryRows", ("folderId", folder), ("columns", "uid name"),
                                           ("restriction", codec.restriction_to_xml({"cmp": ["name", "eq", "e3.ics"]})))
                                .find(codec.gw("table")))[1]["uid"][0]
    alice.call("deleteItems", ("folderId", folder), ("uids", str(uid3)))

    answer = alice.call("getChangedItems", ("folderId", folder), ("sinceModseq", since),
                        ("columns", "uid name etag source"))
    rows, table = codec.table_from_xml(answer.find(codec.gw("table")))
    assert rows == 1 and table["name"] == ["e1.ics"] and table["etag"][0]
    assert b"SUMMARY:moved" in base64.b64decode(table["source"][0])
    _, gone = codec.table_from_xml(answer.find(codec.gw("deletedNames")))
    assert gone == {"uid": [uid3], "name": ["e3.ics"]}
    assert codec.field(answer, "deleted") == str(uid3)
    assert codec.field(answer, "expired") == "false"
    assert int(codec.field(answer, "highestModseq")) > since
    assert int(codec.field(answer, "uidValidity")) > 0

    nothing = alice.call("getChangedItems", ("folderId", folder), ("sinceModseq", codec.field(answer, "highestModseq")),
                         ("columns", "name"))
    assert codec.table_from_xml(nothing.find(codec.gw("table")))[0] == 0
    assert nothing.find(codec.gw("deletedNames")) is None

    bob = caldav_soap(server, "bob")
    with pytest.raises(NotFound):
        bob.call("getChangedItems", ("folderId", folder), ("sinceModseq", 0), ("columns", "name"))


def test_changed_items_reads_only_the_changes_through_the_modseq_indexes(tmp_path):
    with sqlite_calendar(tmp_path) as (st, folder):
        since = st.changed_items(folder, 0, ["uid"])["highestmodseq"]
        st.save_calendar_item(folder, "e7.ics", "k7b", 10, {"icalUid": "e7", "etag": '"7b"'})
        result, statements = planned(st, lambda: st.changed_items(folder, since, ["name", "etag"]))
        assert result["changed"] == {"name": ["e7.ics"], "etag": ['"7b"']}
        plans = [p for _, lines in statements for p in lines]
        # Every table is searched by an index, none read in full.
        assert plans and not [p for p in plans if p.startswith("SCAN")], plans
        assert any("ix_items_folder_modseq" in p for p in plans), plans
        assert any("ix_tombstones_folder_modseq" in p for p in plans), plans


# -- the CalDAV answer --------------------------------------------------------------

def sync_body(token: str, props: str, extra: str = "") -> str:
    return (f'<d:sync-collection xmlns:d="DAV:"><d:sync-token>{token}</d:sync-token>'
            f'<d:sync-level>1</d:sync-level>{extra}<d:prop>{props}</d:prop></d:sync-collection>')


def canonical(data: bytes) -> str:
    return ET.canonicalize(data.decode("utf-8"), strip_text=True)


def test_poll_answer_is_radicales_answer(env):
    cal = new_calendar(env, "polled")
    for name in ("a.ics", "b c&d.ics", "gone.ics", "ü.ics"):
        env.request("PUT", cal + name, vevent(name), Content_Type="text/calendar")
    token = xml(sync_collection(env, cal)).find(DAV + "sync-token").text
    env.request("PUT", cal + "b c&d.ics", vevent("b c&d.ics", summary="changed"), Content_Type="text/calendar")
    env.request("PUT", cal + "new.ics", vevent("new.ics"), Content_Type="text/calendar")
    env.request("DELETE", cal + "gone.ics")
    for props in ("<d:getetag/>", "<d:getcontenttype/><d:getetag/>", "<d:getetag/><d:resourcetype/>"):
        fast = env.request("REPORT", cal, sync_body(token, props), Content_Type="application/xml")
        # Radicale ignores a limit; the reactor-side answer leaves such requests to it.
        limited = sync_body(token, props, "<d:limit><d:nresults>50</d:nresults></d:limit>")
        assert sync.parse(ET.fromstring(limited)) is None
        assert (sync.parse(ET.fromstring(sync_body(token, props))) is None) == ("resourcetype" in props)
        slow = env.request("REPORT", cal, limited, Content_Type="application/xml")
        assert fast.status_code == slow.status_code == 207
        assert fast.headers["Content-Type"] == slow.headers["Content-Type"]
        assert canonical(fast.content) == canonical(slow.content)
    assert sorted(h.rsplit("/", 1)[1] for h in hrefs(fast)) == ["b%20c%26d.ics", "gone.ics", "new.ics"]


def test_tokens_of_another_or_a_recreated_calendar_are_403(env):
    first = new_calendar(env, "first")
    other = new_calendar(env, "other")
    token = xml(sync_collection(env, first)).find(DAV + "sync-token").text
    assert xml(sync_collection(env, first, token)).find(DAV + "sync-token").text == token
    r = sync_collection(env, other, token)
    assert r.status_code == 403 and "valid-sync-token" in r.text
    future = re.sub(r"-(\d+)$", lambda m: f"-{int(m.group(1)) + 1000}", token)
    r = sync_collection(env, first, future)
    assert r.status_code == 403 and "valid-sync-token" in r.text
    new_calendar(env, "first")  # deleted and made again under the same URL
    r = sync_collection(env, first, token)
    assert r.status_code == 403 and "valid-sync-token" in r.text
    assert hrefs(sync_collection(env, first)) == []


def test_a_calendar_the_session_has_not_listed_is_found_by_a_poll(env):
    cal = new_calendar(env, "not-listed-yet")
    token = xml(sync_collection(env, cal)).find(DAV + "sync-token").text
    env.request("PUT", cal + "x.ics", vevent("x"), Content_Type="text/calendar")
    r = sync_collection(env, cal, token)
    assert r.status_code == 207 and [h.rsplit("/", 1)[1] for h in hrefs(r)] == ["x.ics"]
