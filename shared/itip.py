"""iTIP (RFC 5546) messages between calendar users, and what they do to a stored copy.

Both sides use it: the CalDAV gateway builds REQUEST, REPLY and CANCEL messages from
what an organizer or attendee saved (RFC 6638 section 3.2, implicit scheduling), and
the store applies them to the recipients' calendars; incoming iMIP mail (RFC 6047)
is applied the same way. Addresses are compared as RFC 6638 section 3.1.4 asks, without
the `mailto:` scheme and case-insensitively.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import hashlib

import icalendar

from shared.errors import BadRequest

METHODS = ("REQUEST", "REPLY", "CANCEL")
# Components that carry ORGANIZER and ATTENDEE for scheduling.
SCHEDULED = ("VEVENT", "VTODO")
# Parameters that only mean something on the sender's own copy (RFC 6638 section 7).
PRIVATE_PARAMS = ("SCHEDULE-STATUS", "SCHEDULE-FORCE-SEND")
# RFC 6638 section 3.2.9 status codes.
DELIVERED = "1.2"
SENT = "1.1"
INVALID_USER = "3.7"
NO_PRIVILEGES = "3.8"
NOT_DELIVERED = "5.1"


def address(value: Any) -> str:
    """A calendar user address as compared: without `mailto:`, lower-case."""
    text = str(value).strip()
    if text[:7].lower() == "mailto:":
        text = text[7:]
    return text.lower()


def parse(text: str) -> icalendar.Calendar:
    try:
        cal = icalendar.Calendar.from_ical(text)
    except (ValueError, IndexError, KeyError) as err:
        raise BadRequest(f"not an iCalendar object: {err}") from None
    if cal.name != "VCALENDAR":
        raise BadRequest("not a VCALENDAR")
    return cal


def serialize(cal: icalendar.Calendar) -> str:
    return cal.to_ical().decode("utf-8")


def components(cal: icalendar.Calendar) -> list[Any]:
    return [c for c in cal.subcomponents if c.name in SCHEDULED]


def method(cal: icalendar.Calendar) -> str | None:
    value = cal.get("METHOD")
    return str(value).upper() if value is not None else None


def uid(cal: icalendar.Calendar) -> str | None:
    for comp in components(cal):
        if comp.get("UID") is not None:
            return str(comp.get("UID"))
    return None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def organizer(cal: icalendar.Calendar) -> str | None:
    """The organizer's address, from the first component naming one."""
    for comp in components(cal):
        if comp.get("ORGANIZER") is not None:
            return address(comp.get("ORGANIZER"))
    return None


def organizer_agent(cal: icalendar.Calendar) -> str:
    """SCHEDULE-AGENT of the ORGANIZER property (RFC 6638 section 7.1): SERVER by default."""
    for comp in components(cal):
        prop = comp.get("ORGANIZER")
        if prop is not None:
            return str(prop.params.get("SCHEDULE-AGENT", "SERVER")).upper()
    return "SERVER"


def attendees(cal: icalendar.Calendar, server_scheduled_only: bool = False) -> list[str]:
    """Every attendee address of the object once, in order of appearance; with
    `server_scheduled_only` those the server schedules (SCHEDULE-AGENT SERVER or absent)."""
    seen: dict[str, None] = {}
    for comp in components(cal):
        for prop in _as_list(comp.get("ATTENDEE")):
            if server_scheduled_only and str(prop.params.get("SCHEDULE-AGENT", "SERVER")).upper() != "SERVER":
                continue
            seen.setdefault(address(prop), None)
    return list(seen)


def attendee_params(cal: icalendar.Calendar, name: str) -> dict[str, str]:
    """The value of parameter `name` on each attendee that has it (the first seen)."""
    out: dict[str, str] = {}
    for comp in components(cal):
        for prop in _as_list(comp.get("ATTENDEE")):
            if name in prop.params:
                out.setdefault(address(prop), str(prop.params[name]))
    return out


def partstats(cal: icalendar.Calendar, who: str) -> dict[str, str]:
    """PARTSTAT of attendee `who` per component (keyed by RECURRENCE-ID, "" for the master)."""
    out = {}
    for comp in components(cal):
        for prop in _as_list(comp.get("ATTENDEE")):
            if address(prop) == who:
                out[_instance(comp)] = str(prop.params.get("PARTSTAT", "NEEDS-ACTION")).upper()
    return out


def is_cancelled(cal: icalendar.Calendar) -> bool:
    """Whether the master (or the only) component says STATUS:CANCELLED."""
    comps = components(cal)
    masters = [c for c in comps if c.get("RECURRENCE-ID") is None] or comps[:1]
    return any(str(c.get("STATUS", "")).upper() == "CANCELLED" for c in masters)


def _instance(comp: Any) -> str:
    rid = comp.get("RECURRENCE-ID")
    return rid.to_ical().decode() if rid is not None else ""


def _strip_private(comp: Any) -> None:
    for name in ("ATTENDEE", "ORGANIZER"):
        for prop in _as_list(comp.get(name)):
            for param in PRIVATE_PARAMS:
                prop.params.pop(param, None)


def message(text: str, kind: str, only_attendees: Iterable[str] | None = None, partstat: str | None = None) -> str:
    """The iTIP message of `kind` (REQUEST, CANCEL or REPLY) for a stored object's text.

    A REPLY (RFC 5546 section 3.2.3) keeps only the replying attendee(s) named in
    `only_attendees`, with `partstat` when given; a CANCEL (section 3.2.5) marks every
    component cancelled."""
    cal = parse(text)
    keep = {address(a) for a in only_attendees} if only_attendees is not None else None
    cal.pop("METHOD", None)
    cal.add("METHOD", kind)
    for comp in components(cal):
        _strip_private(comp)
        if kind == "REPLY" and keep is not None:
            props = [p for p in _as_list(comp.get("ATTENDEE")) if address(p) in keep]
            comp.pop("ATTENDEE", None)
            for prop in props:
                if partstat is not None:
                    prop.params["PARTSTAT"] = partstat
                comp.add("ATTENDEE", prop)
        if kind == "CANCEL":
            comp.pop("STATUS", None)
            comp.add("STATUS", "CANCELLED")
    # Alarms are the sender's own (RFC 5546 section 3.2.2 lists VALARM as optional).
    for comp in components(cal):
        comp.subcomponents = [s for s in comp.subcomponents if s.name != "VALARM"]
    return serialize(cal)


def as_copy(text: str) -> str:
    """A received REQUEST as the recipient's calendar object: without METHOD (RFC 4791
    section 4.1 forbids it in a calendar collection)."""
    cal = parse(text)
    cal.pop("METHOD", None)
    return serialize(cal)


def apply(copy_text: str | None, itip_text: str) -> str | None:
    """The recipient's stored copy after the iTIP message, or None when it changes nothing.

    REQUEST replaces the copy (the organizer's version is the truth, RFC 5546 section
    3.2.2), keeping the recipient's own alarms; REPLY sets the replying attendee's PARTSTAT on the matching instances of the
    organizer's copy; CANCEL marks the copy's matching instances cancelled."""
    itip = parse(itip_text)
    kind = method(itip)
    if kind == "REQUEST":
        return _keep_alarms(as_copy(itip_text), copy_text)
    if copy_text is None:
        return None
    copy = parse(copy_text)
    if kind == "REPLY":
        changed = _apply_reply(copy, itip)
    elif kind == "CANCEL":
        changed = _apply_cancel(copy, itip)
    else:
        raise BadRequest(f"unsupported iTIP method {kind!r}")
    return serialize(copy) if changed else None


def _keep_alarms(new_text: str, copy_text: str | None) -> str:
    """`new_text` with the VALARMs the recipient had on each instance of their copy."""
    if copy_text is None:
        return new_text
    alarms = {_instance(c): [s for s in c.subcomponents if s.name == "VALARM"] for c in components(parse(copy_text))}
    if not any(alarms.values()):
        return new_text
    new = parse(new_text)
    for comp in components(new):
        if not any(s.name == "VALARM" for s in comp.subcomponents):
            comp.subcomponents.extend(alarms.get(_instance(comp), []))
    return serialize(new)


def _apply_reply(copy: icalendar.Calendar, itip: icalendar.Calendar) -> bool:
    answers: dict[tuple[str, str], Any] = {}
    for comp in components(itip):
        for prop in _as_list(comp.get("ATTENDEE")):
            answers[(_instance(comp), address(prop))] = prop.params.get("PARTSTAT", "NEEDS-ACTION")
    changed = False
    for comp in components(copy):
        instance = _instance(comp)
        for prop in _as_list(comp.get("ATTENDEE")):
            who = address(prop)
            value = answers.get((instance, who), answers.get(("", who)))
            if value is not None and str(prop.params.get("PARTSTAT", "")).upper() != str(value).upper():
                prop.params["PARTSTAT"] = str(value).upper()
                prop.params.pop("RSVP", None)
                changed = True
    return changed


def _apply_cancel(copy: icalendar.Calendar, itip: icalendar.Calendar) -> bool:
    cancelled = {_instance(c) for c in components(itip)}
    changed = False
    for comp in components(copy):
        if "" in cancelled or _instance(comp) in cancelled:
            if str(comp.get("STATUS", "")).upper() != "CANCELLED":
                comp.pop("STATUS", None)
                comp.add("STATUS", "CANCELLED")
                changed = True
    return changed


def with_schedule_status(text: str, statuses: Mapping[str, str]) -> str:
    """The organizer's copy with SCHEDULE-STATUS (RFC 6638 section 7.3) on each ATTENDEE
    a message was sent to, as `statuses` (address -> code) says."""
    cal = parse(text)
    for comp in components(cal):
        for prop in _as_list(comp.get("ATTENDEE")):
            status = statuses.get(address(prop))
            if status is not None:
                prop.params["SCHEDULE-STATUS"] = status
    return serialize(cal)


def copy_organizer_matches(copy_text: str, sender: str) -> bool:
    """Whether a stored copy belongs to the event `sender` organizes (a REQUEST or
    CANCEL may only change the organizer's own event)."""
    return organizer(parse(copy_text)) == address(sender)


# What an attendee may change in their own copy, and what the organizer's copy takes from
# replies: none of it changes the Schedule-Tag (RFC 6638 section 3.2.10).
_ATTENDEE_OWN_PARAMS = ("PARTSTAT", "RSVP", "SCHEDULE-STATUS", "SCHEDULE-FORCE-SEND")
_ATTENDEE_OWN_PROPS = ("DTSTAMP", "LAST-MODIFIED", "TRANSP", "X-MOZ-LASTACK", "X-MOZ-GENERATION",
                       "X-MOZ-SNOOZE-TIME", "X-MOZ-SEND-INVITATIONS", "X-MOZ-SEND-INVITATIONS-UNDISCLOSED")


def schedule_tag(text: str) -> str | None:
    """The Schedule-Tag of a scheduling object resource (RFC 6638 section 3.2.10), or None
    for an object without ORGANIZER. It is a digest of what the organizer decides: it stays
    the same when an attendee changes their participation, alarms or transparency, or when
    a reply updates the organizer's copy, and changes with anything else."""
    try:
        cal = parse(text)
    except BadRequest:
        return None
    if organizer(cal) is None:
        return None
    digest = hashlib.sha256()
    for comp in components(cal):
        comp.subcomponents = [s for s in comp.subcomponents if s.name != "VALARM"]
        for name in _ATTENDEE_OWN_PROPS:
            comp.pop(name, None)
        for name in [n for n in comp if n.startswith("X-MOZ-")]:
            comp.pop(name, None)
        for prop in _as_list(comp.get("ATTENDEE")) + _as_list(comp.get("ORGANIZER")):
            for param in _ATTENDEE_OWN_PARAMS:
                prop.params.pop(param, None)
        digest.update(comp.to_ical(sorted=True))
    return f'"{digest.hexdigest()[:32]}"'
