"""The line reader for simple calendar objects gives exactly what the full parser gives,
or leaves the object to it."""
from __future__ import annotations

import pytest

from server.icalcolumns import calendar_columns, etag_for
from server.icalsimple import simple_columns

HEAD = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n"


def obj(body: str, kind: str = "VEVENT") -> str:
    return HEAD + f"BEGIN:{kind}\r\n{body}END:{kind}\r\nEND:VCALENDAR\r\n"


READ = [
    obj("UID:a\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20261201T100000Z\r\nDTEND:20261201T110000Z\r\nSUMMARY:x\r\n"),
    obj("UID:a\r\nDTSTART;VALUE=DATE:20261201\r\nSUMMARY:all day\r\n"),
    obj("UID:a\r\nDTSTART;VALUE=DATE:20261201\r\nDTEND;VALUE=DATE:20261203\r\n"),
    obj("UID:a\r\nDTSTART:20261201T100000\r\nDTEND:20261201T090000\r\n"),
    obj("UID:a\r\nDTSTART;VALUE=DATE:20261201\r\nDTEND;VALUE=DATE:20261130\r\n"),
    obj("UID:a\r\nSUMMARY;LANGUAGE=en:hello: world\r\n"),
    obj("UID:t\r\nDUE:20261201T100000Z\r\n", "VTODO"),
    obj("UID:t\r\nDTSTART:20261201T100000Z\r\nDUE:20261202T100000Z\r\n", "VTODO"),
    obj("UID:t\r\nSUMMARY:no dates\r\n", "VTODO"),
    obj("UID:a\r\nDTSTART:20261201T100000Z\r\nBEGIN:VALARM\r\nTRIGGER:-PT15M\r\nACTION:DISPLAY\r\nEND:VALARM\r\n"),
    obj("UID:a\r\nDESCRIPTION:long\r\n line folded\r\nDTSTART:20261201T100000Z\r\n"),
    obj('UID:a\r\nATTENDEE;CN="Doe, J";ROLE=REQ-PARTICIPANT:mailto:j@x\r\nDTSTART:20261201T100000Z\r\n'),
    "\ufeff" + obj("UID:a\r\nDTSTART:20261201T100000Z\r\n"),
    obj("UID:a\nDTSTART:20261201T100000Z\nSUMMARY:bare newlines\n"),
]
LEFT = [
    obj("UID:a\r\nDTSTART:20261201T100000Z\r\nRRULE:FREQ=WEEKLY\r\n"),
    obj("UID:a\r\nDTSTART;TZID=Europe/Amsterdam:20261201T100000\r\n"),
    obj("UID:a\r\nDTSTART:20261201T100000Z\r\nDURATION:PT1H\r\n"),
    obj("UID:a\r\nSUMMARY:a\\, b\r\nDTSTART:20261201T100000Z\r\n"),
    obj("UID:a\r\nDTSTART:20261301T100000Z\r\n"),
    obj("UID:a\r\nDTSTART:20261201T100000Z\r\nDTEND:notadate\r\n"),
    obj("UID:a\r\nbad line\r\n"),
    obj("SUMMARY:no uid\r\n"),
    HEAD + "BEGIN:VEVENT\r\nUID:a\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:a\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    HEAD + "BEGIN:VJOURNAL\r\nUID:a\r\nEND:VJOURNAL\r\nEND:VCALENDAR\r\n",
    "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\nEND:VEVENT\r\n",
]


@pytest.mark.parametrize("text", READ)
def test_read_like_the_full_parser(text):
    assert simple_columns(text, etag_for(text)) == calendar_columns(text)


@pytest.mark.parametrize("text", LEFT)
def test_left_to_the_full_parser(text):
    assert simple_columns(text, etag_for(text)) is None
