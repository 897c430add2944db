"""CALDAV:max-instances (RFC 4791 §5.2.8, §5.3.2.1): the most recurrence instances one
calendar object may generate, shown on every calendar and checked on each PUT of an object
or of a whole calendar.

The value is `ical_max_object_instances`, by default the instances a request may walk one
series through (`ical_max_instances`): an object generating more could never be filtered,
expanded or looked at for free-busy, so it is refused when stored (403 with the
precondition) rather than failing every later REPORT. An open-ended series is counted up to
the latest date a request may name (`ical_max_date_time`), the server's horizon: a weekly
meeting with no end is about 4000 instances to 2100, a rule every second or minute with no
end is far beyond any limit.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from itertools import islice, takewhile
from collections.abc import Callable
from typing import Any

from dateutil import rrule
from icalendar import Calendar

from shared.budget import BudgetExhausted

PROPERTY = "C:max-instances"
PRECONDITION = "max-instances"
KINDS = ("VEVENT", "VTODO", "VJOURNAL")
# Without a latest date, series are counted as far as date arithmetic goes (to the limit).
NO_HORIZON = datetime(9999, 12, 30, tzinfo=timezone.utc)
CHECK_EVERY = 1024


def _no_check() -> None:
    pass


class SeriesLimit:
    """At most `max_instances` instances (0: no limit) up to `horizon` (UTC) per object."""

    def __init__(self, max_instances: int = 0, horizon: datetime = NO_HORIZON) -> None:
        self.max_instances = max_instances
        self.horizon = horizon

    @classmethod
    def from_config(cls, max_instances: int, latest: str) -> "SeriesLimit":
        horizon = (datetime.strptime(latest, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
                   if latest else NO_HORIZON)
        return cls(max_instances, horizon)

    def properties(self) -> dict[str, str]:
        return {PROPERTY: str(self.max_instances)} if self.max_instances else {}

    def exceeded_by(self, text: str, check: Callable[[], None] = _no_check) -> bool:
        """Whether the object's series generate more instances than allowed up to the
        horizon; `check` is called every so often while rules are walked (a time budget's
        check, which raises to stop). Text that does not parse is left to the engine, which
        answers it 400."""
        if not self.max_instances or "RRULE" not in text.upper():
            return False
        try:
            calendar = Calendar.from_ical(text.lstrip("\ufeff"))
        except ValueError:
            return False
        for kind in KINDS:
            for component in calendar.walk(kind):
                if "RRULE" in component and "RECURRENCE-ID" not in component:
                    if self._count(component, check) > self.max_instances:
                        return True
        return False

    def _count(self, component: Any, check: Callable[[], None]) -> int:
        """The component's instances (RRULE and RDATE less EXDATE) up to the horizon, counted
        to one past the limit at most: rules are walked lazily, never past the horizon, and
        not at all when their COUNTs alone keep them within the limit."""
        start = getattr(component.get("DTSTART"), "dt", None)
        if start is None:
            return 0
        start = _as_datetime(start)
        horizon = self.horizon if start.tzinfo is not None else self.horizon.replace(tzinfo=None)
        try:
            rules = _listed(component.get("RRULE"))
            rdates = _dates(component.get("RDATE"))
            counts = [rule.get("COUNT") for rule in rules]
            if all(counts) and sum(int(c[0]) for c in counts) + len(rdates) <= self.max_instances:
                return 0
            instances = rrule.rruleset()
            for rule in rules:
                walked = rrule.rrulestr(rule.to_ical().decode(), dtstart=start, ignoretz=False)
                if not rule.get("COUNT") and (walked._until is None or walked._until > horizon):
                    # dateutil looks for the next instance up to the year 9999 otherwise, even
                    # for a rule that never matches again.
                    walked = walked.replace(until=horizon)
                instances.rrule(walked)
            for value in rdates:
                instances.rdate(_like(_as_datetime(value), start))
            for value in _dates(component.get("EXDATE")):
                instances.exdate(_like(_as_datetime(value), start))
            counted = 0
            for _ in islice(takewhile(lambda dt: dt <= horizon, instances), self.max_instances + 1):
                counted += 1
                if counted % CHECK_EVERY == 0:
                    check()
            return counted
        except BudgetExhausted:
            raise
        except Exception:  # icalendar's broken properties, rules dateutil cannot take, ...
            return 0  # the engine answers what it cannot read


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
