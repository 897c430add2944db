"""Journals (VJOURNAL, RFC 5545 §3.6.3) over CalDAV: a collection made for them keeps them as
journal entries in a journal folder of the store; PUT, GET, calendar-query, multiget and
sync-collection answer them as they answer events, with the caldav library and raw requests."""
from __future__ import annotations

import datetime

import icalendar
import pytest

from caldav_env import CAL, DAV, hrefs, new_calendar, propfind, sync_collection, xml

pytestmark = pytest.mark.gateway_env("caldav")


def journal(uid: str, day: str = "20260105", summary: str = "notes", extra: str = "") -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VJOURNAL\r\n"
            f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;VALUE=DATE:{day}\r\nSUMMARY:{summary}\r\n"
            f"DESCRIPTION:what happened on {day}\r\n{extra}END:VJOURNAL\r\nEND:VCALENDAR\r\n")


def journal_query(start: str | None = None, end: str | None = None) -> str:
    time_range = f'<c:time-range start="{start}" end="{end}"/>' if start else ""
    return ('<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/>'
            '<c:calendar-data/></d:prop><c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VJOURNAL">'
            f'{time_range}</c:comp-filter></c:comp-filter></c:filter></c:calendar-query>')


def test_journal_entries_are_stored_queried_and_synced(env):
    cal = new_calendar(env, "Journal", components="VJOURNAL")
    r = propfind(env, cal, "<c:supported-calendar-component-set/>")
    comps = [c.get("name") for c in xml(r).iter(CAL + "comp")]
    assert comps == ["VJOURNAL"], r.text
    empty = xml(sync_collection(env, cal)).find(DAV + "sync-token").text

    for n, day in enumerate(("20260105", "20260210", "20260301")):
        r = env.request("PUT", f"{cal}j{n}.ics", journal(f"j{n}", day), Content_Type="text/calendar")
        assert r.status_code == 201, r.text
    back = env.request("GET", f"{cal}j1.ics")
    assert back.status_code == 200 and back.headers["content-type"].startswith("text/calendar")
    entry = icalendar.Calendar.from_ical(back.text).walk("VJOURNAL")[0]
    assert str(entry["UID"]) == "j1" and str(entry["DESCRIPTION"]) == "what happened on 20260210"

    r = env.request("REPORT", cal, journal_query(), Depth="1", Content_Type="application/xml")
    assert r.status_code == 207 and sorted(h.rsplit("/", 1)[1] for h in hrefs(r)) == ["j0.ics", "j1.ics", "j2.ics"]
    r = env.request("REPORT", cal, journal_query("20260201T000000Z", "20260220T000000Z"), Depth="1",
                    Content_Type="application/xml")
    assert r.status_code == 207 and [h.rsplit("/", 1)[1] for h in hrefs(r)] == ["j1.ics"], r.text

    changed = sync_collection(env, cal, empty)
    assert changed.status_code == 207
    assert sorted(h.rsplit("/", 1)[1] for h in hrefs(changed)) == ["j0.ics", "j1.ics", "j2.ics"]
    token = xml(changed).find(DAV + "sync-token").text
    assert env.request("PUT", f"{cal}j1.ics", journal("j1", "20260210", "edited"),
                       Content_Type="text/calendar").status_code == 204
    assert env.request("DELETE", f"{cal}j2.ics").status_code in (200, 204)
    changed = sync_collection(env, cal, token)
    statuses = {h.text.rsplit("/", 1)[1]: (r.findtext(f".//{DAV}status") or "")
                for r in xml(changed).iter(DAV + "response") for h in r.iter(DAV + "href")}
    assert set(statuses) == {"j1.ics", "j2.ics"} and "404" in statuses["j2.ics"], changed.text


def test_caldav_library_journals(env):
    import caldav
    with caldav.DAVClient(url=env.base + "/", username="demo", password=env.password, require_tls=False) as client:
        principal = client.principal()
        cal = principal.make_calendar(name="Diary", cal_id="diary", supported_calendar_component_set=["VJOURNAL"])
        try:
            saved = cal.save_journal(dtstart=datetime.date(2026, 3, 4), summary="a day", uid="diary-1")
            cal.save_journal(journal("diary-2", "20260305", "another day"))
            assert {j.icalendar_component["UID"] for j in cal.journals()} == {"diary-1", "diary-2"}
            saved.icalendar_component["SUMMARY"] = "a good day"
            saved.save()
            assert str(cal.object_by_uid("diary-1").icalendar_component["SUMMARY"]) == "a good day"
            saved.delete()
            assert {j.icalendar_component["UID"] for j in cal.journals()} == {"diary-2"}
        finally:
            cal.delete()


def test_a_journal_only_feed_becomes_a_journal(env):
    """A whole-calendar PUT of journals creates a journal collection."""
    body = journal("feed-1").replace("END:VCALENDAR\r\n", "") + journal("feed-2", "20260106").split(
        "PRODID:-//test//EN\r\n", 1)[1]
    r = env.request("PUT", "/ical/demo/Memories", body, Content_Type="text/calendar")
    assert r.status_code in (201, 204), r.text
    r = propfind(env, "/caldav/demo/Memories/", "<c:supported-calendar-component-set/>")
    assert [c.get("name") for c in xml(r).iter(CAL + "comp")] == ["VJOURNAL"], r.text
    r = env.request("REPORT", "/caldav/demo/Memories/", journal_query(), Depth="1", Content_Type="application/xml")
    assert len(hrefs(r)) == 2, r.text
