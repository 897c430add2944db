"""Occurrences of a recurring calendar object, for the store's occurrence index.

Expanded with python-recurring-ical-events: it applies RRULE, RDATE, EXDATE and
RECURRENCE-ID overrides together, in the series' own time zone (so a weekly 09:00
stays 09:00 across DST), which is what time-range queries must agree with.
"""
from __future__ import annotations

import time
from datetime import date, datetime, timedelta, timezone
from typing import Any

import recurring_ical_events
from icalendar import Calendar

from shared.budget import BudgetExhausted, check as check_budget

# Occurrences are indexed from the series start up to this far past now, and at most
# this many per object; queries reaching further fall back to expanding the object.
HORIZON_SECONDS = 3 * 366 * 86400
MAX_OCCURRENCES = 3000
COMPLETE = 2**62  # "indexed to the end of the series"
EARLIEST = datetime(1900, 1, 1, tzinfo=timezone.utc)
_SUBDAILY = {"SECONDLY", "MINUTELY", "HOURLY"}
FIRST_WINDOW = timedelta(days=32)


def _utc(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            return value.replace(tzinfo=timezone.utc)  # floating: as UTC, like the range columns
        return value.astimezone(timezone.utc)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    return None


def _end(component: Any, start: Any, start_utc: datetime) -> datetime:
    for name in ("DTEND", "DUE"):
        prop = component.get(name)
        end = _utc(getattr(prop, "dt", None)) if prop is not None else None
        if end is not None and end >= start_utc:
            return end
    duration = getattr(component.get("DURATION"), "dt", None)
    if isinstance(duration, timedelta) and duration >= timedelta(0):
        return start_utc + duration
    if isinstance(start, date) and not isinstance(start, datetime):
        return start_utc + timedelta(days=1)  # RFC 5545 3.6.1
    return start_utc


def occurrence_index(text: str, kind: str = "VEVENT", series_end: int | None = None,
                     now: float | None = None) -> tuple[list[tuple[int, int]], int | None]:
    """([(start, end)] in epoch seconds, indexed-until) for a recurring object whose last
    occurrence ends at `series_end` (None: never; the store's dtend column).

    Every occurrence starting before indexed-until is listed (COMPLETE: all of them);
    None means the object could not be expanded and must not be answered from the index.
    """
    horizon = int(now if now is not None else time.time()) + HORIZON_SECONDS
    try:
        calendar = Calendar.from_ical(text.lstrip("\ufeff"))
        if any(str(freq).upper() in _SUBDAILY for comp in calendar.walk(kind)
               for rule in _rules(comp) for freq in rule.get("FREQ", [])):
            return [], None  # thousands of occurrences a day: not worth indexing
        found = _first_occurrences(calendar, kind, datetime.fromtimestamp(horizon, timezone.utc))
        rows: list[tuple[int, int]] = []
        for occurrence in found:
            start = getattr(occurrence.get("DTSTART") or occurrence.get("DUE"), "dt", None)
            start_utc = _utc(start)
            if start_utc is not None:
                rows.append((int(start_utc.timestamp()), int(_end(occurrence, start, start_utc).timestamp())))
        rows.sort()
        # A day of slack: the series end is computed in UTC, occurrences in local time.
        until = COMPLETE if series_end is not None and series_end + 86400 < horizon else horizon
        if len(rows) > MAX_OCCURRENCES:
            until, rows = rows[MAX_OCCURRENCES][0], rows[:MAX_OCCURRENCES]
        return rows, until
    except BudgetExhausted:
        raise
    except Exception:  # a rule the library cannot evaluate: leave the object to full expansion
        return [], None


def _first_occurrences(calendar: Any, kind: str, horizon: datetime) -> list[Any]:
    """The occurrences up to `horizon`, or (when there are more than MAX_OCCURRENCES) at
    least the first MAX_OCCURRENCES + 1: expanded over windows from the series start that
    grow fourfold, so that a series starting centuries ago is not expanded whole (and the
    work budget is checked between windows)."""
    starts = [_utc(getattr(comp.get("DTSTART") or comp.get("DUE"), "dt", None)) for comp in calendar.walk(kind)]
    first = min((start for start in starts if start is not None), default=EARLIEST)
    query = recurring_ical_events.of(calendar, components=[kind])
    span = FIRST_WINDOW
    while True:
        check_budget()
        window_end = min(horizon, first + span)
        found = query.between(EARLIEST, window_end)
        if len(found) > MAX_OCCURRENCES or window_end >= horizon:
            return found
        span *= 4


def _rules(component: Any) -> list[Any]:
    rules = component.get("RRULE")
    return rules if isinstance(rules, list) else [rules] if rules is not None else []
