"""Recurrence through the CalDAV gateway: DST weeks in Amsterdam and New York, overrides and
EXDATE in one resource, overrides without their master, all-day and floating events, and
real-world calendars from the icalendar package's test data."""
from __future__ import annotations

import glob
import os
import re
import time
import xml.etree.ElementTree as ET

import icalendar
import pytest

from caldav_env import CAL, DAV, new_calendar

pytestmark = pytest.mark.gateway_env("caldav")

VTIMEZONES = {
    "Europe/Amsterdam": (
        "BEGIN:VTIMEZONE\r\nTZID:Europe/Amsterdam\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\n"
        "TZNAME:CEST\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n"
        "BEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\nDTSTART:19701025T030000\r\n"
        "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"),
    "America/New_York": (
        "BEGIN:VTIMEZONE\r\nTZID:America/New_York\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:-0500\r\nTZOFFSETTO:-0400\r\n"
        "TZNAME:EDT\r\nDTSTART:19700308T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU\r\nEND:DAYLIGHT\r\n"
        "BEGIN:STANDARD\r\nTZOFFSETFROM:-0400\r\nTZOFFSETTO:-0500\r\nTZNAME:EST\r\nDTSTART:19701101T020000\r\n"
        "RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"),
}
ICAL_TESTS = os.path.join(os.path.dirname(icalendar.__file__), "tests")


def wrap(*components: str, tz: str | None = None) -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n" + (VTIMEZONES[tz] if tz else "")
            + "".join(components) + "END:VCALENDAR\r\n")


def vevent(uid: str, lines: str) -> str:
    return f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n{lines}END:VEVENT\r\n"


def query(env, cal: str, start: str, end: str, expand: bool = False) -> ET.Element:
    # Radicale 3.9 expands once per requested property on one shared component, so an
    # expanding query asks for the data alone (as the caldav library does).
    data = (f'<c:calendar-data><c:expand start="{start}" end="{end}"/></c:calendar-data>' if expand
            else "<d:getetag/><c:calendar-data/>")
    body = ('<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop>'
            f'{data}</d:prop><c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT">'
            f'<c:time-range start="{start}" end="{end}"/></c:comp-filter></c:comp-filter></c:filter>'
            '</c:calendar-query>')
    r = env.request("REPORT", cal, body, Depth="1", Content_Type="application/xml")
    assert r.status_code == 207, r.text
    return ET.fromstring(r.content)


def names(root: ET.Element) -> list[str]:
    return sorted(h.text.rsplit("/", 1)[1] for h in root.iter(DAV + "href"))


def expanded_starts(root: ET.Element) -> list[str]:
    """DTSTART values (UTC, as the expansion writes them) of every returned instance."""
    out = []
    for data in root.iter(CAL + "calendar-data"):
        out += re.findall(r"^DTSTART[^:\r\n]*:(\S+)", data.text or "", re.M)
    return sorted(out)


# -- DST ----------------------------------------------------------------------------

DST_CASES = [
    # zone, first occurrence (local), query window, expected UTC starts inside it
    ("Europe/Amsterdam", "20260316T090000", "20260322T000000Z", "20260404T000000Z",
     ["20260323T080000Z", "20260330T070000Z"]),                       # spring forward 29 March
    ("Europe/Amsterdam", "20261012T090000", "20261018T000000Z", "20261031T000000Z",
     ["20261019T070000Z", "20261026T080000Z"]),                       # fall back 25 October
    ("America/New_York", "20260223T090000", "20260301T000000Z", "20260314T000000Z",
     ["20260302T140000Z", "20260309T130000Z"]),                       # spring forward 8 March
    ("America/New_York", "20261019T090000", "20261025T000000Z", "20261107T000000Z",
     ["20261026T130000Z", "20261102T140000Z"]),                       # fall back 1 November
]


@pytest.mark.parametrize("zone,first,start,end,expected", DST_CASES)
def test_weekly_meeting_keeps_its_local_time_across_dst(env, zone, first, start, end, expected):
    cal = new_calendar(env, "dst-" + zone.split("/")[1].lower() + first[4:6])
    lines = f"DTSTART;TZID={zone}:{first}\r\nDURATION:PT1H\r\nSUMMARY:weekly\r\nRRULE:FREQ=WEEKLY\r\n"
    assert env.request("PUT", cal + "weekly.ics", wrap(vevent("weekly-" + first, lines), tz=zone)).status_code == 201
    root = query(env, cal, start, end, expand=True)
    assert expanded_starts(root) == expected
    # A narrow window on the shifted instance finds the series; the old wall-clock hour does not.
    shifted = expected[1]
    before = shifted[:9] + "%02d" % (int(shifted[9:11]) - 1) + shifted[11:]
    assert names(query(env, cal, shifted, shifted[:13] + "30" + shifted[15:])) == ["weekly.ics"]
    assert names(query(env, cal, before, before[:13] + "30" + before[15:])) == []


# -- overrides, EXDATE, orphans ---------------------------------------------------------

def test_rrule_with_override_and_exdate_in_one_resource(env):
    cal = new_calendar(env, "overrides")
    tz = "Europe/Amsterdam"
    master = vevent("series", f"DTSTART;TZID={tz}:20260601T100000\r\nDTEND;TZID={tz}:20260601T110000\r\n"
                              "SUMMARY:standup\r\nRRULE:FREQ=DAILY;COUNT=5\r\n"
                              f"EXDATE;TZID={tz}:20260603T100000\r\n")
    moved = vevent("series", f"RECURRENCE-ID;TZID={tz}:20260602T100000\r\n"
                             f"DTSTART;TZID={tz}:20260602T150000\r\nDTEND;TZID={tz}:20260602T160000\r\n"
                             "SUMMARY:standup (moved)\r\n")
    assert env.request("PUT", cal + "series.ics", wrap(master, moved, tz=tz)).status_code == 201
    root = query(env, cal, "20260601T000000Z", "20260610T000000Z", expand=True)
    assert expanded_starts(root) == ["20260601T080000Z", "20260602T130000Z", "20260604T080000Z",
                                     "20260605T080000Z"]
    # The override keeps the master's TZID when read back.
    text = env.request("GET", cal + "series.ics").text
    assert "RECURRENCE-ID;TZID=Europe/Amsterdam:20260602T100000" in text
    # The excluded day finds nothing; the moved instance is found at its new time only.
    assert names(query(env, cal, "20260603T000000Z", "20260604T000000Z")) == []
    assert names(query(env, cal, "20260602T130000Z", "20260602T140000Z")) == ["series.ics"]
    assert names(query(env, cal, "20260602T080000Z", "20260602T090000Z")) == []


def test_override_without_its_master_is_stored(env):
    cal = new_calendar(env, "orphans")
    orphan = vevent("lonely", "RECURRENCE-ID:20260702T100000Z\r\nDTSTART:20260702T120000Z\r\n"
                              "DTEND:20260702T130000Z\r\nSUMMARY:invited to one instance\r\n")
    assert env.request("PUT", cal + "lonely.ics", wrap(orphan)).status_code == 201
    assert "RECURRENCE-ID:20260702T100000Z" in env.request("GET", cal + "lonely.ics").text
    assert names(query(env, cal, "20260702T000000Z", "20260703T000000Z")) == ["lonely.ics"]


def test_all_day_and_floating_events(env):
    cal = new_calendar(env, "allday")
    env.request("PUT", cal + "day.ics", wrap(vevent("day", "DTSTART;VALUE=DATE:20260810\r\n"
                                                            "DTEND;VALUE=DATE:20260811\r\nSUMMARY:holiday\r\n")))
    env.request("PUT", cal + "floating.ics", wrap(vevent("floating", "DTSTART:20260812T090000\r\n"
                                                                      "DTEND:20260812T100000\r\n")))
    assert names(query(env, cal, "20260810T000000Z", "20260811T000000Z")) == ["day.ics"]
    assert names(query(env, cal, "20260811T000000Z", "20260812T000000Z")) == []
    assert names(query(env, cal, "20260812T000000Z", "20260813T000000Z")) == ["floating.ics"]
    weekly_day = vevent("weekly-day", "DTSTART;VALUE=DATE:20260803\r\nRRULE:FREQ=WEEKLY;COUNT=3\r\n")
    env.request("PUT", cal + "weekly-day.ics", wrap(weekly_day))
    assert names(query(env, cal, "20260817T000000Z", "20260818T000000Z")) == ["weekly-day.ics"]
    assert names(query(env, cal, "20260824T000000Z", "20260825T000000Z")) == []


# -- real-world calendars ------------------------------------------------------------------

def real_world_files() -> list[str]:
    files = []
    for folder in ("calendars", "events", "timezones", "todos"):
        files += sorted(glob.glob(os.path.join(ICAL_TESTS, folder, "*.ics")))
    return files


def test_real_world_calendars_round_trip_or_get_400(env):
    """Every file gets a 2xx or a 4xx, never a 5xx; what is stored comes back with the same
    components and property names (the wrapper's PRODID aside)."""
    files = real_world_files()
    assert len(files) > 50
    cal = new_calendar(env, "corpus")
    tasks = new_calendar(env, "corpus-tasks", components="VTODO")
    stored = 0
    for n, path in enumerate(files):
        with open(path, "rb") as fp:
            data = fp.read()
        target = tasks if b"BEGIN:VTODO" in data and b"BEGIN:VEVENT" not in data else cal
        r = env.request("PUT", f"{target}{n}.ics", data, Content_Type="text/calendar")
        assert r.status_code < 500, (path, r.status_code, r.text[:200])
        if r.status_code not in (201, 204):
            continue
        stored += 1
        back = env.request("GET", f"{target}{n}.ics")
        assert back.status_code == 200, path
        sent, got = _shape(data.decode("utf-8", "replace")), _shape(back.text)
        assert sent <= got, (path, sent - got)
    assert stored > 20
    assert env.request("PROPFIND", cal, Depth="1").status_code == 207


def _shape(text: str) -> set[tuple[str, str]]:
    """(component, property name) pairs of the VEVENT/VTODO components."""
    try:
        parsed = icalendar.Calendar.from_ical(text)
    except Exception:
        return set()
    return {(c.name, p) for c in parsed.walk() if c.name in ("VEVENT", "VTODO") for p in c}


# -- the store's occurrence index ---------------------------------------------------------

def test_occurrence_index_follows_local_time_overrides_and_exdates():
    from server.occurrences import COMPLETE, occurrence_index
    tz = "Europe/Amsterdam"
    text = wrap(vevent("s", f"DTSTART;TZID={tz}:20260323T090000\r\nDURATION:PT1H\r\nRRULE:FREQ=WEEKLY;COUNT=3\r\n"
                            f"EXDATE;TZID={tz}:20260406T090000\r\n"),
                vevent("s", f"RECURRENCE-ID;TZID={tz}:20260330T090000\r\nDTSTART;TZID={tz}:20260331T150000\r\n"
                            f"DTEND;TZID={tz}:20260331T160000\r\n"), tz=tz)
    rows, until = occurrence_index(text, series_end=1775000000)
    utc = [(time_of(s), time_of(e)) for s, e in rows]
    assert utc == [("2026-03-23 08:00", "2026-03-23 09:00"), ("2026-03-31 13:00", "2026-03-31 14:00")]
    assert until == COMPLETE


def test_occurrence_index_is_bounded():
    from server.occurrences import HORIZON_SECONDS, MAX_OCCURRENCES, occurrence_index
    started = time.monotonic()
    huge = "DTSTART:20260101T000000Z\r\nRRULE:FREQ=SECONDLY;COUNT=100000000\r\n"
    assert occurrence_index(wrap(vevent("x", huge))) == ([], None)
    rows, until = occurrence_index(wrap(vevent("d", "DTSTART:19000101T000000Z\r\nRRULE:FREQ=DAILY;COUNT=100000000\r\n")))
    assert len(rows) == MAX_OCCURRENCES and until == rows[-1][0] + 86400
    assert time.monotonic() - started < 30
    now = 1_800_000_000
    rows, until = occurrence_index(wrap(vevent("w", "DTSTART:20260101T000000Z\r\nRRULE:FREQ=WEEKLY\r\n")),
                                   now=now)
    assert until == now + HORIZON_SECONDS and rows[-1][0] < until
    assert occurrence_index("BEGIN:VCALENDAR\r\nnot a calendar") == ([], None)


def time_of(epoch: int) -> str:
    import datetime
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
