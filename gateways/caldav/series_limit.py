"""CALDAV:max-instances (RFC 4791 §5.2.8, §5.3.2.1): the most recurrence instances one
calendar object may generate, shown on every calendar and checked on each object PUT.

The value is `ical_max_object_instances`, by default the instances a request may walk one
series through (`ical_max_instances`): an object generating more could never be filtered,
expanded or looked at for free-busy, so it is refused when stored (403 with the
precondition) rather than failing every later REPORT. An open-ended series is counted up to the latest date a request may name
(`ical_max_date_time`), the server's horizon; a weekly meeting with no end is about 4000
instances to 2100, a rule every second or minute with no end is far beyond any limit.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from itertools import islice
from typing import Any

from dateutil import rrule

from gateways.caldav import recurrence

PROPERTY = "C:max-instances"
PRECONDITION = "max-instances"


class SeriesLimit:
    """At most `max_instances` instances (0: no limit) up to `horizon` (UTC) per object."""

    def __init__(self, max_instances: int = 0, horizon: datetime = recurrence.LATEST) -> None:
        self.max_instances = max_instances
        self.horizon = horizon

    @classmethod
    def from_config(cls, max_instances: int, latest: str) -> "SeriesLimit":
        horizon = (datetime.strptime(latest, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
                   if latest else recurrence.LATEST)
        return cls(max_instances, horizon)

    def properties(self) -> dict[str, str]:
        return {PROPERTY: str(self.max_instances)} if self.max_instances else {}

    def exceeded_by(self, text: str) -> bool:
        """Whether the object's series generate more instances than allowed up to the
        horizon. Text that does not parse is left to the engine, which answers it 400."""
        if not self.max_instances or "RRULE" not in text.upper():
            return False
        try:
            calendar = recurrence.parse(text)
        except ValueError:
            return False
        for kind in recurrence.KINDS:
            for component in calendar.walk(kind):
                if "RRULE" in component and "RECURRENCE-ID" not in component:
                    if self._count(component) > self.max_instances:
                        return True
        return False

    def _count(self, component: Any) -> int:
        """The component's instances (RRULE and RDATE less EXDATE) up to the horizon, counted
        to one past the limit at most: the rule is walked lazily, never to its end."""
        start = getattr(component.get("DTSTART"), "dt", None)
        if start is None:
            return 0
        start = _as_datetime(start)
        horizon = self.horizon if start.tzinfo is not None else self.horizon.replace(tzinfo=None)
        instances = rrule.rruleset()
        try:
            for rule in _listed(component.get("RRULE")):
                instances.rrule(rrule.rrulestr(rule.to_ical().decode(), dtstart=start, ignoretz=False))
            for value in _dates(component.get("RDATE")):
                instances.rdate(_like(_as_datetime(value), start))
            for value in _dates(component.get("EXDATE")):
                instances.exdate(_like(_as_datetime(value), start))
            walk = (dt for dt in instances if dt <= horizon)
            return sum(1 for _ in islice(walk, self.max_instances + 1))
        except (ValueError, TypeError, OverflowError):
            return 0  # a rule dateutil cannot take: the engine answers it


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _dates(prop: Any) -> list[Any]:
    """The date or date-time values of RDATE/EXDATE properties (periods by their start)."""
    out = []
    for entry in _listed(prop):
        for value in getattr(entry, "dts", []):
            dt = value.dt
            out.append(dt[0] if isinstance(dt, tuple) else dt)
    return out


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    raise TypeError(f"not a date: {value!r}")


def _like(value: datetime, start: datetime) -> datetime:
    """`value` comparable with `start` (both floating, or both with a zone)."""
    if start.tzinfo is None:
        return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo is not None else value
    return value if value.tzinfo is not None else value.replace(tzinfo=start.tzinfo)
