"""Free-busy requests POSTed to the schedule outbox (RFC 6638 section 6.2, RFC 5546
section 3.3.2): a VFREEBUSY with METHOD:REQUEST from the user (its ORGANIZER) naming
ATTENDEEs and a time range. Each attendee who is a user of the store is answered from
the events of their calendars (busy periods as gateways/caldav/recurrence.py computes
them for free-busy-query); others get 3.7. The answer is a CALDAV:schedule-response.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from xml.sax.saxutils import escape

import icalendar

from gateways.caldav import context, recurrence
from shared import itip
from shared.budget import working_under
from shared.errors import BadRequest

ICAL_TYPES = ("text/calendar",)
STATUS_TEXT = {"2.0": "2.0;Success", itip.INVALID_USER: "3.7;Invalid calendar user",
               itip.NO_PRIVILEGES: "3.8;No authority"}


class OutboxRefused(Exception):
    """A POST the outbox does not take: the HTTP status and the precondition element."""

    def __init__(self, status: int, condition: str, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.condition = condition


def error_body(condition: str) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:" '
            f'xmlns:C="urn:ietf:params:xml:ns:caldav"><C:{condition}/></D:error>').encode()


def parse_request(body: bytes, own: frozenset[str], max_attendees: int) -> tuple[datetime, datetime, str, list[str], Any]:
    """(start, end, organizer, attendees, the VFREEBUSY) of a free-busy request; OutboxRefused
    with RFC 6638's precondition for one the outbox does not answer."""
    try:
        cal = itip.parse(body.decode("utf-8"))
    except (BadRequest, UnicodeDecodeError):
        raise OutboxRefused(400, "valid-calendar-data", "not an iCalendar object") from None
    requests = [c for c in cal.subcomponents if c.name == "VFREEBUSY"]
    if itip.method(cal) != "REQUEST" or len(requests) != 1:
        raise OutboxRefused(400, "valid-scheduling-message", "POST one VFREEBUSY with METHOD:REQUEST")
    request = requests[0]
    organizer = itip.address(request.get("ORGANIZER", ""))
    if not organizer or organizer not in own:
        raise OutboxRefused(403, "organizer-allowed", "the ORGANIZER must be the user's own address")
    attendees = list(dict.fromkeys(itip.address(a) for a in _as_list(request.get("ATTENDEE"))))
    if not attendees:
        raise OutboxRefused(400, "valid-scheduling-message", "a free-busy request names its ATTENDEEs")
    if max_attendees and len(attendees) > max_attendees:
        raise OutboxRefused(403, "max-attendees-per-instance", f"at most {max_attendees} attendees")
    try:
        start, end = _utc(request["DTSTART"].dt), _utc(request["DTEND"].dt)
    except (KeyError, AttributeError, TypeError):
        raise OutboxRefused(400, "valid-scheduling-message", "a free-busy request has DTSTART and DTEND") from None
    if end <= start:
        raise OutboxRefused(400, "valid-scheduling-message", "DTEND must be after DTSTART")
    return start, end, organizer, attendees, request


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _utc(value: Any) -> datetime:
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)


def busy_reply(request: Any, organizer: str, attendee: str, start: datetime, end: datetime,
               texts: list[str], count: Callable[[int], None]) -> str:
    """The VFREEBUSY REPLY (RFC 5546 section 3.3.3) for one attendee from their events;
    `count` is told how many periods it holds (the request's instance limit)."""
    periods: list[tuple[datetime, datetime, str]] = []
    for text in texts:
        periods.extend(recurrence.busy_periods(text, start, end))
    count(len(periods))
    cal = icalendar.Calendar()
    cal.add("PRODID", "-//groupware//CalDAV scheduling//EN")
    cal.add("VERSION", "2.0")
    cal.add("METHOD", "REPLY")
    reply = icalendar.FreeBusy()
    reply.add("UID", str(request.get("UID") or uuid.uuid4()))
    reply.add("DTSTAMP", datetime.now(timezone.utc))
    reply.add("DTSTART", start)
    reply.add("DTEND", end)
    reply.add("ORGANIZER", f"mailto:{organizer}")
    reply.add("ATTENDEE", f"mailto:{attendee}")
    for fbtype, merged in _merged(periods).items():
        for first, last in merged:
            reply.add("FREEBUSY", [(first, last)], parameters={"FBTYPE": fbtype})
    cal.add_component(reply)
    return cal.to_ical().decode()


def _merged(periods: list[tuple[datetime, datetime, str]]) -> dict[str, list[tuple[datetime, datetime]]]:
    out: dict[str, list[tuple[datetime, datetime]]] = {}
    for first, last, fbtype in sorted(periods):
        spans = out.setdefault(fbtype, [])
        if spans and first <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], last))
        else:
            spans.append((first, last))
    return out


def schedule_response(answers: list[tuple[str, str, str | None]]) -> bytes:
    """CALDAV:schedule-response (RFC 6638 section 10.1) of (address, status, calendar data)."""
    parts = ['<?xml version="1.0" encoding="utf-8"?>\n<C:schedule-response xmlns:D="DAV:" '
             'xmlns:C="urn:ietf:params:xml:ns:caldav">']
    for address, status, data in answers:
        parts.append(f"<C:response><C:recipient><D:href>mailto:{escape(address)}</D:href></C:recipient>"
                     f"<C:request-status>{escape(STATUS_TEXT.get(status, status))}</C:request-status>")
        if data is not None:
            parts.append(f"<C:calendar-data>{escape(data)}</C:calendar-data>")
        parts.append("</C:response>")
    parts.append("</C:schedule-response>\n")
    return "".join(parts).encode("utf-8")


async def free_busy(ctx: Any, body: bytes, own: frozenset[str], max_attendees: int,
                    in_thread: Callable[..., Any]) -> bytes:
    """The schedule-response to a free-busy request POSTed by the user of `ctx` (a
    RequestContext: its budget and instance limit bound the work, BudgetExhausted past them)."""
    start, end, organizer, attendees, request = await in_thread(parse_request, body, own, max_attendees)
    broken = ctx.date_limits.violation_of(start.strftime("%Y%m%dT%H%M%SZ"), end.strftime("%Y%m%dT%H%M%SZ"))
    if broken is not None:
        raise OutboxRefused(403, broken, f"the request reaches beyond {broken}")
    results = await ctx.session.free_busy_items(int(start.timestamp()), int(end.timestamp()), attendees)

    def answer() -> bytes:
        context.bind(ctx)  # rule walks are bounded by the request's limits (radicale_glue)
        try:
            with working_under(ctx.budget):
                answers = []
                for result in results:
                    data = None
                    if result.status == "2.0":
                        data = busy_reply(request, organizer, result.address, start, end, list(result.items),
                                          ctx.count_instances)
                    answers.append((result.address, result.status, data))
                return schedule_response(answers)
        finally:
            context.bind(None)
    return await in_thread(answer)

__all__ = ["OutboxRefused", "error_body", "free_busy", "parse_request", "schedule_response"]
