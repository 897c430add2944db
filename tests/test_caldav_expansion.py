"""Expansion and time ranges of recurring objects, compared with python-recurring-ical-events
on calendars nobody here wrote: the library's own test calendars (collected from bug reports)
and icalendar's. Each file's objects are stored one UID per resource; then for windows at the
series' start, years later and far past the store's occurrence index horizon, an `expand`
query, a plain time-range query and a free-busy query must give what the library gives."""
from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import icalendar
import pytest
import recurring_ical_events

from caldav_env import CAL, DAV, new_calendar

pytestmark = pytest.mark.gateway_env("caldav")

UTC = timezone.utc
LIBRARY_CALENDARS = Path(recurring_ical_events.__file__).parent / "test" / "calendars"
ICALENDAR_CALENDARS = Path(icalendar.__file__).parent / "tests" / "calendars"
FAR = datetime(2032, 3, 1, tzinfo=UTC)  # beyond the index horizon (3 years from now)
OBJECTS_PER_FILE = 40  # a few files hold hundreds of events; their first ones are enough


def utc_text(value) -> str:
    if isinstance(value, datetime):
        value = value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return value.strftime("%Y%m%dT%H%M%SZ")
    return value.strftime("%Y%m%d")


def when(value) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def resources(path: Path) -> dict[str, str]:
    """The calendar's VEVENTs as resources, one per UID, each with the calendar's own
    properties (X-WR-TIMEZONE among them) and time zones."""
    try:
        calendar = icalendar.Calendar.from_ical(path.read_bytes())
    except Exception:
        return {}
    events: dict[str, list] = {}
    for component in calendar.walk("VEVENT"):
        if "UID" in component and "DTSTART" in component:
            events.setdefault(str(component["UID"]), []).append(component)
    zones = [c for c in calendar.subcomponents if c.name == "VTIMEZONE"]
    out = {}
    for uid, components in events.items():
        resource = icalendar.Calendar()
        for name, value in calendar.property_items(recursive=False)[1:-1]:
            resource.add(name, value, encode=False)
        if "VERSION" not in resource:
            resource.add("VERSION", "2.0")
        if "PRODID" not in resource:
            resource.add("PRODID", "-//test//EN")
        for c in zones + components:
            resource.add_component(c)
        out[uid] = resource.to_ical().decode("utf-8")
    return out


def library_instances(text: str, start: datetime, end: datetime) -> set[tuple[str, str]]:
    calendar = icalendar.Calendar.from_ical(text)
    found = recurring_ical_events.of(calendar, skip_bad_series=True).between(start, end)
    return {(str(c["UID"]), utc_text(c["DTSTART"].dt)) for c in found}


def windows(texts: list[str]) -> list[tuple[datetime, datetime]]:
    starts = []
    for text in texts:
        for c in icalendar.Calendar.from_ical(text).walk("VEVENT"):
            starts.append(when(c["DTSTART"].dt))
    first = min(starts)
    return [(first - timedelta(days=1), first + timedelta(days=40)),
            (first + timedelta(days=5 * 365), first + timedelta(days=6 * 365)),
            (FAR, FAR + timedelta(days=62))]


def report(env, path: str, start: datetime, end: datetime, expand: bool):
    s, e = utc_text(start), utc_text(end)
    data = (f'<d:getetag/><c:calendar-data><c:expand start="{s}" end="{e}"/></c:calendar-data>' if expand
            else "<d:getetag/>")
    body = ('<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop>'
            f'{data}</d:prop><c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT">'
            f'<c:time-range start="{s}" end="{e}"/></c:comp-filter></c:comp-filter></c:filter>'
            '</c:calendar-query>')
    r = env.request("REPORT", path, body, Depth="1", Content_Type="application/xml")
    assert r.status_code == 207, r.text[:500]
    return ET.fromstring(r.content)


def served_instances(root: ET.Element) -> set[tuple[str, str]]:
    out = set()
    for data in root.iter(CAL + "calendar-data"):
        for c in icalendar.Calendar.from_ical(data.text).walk("VEVENT"):
            assert "RRULE" not in c and "RDATE" not in c and "EXDATE" not in c
            assert "RECURRENCE-ID" in c
            value = c["DTSTART"].dt
            assert not isinstance(value, datetime) or value.tzinfo is not None, "an expanded time not in UTC"
            out.add((str(c["UID"]), utc_text(value)))
    return out


def calendar_files() -> list[Path]:
    """The reference calendars that hold events with a start (others hold only to-dos,
    alarms or time zones, or are files icalendar itself cannot read)."""
    files = sorted(LIBRARY_CALENDARS.glob("*.ics"))
    files += [p for p in sorted(ICALENDAR_CALENDARS.glob("*.ics")) if b"RRULE" in p.read_bytes()]
    return [p for p in files if b"BEGIN:VEVENT" in p.read_bytes() and resources(p)]


def test_the_reference_calendars_are_there():
    assert len(list(LIBRARY_CALENDARS.glob("*.ics"))) > 80
    assert len(calendar_files()) > 90


@pytest.mark.parametrize("path", calendar_files(), ids=lambda p: p.parent.parent.name[:4] + ":" + p.stem)
def test_expansion_and_time_ranges_agree_with_the_library(env, path):
    objects = resources(path)
    cal = new_calendar(env, "x-" + re.sub(r"[^a-z0-9]+", "-", path.stem.lower())[:40])
    stored: dict[str, str] = {}
    refused = []
    for n, (uid, text) in enumerate(list(objects.items())[:OBJECTS_PER_FILE]):
        r = env.request("PUT", f"{cal}{n}.ics", text, Content_Type="text/calendar")
        assert r.status_code < 500, (uid, r.status_code, r.text[:300])
        if r.status_code in (201, 204):
            stored[f"{n}.ics"] = text
        else:
            refused.append((r.status_code, r.text[:200]))
    if not stored:
        # Objects the server refuses (rules it cannot read, RSCALE, periods in RDATE) get a
        # client error with its reason, never a 5xx: there is nothing to compare then.
        assert all(400 <= status < 500 for status, _ in refused), refused
        return
    agree_with_the_library(env, cal, stored, windows(list(stored.values())))


def agree_with_the_library(env, cal: str, stored: dict[str, str], ranges: list[tuple[datetime, datetime]]) -> None:
    """Expanded instances and matching resources of `cal` (holding `stored`, name -> text)
    are the library's, for each range."""
    for start, end in ranges:
        expected = set()
        matching = set()
        for name, text in stored.items():
            found = library_instances(text, start, end)
            expected |= found
            if found:
                matching.add(name)
        served = served_instances(report(env, cal, start, end, expand=True))
        assert served == expected, (start, end, sorted(served ^ expected)[:10])
        names = {h.text.rsplit("/", 1)[1] for h in report(env, cal, start, end, expand=False).iter(DAV + "href")}
        assert names == matching, (start, end, sorted(names ^ matching))


SERIES = {
    "weekly.ics": "DTSTART;TZID=Europe/Berlin:20200106T090000\r\nDTEND;TZID=Europe/Berlin:20200106T100000\r\n"
                  "RRULE:FREQ=WEEKLY\r\n",
    "birthday.ics": "DTSTART;VALUE=DATE:19970315\r\nRRULE:FREQ=YEARLY\r\n",
    "thousand.ics": "DTSTART:20260101T090000Z\r\nDURATION:PT1H\r\nRRULE:FREQ=DAILY;COUNT=1000\r\n"
                    "EXDATE:20270101T090000Z\r\nRDATE:20300101T120000Z\r\n",
    "floating.ics": "DTSTART:20250301T080000\r\nDTEND:20250301T083000\r\nRRULE:FREQ=MONTHLY;BYDAY=1SA\r\n",
}
BERLIN = ("BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\n"
          "DTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\nBEGIN:STANDARD\r\n"
          "TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nDTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;"
          "BYDAY=-1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n")


def test_series_running_past_the_index_horizon_expand_in_one_calendar(env):
    """An open-ended weekly meeting, a birthday since 1997 and a COUNT=1000 series with EXDATE
    and RDATE in one calendar: expanded (with ETags, as Thunderbird asks) now, past the
    occurrence index's three years, and decades ahead, as the library expands them."""
    cal = new_calendar(env, "horizon")
    stored = {}
    for name, lines in SERIES.items():
        text = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n" + BERLIN + "BEGIN:VEVENT\r\n"
                f"UID:{name}\r\nDTSTAMP:20260101T000000Z\r\n{lines}SUMMARY:{name}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
        assert env.request("PUT", cal + name, text, Content_Type="text/calendar").status_code == 201
        stored[name] = text
    ranges = [(datetime(y, m, 1, tzinfo=UTC), datetime(y + (m + 1) // 13, (m % 12) + 1, 1, tzinfo=UTC))
              for y, m in ((2026, 3), (2026, 10), (2028, 9), (2029, 12), (2031, 3), (2045, 10), (2099, 11))]
    ranges.append((datetime(2029, 6, 1, tzinfo=UTC), datetime(2031, 6, 1, tzinfo=UTC)))
    agree_with_the_library(env, cal, stored, ranges)
    for start, end in ranges:
        body = ('<c:free-busy-query xmlns:c="urn:ietf:params:xml:ns:caldav">'
                f'<c:time-range start="{utc_text(start)}" end="{utc_text(end)}"/></c:free-busy-query>')
        r = env.request("REPORT", cal, body, Depth="1", Content_Type="application/xml")
        assert r.status_code == 200, r.text[:300]
        served = set()
        for component in icalendar.Calendar.from_ical(r.text).walk("VFREEBUSY"):
            periods = component.get("FREEBUSY", [])
            for period in periods if isinstance(periods, list) else [periods]:
                first, last = period.dt
                served.add((when(first), when(first) + last if isinstance(last, timedelta) else when(last)))
        assert served == library_busy(stored.values(), start, end), (start, end)


def library_busy(texts, start: datetime, end: datetime) -> set[tuple[datetime, datetime]]:
    """The library's instances in [start, end) as merged busy periods, cut to the range."""
    spans = []
    for text in texts:
        for c in recurring_ical_events.of(icalendar.Calendar.from_ical(text)).between(start, end):
            first, last = when(c["DTSTART"].dt), when(c["DTEND"].dt)
            first, last = max(first, start), min(last, end)
            if first < last:
                spans.append((first, last))
    merged: list[tuple[datetime, datetime]] = []
    for first, last in sorted(spans):
        if merged and first <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(last, merged[-1][1]))
        else:
            merged.append((first, last))
    return set(merged)


def test_limit_recurrence_set_keeps_the_master_and_the_overrides_in_range(env):
    """RFC 4791 §9.6.6: the master, and of the overrides only those whose instance overlaps the
    range or whose original time lies in it (an instance moved out of it is still named)."""
    cal = new_calendar(env, "limited")
    zone = "BEGIN:VTIMEZONE\r\nTZID:UTC+1\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\nTZOFFSETFROM:+0100\r\n" \
           "TZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"

    def component(lines: str) -> str:
        return f"BEGIN:VEVENT\r\nUID:limited\r\nDTSTAMP:20260101T000000Z\r\n{lines}END:VEVENT\r\n"
    text = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n" + zone
            + component("DTSTART;TZID=UTC+1:20260105T100000\r\nDURATION:PT1H\r\nRRULE:FREQ=WEEKLY\r\n"
                        "SUMMARY:weekly\r\n")
            + component("RECURRENCE-ID;TZID=UTC+1:20260112T100000\r\nDTSTART;TZID=UTC+1:20260112T150000\r\n"
                        "DURATION:PT1H\r\nSUMMARY:in range\r\n")
            + component("RECURRENCE-ID;TZID=UTC+1:20260302T100000\r\nDTSTART;TZID=UTC+1:20260114T100000\r\n"
                        "DURATION:PT1H\r\nSUMMARY:moved into range\r\n")
            + component("RECURRENCE-ID;TZID=UTC+1:20260119T100000\r\nDTSTART;TZID=UTC+1:20260302T100000\r\n"
                        "DURATION:PT1H\r\nSUMMARY:moved out of range\r\n")
            + component("RECURRENCE-ID;TZID=UTC+1:20260209T100000\r\nDTSTART;TZID=UTC+1:20260209T110000\r\n"
                        "DURATION:PT1H\r\nSUMMARY:elsewhere\r\n")
            + "END:VCALENDAR\r\n")
    assert env.request("PUT", f"{cal}limited.ics", text, Content_Type="text/calendar").status_code == 201
    body = ('<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><c:calendar-data>'
            '<c:limit-recurrence-set start="20260110T000000Z" end="20260125T000000Z"/></c:calendar-data></d:prop>'
            '<c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT">'
            '<c:time-range start="20260110T000000Z" end="20260125T000000Z"/></c:comp-filter></c:comp-filter>'
            '</c:filter></c:calendar-query>')
    r = env.request("REPORT", cal, body, Depth="1", Content_Type="application/xml")
    assert r.status_code == 207, r.text
    data = ET.fromstring(r.content).find(f".//{CAL}calendar-data").text
    summaries = sorted(str(c["SUMMARY"]) for c in icalendar.Calendar.from_ical(data).walk("VEVENT"))
    assert summaries == ["in range", "moved into range", "moved out of range", "weekly"], summaries
    assert "VTIMEZONE" in data and "RRULE:FREQ=WEEKLY" in data
