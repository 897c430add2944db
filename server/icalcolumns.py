"""Query columns of an iCalendar object (one VEVENT, VTODO or VJOURNAL series)."""
from __future__ import annotations

import hashlib
from datetime import date, datetime, time, timedelta, timezone
from itertools import islice
from typing import Any

from dateutil.rrule import rrulestr
from icalendar import Calendar

from shared.errors import BadRequest

# Item classes by component, as Kopano names them (a journal entry is an IPM.Activity).
_CLASSES = {"VEVENT": "IPM.Appointment", "VTODO": "IPM.Task", "VJOURNAL": "IPM.Activity"}
_COMPONENTS = {v: k for k, v in _CLASSES.items()}


def component_of(item_class: str) -> str:
    """The iCalendar component an item class holds."""
    return _COMPONENTS.get(item_class, "VEVENT")
# Expanding a rule further than this is not worth it: the series is then
# treated as open-ended, which only makes range queries include it more often.
MAX_EXPAND = 20000
_SUBDAILY = {"SECONDLY", "MINUTELY", "HOURLY"}


def etag_for(text: str) -> str:
    """Strong entity tag of the stored text."""
    return '"%s"' % hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _as_utc(value: Any) -> datetime | None:
    """Epoch-able UTC datetime; dates and floating times count as UTC."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=timezone.utc)
    return None


def _prop(comp: Any, name: str) -> Any:
    prop = comp.get(name)
    if prop is None:
        return None
    if isinstance(prop, list):
        prop = prop[0]
    return getattr(prop, "dt", None)


def _duration(comp: Any, start: Any) -> timedelta:
    end = _prop(comp, "DTEND") if comp.name == "VEVENT" else _prop(comp, "DUE")
    if end is not None and start is not None:
        s, e = _as_utc(start), _as_utc(end)
        if s and e and e >= s:
            return e - s
    dur = _prop(comp, "DURATION")
    if isinstance(dur, timedelta) and dur >= timedelta(0):
        return dur
    # RFC 5545 3.6.1: an all-day event without end lasts one day.
    if isinstance(start, date) and not isinstance(start, datetime):
        return timedelta(days=1)
    return timedelta(0)


def _epoch(dt: datetime | None) -> int | None:
    return None if dt is None else int(dt.timestamp())


def _last_occurrence(comp: Any, start: Any) -> datetime | None:
    """Start of the last occurrence of the RRULE, or None if the series never ends."""
    prop = comp.get("RRULE")
    if isinstance(prop, list):
        prop = prop[0]
    rule = dict(prop)
    count = rule.get("COUNT")
    until = rule.get("UNTIL")
    if not count and not until:
        return None
    freq = (rule.get("FREQ") or ["DAILY"])[0]
    if until and not count:
        until_dt = _as_utc(until[0])
        if str(freq).upper() in _SUBDAILY:
            return until_dt  # a bound, without expanding every instance
    # dateutil wants DTSTART and UNTIL of the same kind; compute in naive UTC.
    dtstart = _as_utc(start).replace(tzinfo=None)
    parts = [p for p in prop.to_ical().decode().split(";") if not p.upper().startswith("UNTIL=")]
    rr = rrulestr(";".join(parts), dtstart=dtstart, ignoretz=True)
    if until:
        rr = rr.replace(until=_as_utc(until[0]).replace(tzinfo=None))
    last = None
    n = 0
    for n, last in enumerate(islice(iter(rr), MAX_EXPAND + 1), 1):
        pass
    if n > MAX_EXPAND:
        raise OverflowError("too many occurrences")
    if last is None:
        return _as_utc(start)
    return last.replace(tzinfo=timezone.utc)


def calendar_columns(text: str) -> dict:
    """icalUid, itemClass, summary, dtstart, dtend (None: open-ended), recurring, etag.

    BadRequest unless `text` is one VCALENDAR holding VEVENTs, VTODOs or VJOURNALs that share one UID.
    """
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("empty calendar object")
    try:
        # Some exporters prepend a byte order mark.
        cal = Calendar.from_ical(text.lstrip("\ufeff"))
    except Exception as err:  # icalendar raises ValueError and friends on bad input
        raise BadRequest(f"invalid iCalendar: {err}") from None
    if isinstance(cal, list) or getattr(cal, "name", None) != "VCALENDAR":
        raise BadRequest("not a single VCALENDAR")
    comps = [c for c in cal.subcomponents if c.name in _CLASSES]
    if not comps:
        raise BadRequest("no VEVENT, VTODO or VJOURNAL")
    uids = {str(c.get("UID")) for c in comps if c.get("UID") is not None}
    if len(uids) != 1 or any(c.get("UID") is None for c in comps):
        raise BadRequest("a calendar object needs exactly one UID")
    kinds = {c.name for c in comps}
    if len(kinds) != 1:
        raise BadRequest("mixed component types")
    masters = [c for c in comps if c.get("RECURRENCE-ID") is None]
    master = masters[0] if masters else comps[0]
    try:
        return _columns(text, comps, master, uids.pop())
    except BadRequest:
        raise
    except Exception as err:  # dates and rules icalendar accepted but cannot evaluate
        raise BadRequest(f"invalid iCalendar dates: {err}") from None


def _columns(text: str, comps: list, master: Any, uid: str) -> dict:
    recurring = any(c.get("RRULE") is not None or c.get("RDATE") is not None for c in comps)
    starts: list[datetime] = []
    ends: list[datetime] = []
    open_ended = False
    for comp in comps:
        start = _prop(comp, "DTSTART")
        if start is None and comp.name == "VTODO":
            start = _prop(comp, "DUE")
        if start is None:
            continue
        s = _as_utc(start)
        if s is None:
            raise BadRequest("bad DTSTART")
        length = _duration(comp, start)
        starts.append(s)
        ends.append(s + length)
        if comp.get("RRULE") is not None and comp.get("RECURRENCE-ID") is None:
            try:
                last = _last_occurrence(comp, start)
            except OverflowError:
                last = None
            if last is None:
                open_ended = True
            else:
                ends.append(last + length)
        rdates = comp.get("RDATE")
        for rd in (rdates if isinstance(rdates, list) else [rdates] if rdates is not None else []):
            for period in getattr(rd, "dts", []):
                value = period.dt
                if isinstance(value, tuple):  # PERIOD: (start, end or duration)
                    p_start, p_end = value
                    p_start = _as_utc(p_start)
                    p_end = p_start + p_end if isinstance(p_end, timedelta) else _as_utc(p_end)
                    if p_start:
                        starts.append(p_start)
                    if p_end:
                        ends.append(p_end)
                else:
                    r = _as_utc(value)
                    if r:
                        starts.append(r)
                        ends.append(r + length)
    summary = master.get("SUMMARY")
    return {
        "icalUid": uid,
        "itemClass": _CLASSES[master.name],
        "summary": None if summary is None else str(summary),
        "dtstart": _epoch(min(starts)) if starts else None,
        "dtend": None if open_ended or not ends else _epoch(max(ends)),
        "recurring": 1 if recurring else 0,
        "etag": etag_for(text),
    }
