"""Query columns of the most common calendar object read straight from its lines: one
VEVENT or VTODO, not recurring, with UTC, floating or all-day dates and no time zones.

A whole-calendar import sends thousands of these; building an icalendar tree for each
costs ten times more. Anything else (or anything unexpected) answers None, and the
full parser in server/icalcolumns.py decides, so both always agree.
"""
from __future__ import annotations

import re
from calendar import timegm
from datetime import datetime
from typing import Any

_CLASSES = {"VEVENT": "IPM.Appointment", "VTODO": "IPM.Task"}
_LINE = re.compile(r"([A-Za-z0-9-]+)((?:;[A-Za-z0-9-]+=(?:\"[^\"]*\"|[^\";:,]*)(?:,(?:\"[^\"]*\"|[^\";:,]*))*)*):(.*)\Z",
                   re.S)
_UTC = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z?\Z")
_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})\Z")
# Make the object recurring, zoned or otherwise more than this reader knows.
_HARD = frozenset({"RRULE", "RDATE", "EXRULE", "EXDATE", "RECURRENCE-ID", "DURATION"})
# Calendar-level properties whose values the full parser takes as plain text; any other
# (a DTEND or RDATE beside the components, a VALUE parameter) it types and may refuse.
_CALENDAR_TEXT = frozenset({"VERSION", "PRODID", "CALSCALE", "METHOD"})
_DAY = 86400
# Inside a VALARM the full parser reads every value and refuses the object when one does
# not parse, so only lines that cannot fail are read here: text, and a TRIGGER that is a
# plain duration or a UTC time.
_ALARM_TEXT = frozenset({"ACTION", "DESCRIPTION", "SUMMARY", "UID"})
_DURATION = re.compile(r"[+-]?P(?:\d+W|(?:\d+D)?(?:T(?=\d)(?:\d+H)?(?:\d+M)?(?:\d+S)?)?)\Z")


def _is_date(*fields: int) -> bool:
    """Whether the fields make a real date (and time): the full parser builds a datetime."""
    try:
        datetime(*fields)
    except (ValueError, OverflowError):
        return False
    return True


def _epoch(params: str, value: str) -> tuple[int, bool] | None:
    """(epoch seconds, is a date) of a DATE or DATE-TIME value without TZID; None if unsure."""
    kind = None
    for param in params.split(";")[1:]:
        name, _, pvalue = param.partition("=")
        if name.upper() != "VALUE":
            return None  # TZID and anything else: the full parser
        kind = pvalue.upper()
    value = value.strip()
    if kind in (None, "DATE-TIME"):
        m = _UTC.match(value)
        if m is None:
            return None
        y, mo, d, h, mi, s = (int(g) for g in m.groups())
        if not _is_date(y, mo, d, h, mi, s):
            return None
        return timegm((y, mo, d, h, mi, s)), False
    if kind == "DATE":
        m = _DATE.match(value)
        if m is None:
            return None
        y, mo, d = (int(g) for g in m.groups())
        if not _is_date(y, mo, d):
            return None
        return timegm((y, mo, d, 0, 0, 0)), True
    return None


def _alarm_line_reads(name: str, params: str, value: str) -> bool:
    """Whether the full parser surely reads this VALARM line (see _ALARM_TEXT)."""
    if name in _ALARM_TEXT or name.startswith("X-"):
        return True
    if name != "TRIGGER":
        return False
    kind = re.search(r";VALUE=([^;:]*)", params, re.I)
    if kind is None or kind.group(1).upper() == "DURATION":
        return value.isascii() and bool(_DURATION.match(value)) and value not in ("P", "+P", "-P")
    time = _UTC.match(value) if value.isascii() and value.endswith("Z") else None
    return kind.group(1).upper() == "DATE-TIME" and time is not None \
        and _is_date(*(int(g) for g in time.groups()))


def simple_columns(text: str, etag: str) -> dict[str, Any] | None:
    """The columns calendar_columns gives for `text`, or None when it must decide."""
    lines: list[str] = []
    for raw in text.lstrip("\ufeff").replace("\r\n", "\n").split("\n"):
        if raw[:1] in (" ", "\t") and lines:
            lines[-1] += raw[1:]
        elif raw:
            lines.append(raw)
    if len(lines) < 4 or lines[0].upper() != "BEGIN:VCALENDAR" or lines[-1].upper() != "END:VCALENDAR":
        return None
    stack: list[str] = []
    kind = None
    calendars = 0
    props: dict[str, tuple[str, str]] = {}
    for line in lines:
        m = _LINE.match(line)
        if m is None or "\r" in line:
            return None
        name, params, value = m.group(1).upper(), m.group(2), m.group(3)
        if name == "BEGIN":
            comp = value.strip().upper()
            if not stack:
                calendars += 1
                if calendars > 1:
                    return None  # a second VCALENDAR in one text: the full parser refuses it
            if len(stack) == 1:
                if comp not in _CLASSES or kind is not None:
                    return None  # a time zone, a second component, a journal: the full parser
                kind = comp
            elif len(stack) == 2 and comp != "VALARM":
                return None
            elif len(stack) > 2:
                return None
            stack.append(comp)
            continue
        if name == "END":
            if not stack or stack.pop() != value.strip().upper():
                return None
            continue
        if not stack:
            return None
        if len(stack) == 1 and (params or not (name in _CALENDAR_TEXT or name.startswith("X-"))):
            return None
        if len(stack) == 3 and not _alarm_line_reads(name, params, value):
            return None
        if len(stack) == 2:
            if name in _HARD or name in props and name in ("UID", "DTSTART", "DTEND", "DUE", "SUMMARY"):
                return None
            props[name] = (params, value)
    if stack or kind is None or "UID" not in props:
        return None
    uid = props["UID"][1]
    summary = props.get("SUMMARY", (None, None))[1]
    if "\\" in uid or (summary is not None and "\\" in summary) or props["UID"][0]:
        return None  # escapes: the full parser unescapes them
    start = props.get("DTSTART") or (props.get("DUE") if kind == "VTODO" else None)
    dtstart = dtend = None
    if start is not None:
        began = _epoch(*start)
        if began is None:
            return None
        end_prop = props.get("DTEND" if kind == "VEVENT" else "DUE")
        length = 0
        if end_prop is not None:
            ended = _epoch(*end_prop)
            if ended is None:
                return None
            if ended[0] >= began[0]:
                length = ended[0] - began[0]
            elif began[1]:
                length = _DAY
        elif began[1]:
            length = _DAY  # RFC 5545 3.6.1: an all-day event without end lasts one day
        dtstart, dtend = began[0], began[0] + length
    return {"icalUid": uid, "itemClass": _CLASSES[kind], "summary": summary, "dtstart": dtstart,
            "dtend": dtend, "recurring": 0, "etag": etag}
