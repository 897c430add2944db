"""Calendar columns from iCalendar text."""
from __future__ import annotations

import glob
import os
import warnings
from datetime import datetime, timezone

import icalendar
import pytest

from server.icalcolumns import calendar_columns
from shared.errors import BadRequest


def ts(*args) -> int:
    return int(datetime(*args, tzinfo=timezone.utc).timestamp())


def vcal(*components: str, extra: str = "") -> str:
    body = "".join(components)
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{extra}{body}END:VCALENDAR\r\n"


def event(uid="e1", props="DTSTART:20240105T100000Z\r\nDTEND:20240105T110000Z\r\n"):
    return f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\nSUMMARY:Talk\r\n{props}END:VEVENT\r\n"


def test_simple_event():
    text = vcal(event())
    c = calendar_columns(text)
    assert c == {"icalUid": "e1", "itemClass": "IPM.Appointment", "summary": "Talk",
                 "dtstart": ts(2024, 1, 5, 10), "dtend": ts(2024, 1, 5, 11), "recurring": 0,
                 "etag": c["etag"]}
    assert c["etag"].startswith('"') and c["etag"].endswith('"') and len(c["etag"]) > 10
    assert calendar_columns(text)["etag"] == c["etag"]
    assert calendar_columns(text.replace("Talk", "Talk2"))["etag"] != c["etag"]


def test_all_day_and_floating_are_utc():
    c = calendar_columns(vcal(event(props="DTSTART;VALUE=DATE:20240301\r\n")))
    assert (c["dtstart"], c["dtend"]) == (ts(2024, 3, 1), ts(2024, 3, 2))
    c = calendar_columns(vcal(event(props="DTSTART:20240301T080000\r\nDURATION:PT90M\r\n")))
    assert (c["dtstart"], c["dtend"]) == (ts(2024, 3, 1, 8), ts(2024, 3, 1, 9, 30))


def test_timezone_is_converted():
    tz = ("BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
          "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n"
          "END:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\n"
          "TZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n")
    c = calendar_columns(vcal(event(props="DTSTART;TZID=Europe/Berlin:20240701T120000\r\n"
                                          "DTEND;TZID=Europe/Berlin:20240701T130000\r\n"), extra=tz))
    assert (c["dtstart"], c["dtend"]) == (ts(2024, 7, 1, 10), ts(2024, 7, 1, 11))


def test_recurrence_bounds():
    base = "DTSTART:20240105T100000Z\r\nDTEND:20240105T110000Z\r\n"
    c = calendar_columns(vcal(event(props=base + "RRULE:FREQ=DAILY;COUNT=3\r\n")))
    assert (c["dtstart"], c["dtend"], c["recurring"]) == (ts(2024, 1, 5, 10), ts(2024, 1, 7, 11), 1)
    c = calendar_columns(vcal(event(props=base + "RRULE:FREQ=WEEKLY;UNTIL=20240201T000000Z\r\n")))
    assert c["dtend"] == ts(2024, 1, 26, 11)
    c = calendar_columns(vcal(event(props=base + "RRULE:FREQ=MONTHLY\r\n")))
    assert (c["dtstart"], c["dtend"], c["recurring"]) == (ts(2024, 1, 5, 10), None, 1)
    c = calendar_columns(vcal(event(props=base + "RRULE:FREQ=SECONDLY;UNTIL=20340101T000000Z\r\n")))
    assert c["dtend"] is not None and c["dtend"] >= ts(2034, 1, 1)
    c = calendar_columns(vcal(event(props="DTSTART;VALUE=DATE:20240105\r\nRRULE:FREQ=YEARLY;UNTIL=20260105\r\n")))
    assert c["dtend"] == ts(2026, 1, 6)
    c = calendar_columns(vcal(event(props=base + "RDATE:20240301T100000Z\r\n")))
    assert (c["dtend"], c["recurring"]) == (ts(2024, 3, 1, 11), 1)


def test_override_extends_series():
    base = "DTSTART:20240105T100000Z\r\nDTEND:20240105T110000Z\r\nRRULE:FREQ=DAILY;COUNT=2\r\n"
    moved = ("RECURRENCE-ID:20240106T100000Z\r\nDTSTART:20240110T100000Z\r\nDTEND:20240110T120000Z\r\n")
    c = calendar_columns(vcal(event(props=base), event(props=moved)))
    assert (c["dtstart"], c["dtend"], c["summary"]) == (ts(2024, 1, 5, 10), ts(2024, 1, 10, 12), "Talk")


def test_task():
    todo = ("BEGIN:VTODO\r\nUID:t1\r\nDTSTAMP:20240101T000000Z\r\nSUMMARY:Do it\r\n"
            "DUE:20240110T170000Z\r\nEND:VTODO\r\n")
    c = calendar_columns(vcal(todo))
    assert (c["itemClass"], c["summary"], c["dtstart"], c["dtend"]) == \
        ("IPM.Task", "Do it", ts(2024, 1, 10, 17), ts(2024, 1, 10, 17))
    undated = calendar_columns(vcal(todo.replace("DUE:20240110T170000Z\r\n", "")))
    assert (undated["dtstart"], undated["dtend"]) == (None, None)


def test_journal():
    entry = ("BEGIN:VJOURNAL\r\nUID:j1\r\nDTSTAMP:20240101T000000Z\r\nSUMMARY:Minutes\r\n"
             "DTSTART;VALUE=DATE:20240110\r\nEND:VJOURNAL\r\n")
    c = calendar_columns(vcal(entry))
    assert (c["itemClass"], c["summary"], c["dtstart"], c["dtend"]) == \
        ("IPM.Activity", "Minutes", ts(2024, 1, 10), ts(2024, 1, 11))
    undated = calendar_columns(vcal(entry.replace("DTSTART;VALUE=DATE:20240110\r\n", "")))
    assert (undated["dtstart"], undated["dtend"]) == (None, None)


@pytest.mark.parametrize("text", [
    "", "hello", "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n",
    vcal(event(uid="a"), event(uid="b")),
    vcal(event().replace("UID:e1\r\n", "")),
    vcal(event(), "BEGIN:VJOURNAL\r\nUID:e1\r\nDTSTAMP:20240101T000000Z\r\nEND:VJOURNAL\r\n"),
    vcal(event()) + vcal(event()),
    vcal(event(props="DTSTART:notadate\r\n")),
    event(),
    vcal(event(), "BEGIN:VTODO\r\nUID:e1\r\nDTSTAMP:20240101T000000Z\r\nEND:VTODO\r\n"),
])
def test_invalid_objects_are_bad_requests(text):
    with pytest.raises(BadRequest):
        calendar_columns(text)


def test_icalendar_test_calendars():
    """Every calendar shipped with the icalendar package yields columns or BadRequest."""
    files = sorted(glob.glob(os.path.join(os.path.dirname(icalendar.__file__), "tests", "calendars", "*.ics")))
    assert len(files) > 50
    ok = bad = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in files:
            with open(path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            try:
                c = calendar_columns(text)
            except BadRequest:
                bad += 1
                continue
            ok += 1
            assert c["itemClass"] in ("IPM.Appointment", "IPM.Task"), path
            assert c["icalUid"] and c["recurring"] in (0, 1), path
            if c["dtstart"] is not None and c["dtend"] is not None:
                assert c["dtend"] >= c["dtstart"], path
    assert ok > 30 and bad > 10
