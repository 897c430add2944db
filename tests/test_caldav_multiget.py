"""Calendar objects by resource name (getItemsByName): calendar-multiget, GET, PUT and DELETE
of one object find it through the (folder, name) index, whatever the calendar's size."""
from __future__ import annotations

import base64
import io
import xml.etree.ElementTree as ET
from urllib.parse import quote

import pytest

from gateways.caldav import multiget
from server.soap.tables import read_inline
from shared import codec
from shared.errors import BadRequest, NotFound
from caldav_env import CAL, DAV, event as vevent, new_calendar, xml
from query_plans import planned, sqlite_calendar
from soap_client import caldav_soap

pytestmark = pytest.mark.gateway_env("caldav")


def test_get_items_by_name_returns_the_named_items_in_uid_order(server):
    alice = caldav_soap(server, "alice")
    folder = codec.field(alice.call("createFolder", ("name", "By name"), ("containerClass", "calendar"))
                         .find(codec.gw("folder")), "id")
    for name in ("b.ics", "a b&c.ics", "c.ics"):
        alice.call("saveCalendarItem", ("folderId", folder), ("name", name), ("icalendar", vevent(name)))
    answer = alice.call("getItemsByName", ("folderId", folder), ("name", ["c.ics", "missing.ics", "a b&c.ics", "c.ics"]),
                        ("columns", "uid name etag source"))
    rows, table = codec.table_from_xml(answer.find(codec.gw("table")))
    assert rows == 2 and table["name"] == ["a b&c.ics", "c.ics"] and table["uid"] == sorted(table["uid"])
    assert b"UID:c.ics" in base64.b64decode(table["source"][1])
    empty = alice.call("getItemsByName", ("folderId", folder), ("columns", "name"))
    assert codec.table_from_xml(empty.find(codec.gw("table")))[0] == 0
    with pytest.raises(BadRequest):
        alice.call("getItemsByName", ("folderId", folder), ("columns", "name nosuchcolumn"))
    with pytest.raises(NotFound):
        caldav_soap(server, "bob").call("getItemsByName", ("folderId", folder), ("name", "c.ics"), ("columns", "name"))


def test_items_by_name_searches_the_name_index(tmp_path):
    with sqlite_calendar(tmp_path) as (st, folder):
        table, statements = planned(st, lambda: st.items_by_name(folder, ["e250.ics", "e3.ics", "nope.ics"],
                                                                 ["name", "etag"]))
        assert table == {"name": ["e3.ics", "e250.ics"], "etag": ['"3"', '"250"']}
        plans = [p for statement, lines in statements if "FROM items" in statement for p in lines]
        assert plans and all("ix_items_folder_name" in p for p in plans), plans


def test_multiget_get_and_delete_by_name(env):
    cal = new_calendar(env, "named")
    names = ["one.ics", "two words.ics", "ü&.ics"]
    for name in names:
        assert env.request("PUT", cal + name, vevent(name), Content_Type="text/calendar").status_code == 201
    hrefs = "".join(f"<d:href>{quote(cal + n)}</d:href>" for n in names + ["absent.ics"])
    body = (f'<c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/>'
            f'<c:calendar-data/></d:prop>{hrefs}</c:calendar-multiget>')
    r = env.request("REPORT", cal, body, Depth="1", Content_Type="application/xml")
    assert r.status_code == 207
    answers = {}
    for response in xml(r).iter(DAV + "response"):
        data = response.find(f".//{CAL}calendar-data")
        answers[response.find(DAV + "href").text.rsplit("/", 1)[1]] = data.text if data is not None else None
    assert answers.keys() == {"one.ics", "two%20words.ics", "%C3%BC%26.ics", "absent.ics"}
    assert answers["absent.ics"] is None and "UID:two words.ics" in answers["two%20words.ics"]
    assert "UID:ü&.ics" in env.request("GET", cal + "ü&.ics").text
    assert env.request("DELETE", cal + "ü&.ics").status_code in (200, 204)
    assert env.request("GET", cal + "ü&.ics").status_code == 404
    assert env.request("DELETE", cal + "ü&.ics").status_code == 404


def sorted_answer(data: bytes) -> list[str]:
    """The answer's responses in canonical form and a fixed order (Radicale's order is
    that of a set)."""
    root = ET.fromstring(data)
    return sorted(ET.canonicalize(ET.tostring(r, encoding="unicode"), strip_text=True) for r in root)


def test_multiget_answer_is_radicales_answer(env):
    cal = new_calendar(env, "fetched")
    names = ["a.ics", "b c&d.ics", "ü.ics"]
    for name in names:
        env.request("PUT", cal + name, vevent(name, summary="<x & y>"), Content_Type="text/calendar")
    hrefs = "".join(f"<d:href>{quote(cal + n)}</d:href>" for n in names + ["absent.ics", "a.ics"])
    for props in ("<d:getetag/><c:calendar-data/>", "<d:getcontenttype/><d:getetag/>", "<c:calendar-data/>"):
        body = ('<c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">'
                f'<d:prop>{props}</d:prop>{hrefs}</c:calendar-multiget>')
        # Radicale ignores calendar-data's content type; the reactor-side answer leaves it to Radicale.
        typed = body.replace("<c:calendar-data/>", '<c:calendar-data content-type="text/calendar"/>')
        prefix = cal.rstrip("/") + "/"
        assert multiget.parse(ET.fromstring(body), prefix) is not None
        assert props == "<d:getcontenttype/><d:getetag/>" or multiget.parse(ET.fromstring(typed), prefix) is None
        fast = env.request("REPORT", cal, body, Depth="1", Content_Type="application/xml")
        slow = env.request("REPORT", cal, typed, Depth="1", Content_Type="application/xml")
        assert fast.status_code == slow.status_code == 207
        assert fast.headers["Content-Type"] == slow.headers["Content-Type"]
        assert sorted_answer(fast.content) == sorted_answer(slow.content)
        assert len(ET.fromstring(fast.content)) == 4


@pytest.mark.parametrize("content, size, limit, expected", [
    (b"abc", 3, 10, b"abc"),
    (b"abcdef", 3, 10, b"abcdef"),           # longer than recorded: read on
    (b"a" * 20, 3, 10, b"a" * 11),            # ... but never past the limit (+1, to tell)
    (b"a" * 20, 20, 10, b"a" * 11),
    (b"ab", 3, 10, b"ab"),
])
def test_sources_are_read_as_far_as_their_size_and_the_limit(content, size, limit, expected):
    assert read_inline(io.BytesIO(content), size, limit) == expected
