"""Instances of a calendar object in a time range: what `expand`, `limit-recurrence-set`,
time-range filters on recurring objects and free-busy answer (RFC 4791 §9.6.5, §9.6.6, §9.9,
§7.10).

One computation for all of them: python-recurring-ical-events, which applies RRULE, RDATE,
EXDATE and RECURRENCE-ID overrides (with or without their master) together, in each series'
own time zone, and which the store's occurrence index (server/occurrences.py) uses too. It
works from the object's text, never from a parsed object shared with another property of the
same answer. Floating times are read as UTC, as the store's range columns read them.

Work is bounded twice: every rule walk counts its instances (radicale_glue bounds dateutil's
iteration by `ical_max_instances` and the request's time budget), and the instances one
request answers with are counted against `ical_max_query_instances` (RequestContext).
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import recurring_ical_events
from icalendar import Calendar, vPeriod

from gateways.caldav import context
from gateways.caldav.xmlbody import xml_root

UTC = timezone.utc
CALDAV = "urn:ietf:params:xml:ns:caldav"
RECURRENCE_PROPERTIES = ("RRULE", "RDATE", "EXDATE", "EXRULE")
KINDS = ("VEVENT", "VTODO", "VJOURNAL")
# Every datetime an answer may name lies between these (Radicale's DATETIME_MIN/MAX are
# outside what date arithmetic in the library can take).
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)


def parse(text: str) -> Any:
    return Calendar.from_ical(text.lstrip("\ufeff"))


def is_recurring(calendar: Any, kind: str) -> bool:
    """Whether any `kind` component of the object recurs or overrides an instance."""
    return any(name in component for component in calendar.walk(kind)
               for name in ("RRULE", "RDATE", "RECURRENCE-ID"))


def _clamp(value: datetime) -> datetime:
    value = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return min(max(value, EARLIEST), LATEST)


def _occurrences(calendar: Any, kind: str, start: datetime, end: datetime, answered: bool = True) -> list[Any]:
    """The library's occurrences (light: a start, an end and the component they come from)
    of `kind` overlapping [start, end); those that go into the answer (`answered`) are
    counted against the request's limit before any is turned into a component. A series
    the library cannot evaluate contributes none (one broken object never breaks the answer
    for a whole calendar)."""
    query = recurring_ical_events.of(calendar, components=[kind], skip_bad_series=True)
    # between() would copy a component for every occurrence before we could count them.
    found = query._occurrences_between(_clamp(start), _clamp(end))
    ctx = context.bound()
    if ctx is not None and answered:
        ctx.count_instances(len(found))
    return found


def instances(calendar: Any, kind: str, start: datetime, end: datetime) -> list[Any]:
    """The `kind` instances of an object overlapping [start, end), as components, in start order."""
    found = [o.as_component(False) for o in _occurrences(calendar, kind, start, end)]
    return sorted(found, key=lambda c: _sort_key(_start_of(c)))


def occurs(calendar: Any, kind: str, start: datetime, end: datetime) -> bool:
    """Whether the object has an instance overlapping [start, end) (a filter: nothing answered)."""
    return bool(_occurrences(calendar, kind, start, end, answered=False))


def _start_of(component: Any) -> Any:
    prop = component.get("DTSTART") or component.get("DUE")
    return getattr(prop, "dt", None)


def _sort_key(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return EARLIEST


def _as_utc(value: Any) -> Any:
    """A date-time in UTC (floating ones read as UTC); a date stays a date."""
    return _sort_key(value) if isinstance(value, datetime) else value


def _as_instance(component: Any) -> Any:
    """One instance as RFC 4791 §9.6.5 wants it: date-times in UTC, RECURRENCE-ID set, no
    recurrence properties; every other property and subcomponent (alarms) kept."""
    for name in RECURRENCE_PROPERTIES:
        component.pop(name, None)
    if "RECURRENCE-ID" not in component and _start_of(component) is not None:
        component.add("RECURRENCE-ID", _start_of(component))
    for name in ("DTSTART", "DTEND", "DUE", "RECURRENCE-ID"):
        value = getattr(component.get(name), "dt", None)
        if value is not None:
            component.pop(name)
            component.add(name, _as_utc(value))
    return component


def expanded_text(text: str, kind: str, start: datetime, end: datetime,
                  filter_start: datetime | None = None, filter_end: datetime | None = None) -> tuple[str, int]:
    """(the object with its `kind` instances in [start, end) expanded, how many); ("", 0)
    when it has none there, or (with a time-range filter) none in the filter's range, which
    decides whether the resource matches at all (RFC 4791 §9.6.5 with §9.9)."""
    calendar = parse(text)
    if (filter_start is not None and filter_end is not None and (filter_start, filter_end) != (start, end)
            and not occurs(calendar, kind, filter_start, filter_end)):
        return "", 0
    found = instances(calendar, kind, start, end)
    if not found:
        return "", 0
    out = Calendar()
    for name, value in calendar.property_items(recursive=False)[1:-1]:
        out.add(name, value, encode=False)
    for component in calendar.subcomponents:
        if component.name not in KINDS and component.name != "VTIMEZONE":
            out.add_component(component)  # e.g. a VFREEBUSY or X- component beside the instances
    for component in found:
        out.add_component(_as_instance(component))
    return out.to_ical().decode("utf-8"), len(found)


def busy_periods(text: str, start: datetime, end: datetime) -> list[tuple[datetime, datetime, str]]:
    """(start, end, FBTYPE) of each busy VEVENT instance overlapping [start, end), cut to
    it (RFC 4791 §7.10: transparent and cancelled events are free)."""
    periods = []
    for component in instances(parse(text), "VEVENT", start, end):
        if str(component.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
            continue
        status = str(component.get("STATUS", "")).upper()
        if status == "CANCELLED":
            continue
        fbtype = "BUSY-TENTATIVE" if status == "TENTATIVE" else "BUSY"
        first = _sort_key(_start_of(component))
        end_prop = component.get("DTEND")
        last = _sort_key(end_prop.dt) if end_prop is not None else first
        if last == first and not isinstance(_start_of(component), datetime):
            last = first + timedelta(days=1)
        first, last = max(first, start), min(last, end)
        if first < last:
            periods.append((first, last, fbtype))
    return periods


Range = tuple[datetime, datetime]


def requested_ranges(body: bytes) -> tuple[Range | None, Range | None, Range | None]:
    """The ranges of a REPORT body's CALDAV:expand, CALDAV:limit-recurrence-set and
    CALDAV:limit-freebusy-set, each None when absent (or malformed: then Radicale judges
    the body)."""
    root = xml_root(body) if body else None
    return (_range_of(root, "expand"), _range_of(root, "limit-recurrence-set"),
            _range_of(root, "limit-freebusy-set"))


def _range_of(root: Any, name: str) -> tuple[datetime, datetime] | None:
    element = root.find(f".//{{{CALDAV}}}{name}") if root is not None else None
    if element is None:
        return None
    try:
        return (_utc_attribute(element.get("start"), EARLIEST), _utc_attribute(element.get("end"), LATEST))
    except ValueError:
        return None


def _utc_attribute(value: str | None, default: datetime) -> datetime:
    return datetime.strptime(value.upper(), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) if value else default


def limited_text(text: str, start: datetime, end: datetime) -> str:
    """The object with only the overrides that concern [start, end): those whose instance
    overlaps it, or whose original time lies in it, and those for this and future instances;
    the master and everything else kept (RFC 4791 §9.6.6)."""
    calendar = parse(text)
    kept = []
    dropped = False
    for component in calendar.subcomponents:
        recurrence_id = component.get("RECURRENCE-ID") if component.name in KINDS else None
        if recurrence_id is None or str(recurrence_id.params.get("RANGE", "")).upper() == "THISANDFUTURE":
            kept.append(component)
            continue
        original = _sort_key(recurrence_id.dt)
        first = _sort_key(_start_of(component)) if _start_of(component) is not None else original
        end_prop = component.get("DTEND") or component.get("DUE")
        duration = getattr(component.get("DURATION"), "dt", None)
        last = (_sort_key(end_prop.dt) if end_prop is not None
                else first + duration if isinstance(duration, timedelta) else first)
        if start <= original < end or (first < end and (last > start or first >= start)):
            kept.append(component)
        else:
            dropped = True
    if not dropped:
        return text
    calendar.subcomponents[:] = kept
    return calendar.to_ical().decode("utf-8")


def limited_freebusy_text(text: str, start: datetime, end: datetime) -> str:
    """The object with only the FREEBUSY periods of its VFREEBUSY components that overlap
    [start, end) (RFC 4791 §9.6.7); a FREEBUSY property left without periods is dropped.
    Every other line is kept as it was."""
    if "VFREEBUSY" not in text.upper():
        return text
    out: list[str] = []
    inside = False
    changed = False
    for line in _unfolded(text):
        upper = line.upper()
        if upper.startswith("BEGIN:VFREEBUSY"):
            inside = True
        elif upper.startswith("END:VFREEBUSY"):
            inside = False
        elif inside and (upper.startswith("FREEBUSY:") or upper.startswith("FREEBUSY;")):
            name, _, values = line.partition(":")
            kept = [v for v in values.split(",") if _period_overlaps(v, start, end)]
            changed = changed or len(kept) != len(values.split(","))
            if not kept:
                continue
            line = f"{name}:{','.join(kept)}"
        out.append(line)
    return "\r\n".join(out) + "\r\n" if changed else text


def _unfolded(text: str) -> list[str]:
    text = text.replace("\r\n", "\n").replace("\n ", "").replace("\n\t", "")
    return [line for line in text.split("\n") if line]


def _period_overlaps(value: str, start: datetime, end: datetime) -> bool:
    """Whether a FREEBUSY period (UTC start with an end or a duration) overlaps [start, end);
    one that does not parse is kept (the range says what to leave out, not what to mend)."""
    try:
        period = vPeriod.from_ical(value.strip())
    except ValueError:
        return True
    first, last = period
    first = _sort_key(first)
    last = first + last if isinstance(last, timedelta) else _sort_key(last)
    return first < end and last > start
