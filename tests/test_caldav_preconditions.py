"""RFC 4791 details through the CalDAV gateway of a real `groupware serve`: the
CALDAV:max-instances precondition and property, CALDAV:limit-freebusy-set, and objects
without length at the very start of a time range (§9.9), compared with
python-recurring-ical-events where it applies."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timezone

import icalendar
import pytest
import recurring_ical_events

from caldav_env import CAL, DAV, new_calendar, propfind, xml
from gateways.caldav import recurrence

MAX_OBJECT_INSTANCES = 500
pytestmark = pytest.mark.gateway_env("caldav", ical_max_object_instances=str(MAX_OBJECT_INSTANCES))
UTC = timezone.utc


def calendar(*components: str) -> str:
    return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n" + "".join(components) + "END:VCALENDAR\r\n"


def vevent(uid: str, lines: str) -> str:
    return f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:{uid}\r\n{lines}END:VEVENT\r\n"


def put(env, path: str, text: str):
    return env.request("PUT", path, text, Content_Type="text/calendar; charset=utf-8")


def query(env, path: str, start: str, end: str, data: str = "<c:calendar-data/>"):
    body = ('<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">'
            f'<d:prop><d:getetag/>{data}</d:prop><c:filter><c:comp-filter name="VCALENDAR">'
            f'<c:comp-filter name="VEVENT"><c:time-range start="{start}" end="{end}"/></c:comp-filter>'
            '</c:comp-filter></c:filter></c:calendar-query>')
    r = env.request("REPORT", path, body, Depth="1", Content_Type="application/xml")
    assert r.status_code == 207, r.text
    return r


def matched(r) -> set[str]:
    return {h.text.rsplit("/", 1)[-1].removesuffix(".ics") for h in xml(r).iter(DAV + "href")}


def utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


# -- max-instances (RFC 4791 §5.2.8, §5.3.2.1)

def test_calendars_show_max_instances(env):
    path = new_calendar(env, "Shown")
    shown = xml(propfind(env, path, "<c:max-instances/>")).find(f".//{CAL}max-instances")
    assert shown is not None and shown.text == str(MAX_OBJECT_INSTANCES)


@pytest.mark.parametrize("rule, extra, allowed", [
    (f"FREQ=DAILY;COUNT={MAX_OBJECT_INSTANCES}", "", True),
    (f"FREQ=DAILY;COUNT={MAX_OBJECT_INSTANCES + 1}", "", False),
    # Excluded instances are not generated.
    (f"FREQ=DAILY;COUNT={MAX_OBJECT_INSTANCES + 2}", "EXDATE:20260102T090000Z,20260103T090000Z\r\n", True),
    # Added ones are.
    (f"FREQ=DAILY;COUNT={MAX_OBJECT_INSTANCES}", "RDATE:20250101T090000Z\r\n", False),
    # Open-ended series count up to the horizon (ical_max_date_time, 2100): about 3900 weeks.
    ("FREQ=WEEKLY", "", False),
    ("FREQ=YEARLY", "", True),
    ("FREQ=SECONDLY", "", False),
    ("FREQ=MONTHLY;UNTIL=20500101T000000Z", "", True),
])
def test_a_put_generating_more_instances_than_allowed_is_refused(env, rule, extra, allowed):
    path = new_calendar(env, "Series")
    text = calendar(vevent("series", f"DTSTART:20260101T090000Z\r\nDTEND:20260101T100000Z\r\nRRULE:{rule}\r\n{extra}"))
    r = put(env, f"{path}series.ics", text)
    if allowed:
        assert r.status_code == 201, r.text
        return
    assert r.status_code == 403, r.text
    assert ET.fromstring(r.content).find(f"{CAL}max-instances") is not None, r.text
    assert env.request("GET", f"{path}series.ics").status_code == 404


def test_a_series_in_its_own_time_zone_is_counted_too(env):
    path = new_calendar(env, "Zoned")
    zone = ("BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
            "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n"
            "END:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\n"
            "TZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n")
    daily = "DTSTART;TZID=Europe/Berlin:20260101T090000\r\nDTEND;TZID=Europe/Berlin:20260101T100000\r\nRRULE:FREQ=DAILY\r\n"
    assert put(env, f"{path}daily.ics", calendar(zone, vevent("daily", daily))).status_code == 403
    yearly = daily.replace("FREQ=DAILY", "FREQ=YEARLY")  # 75 instances up to 2100
    assert put(env, f"{path}yearly.ics", calendar(zone, vevent("yearly", yearly))).status_code == 201
    floating = "DTSTART:20260101T090000\r\nDTEND:20260101T100000\r\nRRULE:FREQ=HOURLY\r\n"
    assert put(env, f"{path}floating.ics", calendar(vevent("floating", floating))).status_code == 403
    all_day = "DTSTART;VALUE=DATE:20260101\r\nRRULE:FREQ=DAILY;COUNT=400\r\n"
    assert put(env, f"{path}all-day.ics", calendar(vevent("all-day", all_day))).status_code == 201


def test_a_whole_calendar_put_is_held_to_the_same_limit(env):
    weekly = vevent("weekly", "DTSTART:20260101T090000Z\r\nDTEND:20260101T100000Z\r\nRRULE:FREQ=WEEKLY\r\n")
    yearly = vevent("yearly", "DTSTART:20260101T090000Z\r\nDTEND:20260101T100000Z\r\nRRULE:FREQ=YEARLY\r\n")
    r = put(env, "/ical/demo/Whole", calendar(yearly, weekly))
    assert r.status_code == 403, r.text
    assert ET.fromstring(r.content).find(f"{CAL}max-instances") is not None, r.text
    assert env.request("GET", "/ical/demo/Whole").status_code == 404
    assert put(env, "/ical/demo/Whole", calendar(yearly)).status_code == 201


# -- limit-freebusy-set (RFC 4791 §9.6.7)

FREEBUSY = ("BEGIN:VFREEBUSY\r\nUID:fb-1\r\nDTSTAMP:20260101T000000Z\r\n"
            "DTSTART:20261201T000000Z\r\nDTEND:20261231T000000Z\r\n"
            "FREEBUSY:20261201T080000Z/PT1H,20261203T080000Z/PT1H\r\n"
            "FREEBUSY;FBTYPE=BUSY-TENTATIVE:20261210T080000Z/20261210T090000Z\r\n"
            "END:VFREEBUSY\r\n")


def test_limit_freebusy_set_keeps_only_the_periods_in_its_range():
    """The cut itself, on an object with a VFREEBUSY as a client may send one."""
    event = vevent("fb-1", "DTSTART:20261202T090000Z\r\nDTEND:20261202T100000Z\r\n")
    text = calendar(event, FREEBUSY)
    limited = recurrence.limited_freebusy_text(text, utc("20261202T000000Z"), utc("20261205T000000Z"))
    periods = icalendar.Calendar.from_ical(limited).walk("VFREEBUSY")[0].get("FREEBUSY")
    periods = periods if isinstance(periods, list) else [periods]
    starts = [p.dt[0] for prop in periods for p in (prop.dts if hasattr(prop, "dts") else [prop])]
    assert starts == [datetime(2026, 12, 3, 8, tzinfo=UTC)], limited
    assert "BUSY-TENTATIVE" not in limited and "SUMMARY:fb-1" in limited
    # A range holding every period leaves the object as it was.
    assert recurrence.limited_freebusy_text(text, utc("20261101T000000Z"), utc("20270101T000000Z")) == text


def test_a_query_with_limit_freebusy_set_answers_its_events_whole(env):
    path = new_calendar(env, "Busy")
    text = calendar(vevent("busy", "DTSTART:20261202T090000Z\r\nDTEND:20261202T100000Z\r\n"))
    assert put(env, f"{path}busy.ics", text).status_code == 201
    limited = ('<c:calendar-data><c:limit-freebusy-set start="20261203T000000Z" end="20261205T000000Z"/>'
               '</c:calendar-data>')
    r = query(env, path, "20261201T000000Z", "20261231T000000Z", limited)
    answered = xml(r).find(f".//{CAL}calendar-data").text
    assert sorted(answered.replace("\r\n", "\n").split("\n")) == sorted(text.replace("\r\n", "\n").split("\n"))


# -- objects without length at the start of a range (RFC 4791 §9.9)

ZERO_LENGTH = {
    "same-start-end": "DTSTART:20261201T100000Z\r\nDTEND:20261201T100000Z\r\n",
    "start-only": "DTSTART:20261201T100000Z\r\n",
    "zero-duration": "DTSTART:20261201T100000Z\r\nDURATION:PT0S\r\n",
    "daily-same-start-end": "DTSTART:20261101T100000Z\r\nDTEND:20261101T100000Z\r\nRRULE:FREQ=DAILY;COUNT=100\r\n",
    "daily-start-only": "DTSTART:20261101T100000Z\r\nRRULE:FREQ=DAILY;COUNT=60\r\n",
    "one-hour": "DTSTART:20261201T090000Z\r\nDTEND:20261201T100000Z\r\n",
}
RANGES = [
    ("20261201T100000Z", "20261201T110000Z"),  # starts exactly where they are
    ("20261201T090000Z", "20261201T100000Z"),  # ends exactly where they are
    ("20261201T095959Z", "20261201T100001Z"),
    ("20261201T100001Z", "20261201T110000Z"),
]


@pytest.fixture(scope="module")
def zero_length(env):
    path = new_calendar(env, "Instants")
    texts = {}
    for uid, lines in ZERO_LENGTH.items():
        texts[uid] = calendar(vevent(uid, lines))
        assert put(env, f"{path}{uid}.ics", texts[uid]).status_code == 201
    return path, texts


@pytest.mark.database_engines("sqlite", "mariadb")
@pytest.mark.parametrize("start, end", RANGES)
def test_objects_without_length_match_a_range_they_start_in(env, zero_length, start, end):
    path, texts = zero_length
    found = matched(query(env, path, start, end, ""))
    library = {uid for uid, text in texts.items()
               if recurring_ical_events.of(icalendar.Calendar.from_ical(text)).between(utc(start), utc(end))}
    assert found == library, (found, library)
    # RFC 4791 §9.9: an instant at t is in [start, end) when start <= t < end.
    at_ten = {uid for uid in ZERO_LENGTH if uid != "one-hour"}
    if start == "20261201T100000Z" or start == "20261201T095959Z":
        assert at_ten <= found
    else:
        assert not at_ten & found
    assert ("one-hour" in found) == (start < "20261201T100000Z")
