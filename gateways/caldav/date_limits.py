"""The dates a CalDAV request may reach: CALDAV:min-date-time and CALDAV:max-date-time
(RFC 4791 §5.2.6, §5.2.7), shown on every calendar and checked on REPORT bodies.

A time-range, expand, limit-recurrence-set or limit-freebusy-set reaching before the
earliest or after the latest date is refused with 403 and the precondition it broke
(RFC 4791 §7.8, §7.10 and §9.6), before any work is done for it. Values are UTC
date-times in iCalendar's basic form (`19000101T000000Z`), which compare as text.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from gateways.caldav.xmlbody import xml_root

CALDAV = "urn:ietf:params:xml:ns:caldav"
MIN_PROPERTY, MAX_PROPERTY = "C:min-date-time", "C:max-date-time"
_UTC = re.compile(r"^\d{8}T\d{6}Z$")
# The elements whose start and end attributes name dates (RFC 4791 §9.6, §9.9).
_DATED = frozenset("{%s}%s" % (CALDAV, name) for name in
                   ("time-range", "expand", "limit-recurrence-set", "limit-freebusy-set"))


class DateLimits:
    """The earliest and latest date-time a request may name ('' for no limit)."""

    def __init__(self, earliest: str = "", latest: str = "") -> None:
        self.earliest = earliest
        self.latest = latest

    def properties(self) -> dict[str, str]:
        """The two properties a calendar shows (absent when unlimited)."""
        shown = {MIN_PROPERTY: self.earliest, MAX_PROPERTY: self.latest}
        return {name: value for name, value in shown.items() if value}

    def violation(self, body: bytes) -> str | None:
        """The precondition (`min-date-time` or `max-date-time`) a REPORT body breaks, if any.
        A body that does not parse is left to the engine, which answers it 400 (the gateway
        has refused DOCTYPEs and oversized bodies before: gateways/caldav/limits.py)."""
        if not (self.earliest or self.latest) or not body:
            return None
        root = xml_root(body)
        if root is None:
            return None
        return self._first_violation(v for el in root.iter() if el.tag in _DATED
                                     for v in (el.get("start"), el.get("end")))

    def violation_of(self, *values: str) -> str | None:
        """The precondition UTC date-times (`YYYYMMDDTHHMMSSZ`) outside the limits break, if any."""
        return self._first_violation(values)

    def _first_violation(self, values: Iterable[str | None]) -> str | None:
        for value in values:
            if not value or not _UTC.match(value.upper()):
                continue  # absent (open-ended) or malformed: the engine's to judge
            value = value.upper()
            if self.earliest and value < self.earliest:
                return "min-date-time"
            if self.latest and value > self.latest:
                return "max-date-time"
        return None


def refusal(precondition: str) -> bytes:
    """The body of a 403 for a broken CalDAV precondition."""
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:" xmlns:C="{CALDAV}">'
            f'<C:{precondition}/></D:error>').encode()

