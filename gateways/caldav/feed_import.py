"""PUT of a whole calendar (`/ical/<user>/<calendar>`, or a collection under `/caldav/`):
the calendar is updated by difference.

The body is cut into one calendar object per UID at the text level (each with the
VTIMEZONEs it refers to), without building an object tree; the store parses each
object it is sent anyway. Objects whose components are unchanged are not sent, so
they keep their names, ETags and modseqs; changed ones are rewritten in place, new
ones added, and objects whose UID is gone deleted, all through saveCalendarItems.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer

from gateways.caldav.feed import PRODID
from gateways.caldav.storage import CALENDAR_CLASSES, HOMES, segment_names
from shared import rights as R
from shared.errors import PRECONDITION_FAILED, BadRequest, Conflict, Forbidden, TooLarge

OBJECT_COMPONENTS = ("VEVENT", "VTODO", "VJOURNAL")
_NAME = re.compile(r"[A-Za-z0-9-]+")
_TZID_PARAM = re.compile(r';TZID=("[^"]*"|[^;:]*)', re.I)
_SAFE_NAME = re.compile(r"^[A-Za-z0-9@._+=-]{1,200}$")


class TooManyInstances(ValueError):
    """An object of the calendar generates more recurrence instances than one may
    (RFC 4791 CALDAV:max-instances; gateways/caldav/series_limit.py)."""


@dataclass
class FeedObject:
    uid: str
    component: str
    blocks: list[str] = field(default_factory=list)  # the components' content lines, folded as sent
    zones: list[str] = field(default_factory=list)  # TZIDs referred to, in order of first use


@dataclass
class Feed:
    objects: dict[str, FeedObject]
    zones: dict[str, str]  # TZID -> VTIMEZONE block
    display_name: str | None = None
    description: str | None = None
    prodid: str = PRODID
    calscale: str | None = None

    def object_text(self, obj: FeedObject) -> str:
        head = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:" + self.prodid]
        if self.calscale:
            head.append("CALSCALE:" + self.calscale)
        zones = "".join(self.zones[z] for z in obj.zones if z in self.zones)
        return "\r\n".join(head) + "\r\n" + zones + "".join(obj.blocks) + "END:VCALENDAR\r\n"


def _content_lines(text: str) -> Iterable[tuple[str, str]]:
    """(line as sent with its folds and CRLF, line unfolded) for every non-empty content line."""
    raw: list[str] = []
    for line in text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line[:1] in (" ", "\t") and raw:
            raw.append(line)
            continue
        if raw:
            yield "\r\n".join(raw) + "\r\n", raw[0] + "".join(r[1:] for r in raw[1:])
        raw = [line] if line.strip() else []
    if raw:
        yield "\r\n".join(raw) + "\r\n", raw[0] + "".join(r[1:] for r in raw[1:])


def _split(line: str) -> tuple[str, str]:
    """(upper-case property name, value) of an unfolded content line."""
    match = _NAME.match(line)
    if match is None:
        raise BadRequest(f"not an iCalendar content line: {line[:60]!r}")
    name = match.group(0).upper()
    rest = line[match.end():]
    if rest.startswith(";"):
        # Parameters may quote a colon.
        i, quoted = 0, False
        while i < len(rest):
            ch = rest[i]
            if ch == '"':
                quoted = not quoted
            elif ch == ":" and not quoted:
                break
            i += 1
        return name, rest[i + 1:]
    if not rest.startswith(":"):
        raise BadRequest(f"not an iCalendar content line: {line[:60]!r}")
    return name, rest[1:]


def _unescape(value: str) -> str:
    return re.sub(r"\\([\\;,nN])", lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def parse_feed(text: str) -> Feed:
    """One VCALENDAR cut into objects by UID; BadRequest for anything else."""
    feed = Feed({}, {})
    outer_done = False
    stack: list[str] = []
    block: list[str] = []
    uid = tzid = None
    for raw, line in _content_lines(text):
        name, value = _split(line)
        if outer_done:
            raise BadRequest("one VCALENDAR per calendar")
        if name == "BEGIN":
            kind = value.strip().upper()
            if not stack and kind != "VCALENDAR":
                raise BadRequest("not a VCALENDAR")
            stack.append(kind)
            if len(stack) == 2:
                block, uid, tzid = [], None, None
            if len(stack) >= 2:
                block.append(raw)
            if len(stack) > 32:
                raise BadRequest("components nested too deep")
            continue
        if name == "END":
            kind = value.strip().upper()
            if not stack or stack[-1] != kind:
                raise BadRequest(f"END:{kind} does not close {stack[-1] if stack else 'anything'}")
            if len(stack) >= 2:
                block.append(raw)
            if len(stack) == 2:
                _finish(feed, kind, block, uid, tzid)
            stack.pop()
            outer_done = not stack
            continue
        if not stack:
            raise BadRequest("not a VCALENDAR")
        if len(stack) == 1:
            if name == "X-WR-CALNAME":
                feed.display_name = _unescape(value)
            elif name == "X-WR-CALDESC":
                feed.description = _unescape(value)
            elif name == "PRODID" and value.strip():
                feed.prodid = value.strip()
            elif name == "CALSCALE":
                feed.calscale = value.strip()
            continue
        block.append(raw)
        if len(stack) == 2:
            if name == "UID":
                uid = value
            elif name == "TZID":
                tzid = value
    if stack or not outer_done:
        raise BadRequest("the VCALENDAR is not closed")
    return feed


def _finish(feed: Feed, kind: str, block: list[str], uid: str | None, tzid: str | None) -> None:
    if kind == "VTIMEZONE":
        if tzid:
            feed.zones.setdefault(tzid, "".join(block))
        return
    if kind not in OBJECT_COMPONENTS:
        return  # e.g. VFREEBUSY: nothing a calendar keeps
    if not uid:
        raise BadRequest(f"a {kind} without UID")
    obj = feed.objects.get(uid)
    if obj is None:
        obj = feed.objects[uid] = FeedObject(uid, kind)
    text = "".join(block)
    obj.blocks.append(text)
    for match in _TZID_PARAM.finditer(text):
        zone = match.group(1).strip('"')
        if zone not in obj.zones:
            obj.zones.append(zone)


def content_key(text: str) -> tuple[str, ...] | None:
    """What "unchanged" compares: the unfolded lines of the object's components in any
    order, without the wrapping VCALENDAR's properties and time zones (which a feed
    shares between objects) and without DTSTAMP (which exporters set to the time of the
    export); None if the text cannot be read."""
    lines: list[str] = []
    depth, in_zone = 0, False
    try:
        for _, line in _content_lines(text):
            name, value = _split(line)
            if name == "BEGIN":
                depth += 1
                if depth == 2 and value.strip().upper() == "VTIMEZONE":
                    in_zone = True
            if depth >= 2 and not in_zone and name != "DTSTAMP":
                lines.append(line)
            if name == "END":
                if depth == 2:
                    in_zone = False
                depth -= 1
    except BadRequest:
        return None
    return tuple(sorted(lines))


def object_name(uid: str, taken: set[str]) -> str:
    """A resource name for a new object: its UID when that makes a plain name."""
    name = uid + ".ics" if _SAFE_NAME.match(uid) else hashlib.sha256(uid.encode()).hexdigest()[:32] + ".ics"
    n = 1
    base = name
    while name in taken:
        n += 1
        name = base.removesuffix(".ics") + f"-{n}.ics"
    return name


@dataclass
class Plan:
    saves: list[tuple[str, str]]  # (name, text)
    deletes: list[str]
    unchanged: int


def plan_import(feed: Feed, existing: Iterable[tuple[str, str | None, str | None]]) -> Plan:
    """What to save and delete so the folder holds the feed's objects. `existing` are
    (name, UID, text) of the stored objects."""
    by_uid: dict[str, tuple[str, str | None]] = {}
    deletes: list[str] = []
    taken: set[str] = set()
    for name, uid, text in existing:
        taken.add(name)
        if uid is None or uid not in feed.objects or uid in by_uid:
            deletes.append(name)
        else:
            by_uid[uid] = (name, text)
    saves: list[tuple[str, str]] = []
    unchanged = 0
    for uid, obj in feed.objects.items():
        text = feed.object_text(obj)
        old = by_uid.get(uid)
        if old is None:
            name = object_name(uid, taken)
            taken.add(name)
            saves.append((name, text))
        elif old[1] is not None and content_key(old[1]) == content_key(text):
            unchanged += 1
        else:
            saves.append((old[0], text))
    return Plan(saves, deletes, unchanged)


def folder_kind(feed: Feed) -> str:
    """The container class of a calendar created by the PUT."""
    kinds = {obj.component for obj in feed.objects.values()}
    return {"VTODO": "tasks", "VJOURNAL": "journal"}.get(kinds.pop(), "calendar") if len(kinds) == 1 else "calendar"





@dataclass
class ImportResult:
    created: bool  # the calendar did not exist and was made
    etag: str
    plan: Plan


async def import_calendar(session: Any, segment: str, body: bytes, in_thread: Callable[..., Any],
                          if_match: str = "", if_none_match: bool = False,
                          max_objects: int = 0,
                          series_limit: Callable[[str], bool] | None = None) -> ImportResult:
    """Make the calendar `segment` of the session's user hold what `body` holds (on the
    reactor; parsing and comparing run through `in_thread`). `if_match` / `if_none_match`
    are the request's conditions on the calendar's ETag. Fails with the store's errors,
    Conflict (preconditionFailed), BadRequest for a body that is not one VCALENDAR, or
    TooLarge for one of more than `max_objects` objects (`ical_max_import_objects`; 0: any),
    TooManyInstances for an object `series_limit` (run through `in_thread`) says generates
    more recurrence instances than allowed (CALDAV:max-instances)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the calendar is not UTF-8") from None
    feed = await in_thread(parse_feed, text)
    if max_objects and len(feed.objects) > max_objects:
        raise TooLarge(f"a calendar PUT holds at most {max_objects} objects, this one {len(feed.objects)}")
    if series_limit is not None:
        for obj in feed.objects.values():
            if any("RRULE" in block.upper() for block in obj.blocks) and \
                    await in_thread(series_limit, feed.object_text(obj)):
                raise TooManyInstances(f"the series {obj.uid!r} has more recurrence instances than allowed")
    own, shared = await defer.gatherResults([session.store().folders(counts=False),
                                             session.shared_folders(counts=False)], consumeErrors=True)
    folder = segment_names(own, shared).get(segment)
    created = folder is None
    if folder is not None and folder.container_class not in CALENDAR_CLASSES:
        raise BadRequest("an address book takes vCards (text/vcard), not a calendar")
    if (if_match and (created or if_match not in ("*", _etag(folder)))) or (if_none_match and not created):
        raise Conflict("the calendar's ETag does not match", PRECONDITION_FAILED)
    if created:
        folder = await session.store().create_folder(segment, None, folder_kind(feed))
        HOMES.forget(session)
    elif not R.has(folder.rights, R.INSERT + R.DELETE + R.EXPUNGE):
        raise Forbidden("the calendar is shared read-only")
    _, rows = await folder.messages(["uid", "name", "icalUid", "size", "source"], None, [("uid", False)])
    existing = []
    for row in rows:
        if row.name is None:
            continue
        text = row.text
        if text is None:  # too large to travel inline
            text = await row.ical()
        existing.append((row.name, row.get("icalUid"), text))
    plan = await in_thread(plan_import, feed, existing)
    if plan.saves or plan.deletes:
        await folder.save_calendar_items(plan.saves, plan.deletes)
    restyle = {}
    if feed.display_name and feed.display_name != (folder.display_name or folder.name):
        restyle["display_name"] = feed.display_name
    if feed.description and feed.description != folder.description:
        restyle["description"] = feed.description
    if restyle and R.has(folder.rights, R.DELETE_FOLDER):
        await folder.rename(**restyle)
        HOMES.forget(session)
    return ImportResult(created, _etag(folder), plan)


def _etag(folder: Any) -> str:
    return f'"{folder.id}-{folder.uid_validity}-{folder.highest_modseq}"'


__all__ = ["Feed", "FeedObject", "ImportResult", "Plan", "content_key", "folder_kind", "import_calendar",
           "object_name", "parse_feed", "plan_import"]
