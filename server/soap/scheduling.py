"""Scheduling between the store's users (RFC 6638): scheduleMessage and freeBusyItems.

`scheduleMessage` takes one iTIP message (RFC 5546) and its recipients' addresses. For
each address that belongs to a local user the message is kept in that user's schedule
inbox (a folder of class `schedule-inbox`, made on first use) and applied to the copy
of the object in their calendars: a REQUEST creates or replaces it (new copies go to
the user's first calendar), a REPLY updates the replying attendee's PARTSTAT in the
organizer's copy, a CANCEL marks it cancelled. A user session may only send as itself
(its address must be the ORGANIZER of a REQUEST or CANCEL, the ATTENDEE of a REPLY);
a delivery session (incoming iMIP mail) sends as whoever the message names.

`freeBusyItems` answers, for local addresses only, the events of their calendars that
may be busy in a time range; the gateway computes the busy periods from them.
"""
from __future__ import annotations

import hashlib
import logging
import re
import uuid
from contextlib import closing
from typing import Any

from lxml import etree

from server import recipients
from server.soap.context import Call, response
from server.soap.items import calendar_object_columns, store_text_object
from shared import itip
from shared.codec import add, element, gw, required, required_int, text
from shared.errors import PRECONDITION_FAILED, BadRequest, Conflict, Forbidden, NotFound

log = logging.getLogger(__name__)

INBOX_CLASS = "schedule-inbox"
INBOX_NAME = "Scheduling Inbox"
DEFAULT_CALENDAR_NAME = "Calendar"
DEFAULT_TASKS_NAME = "Tasks"
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9@._-]{1,200}$")
# Times an update of a stored copy is tried when another writer changed it in between.
UPDATE_ATTEMPTS = 5


def copy_name(ical_uid: str) -> str:
    """The resource name a new copy gets: its UID when that is a safe name, else a digest."""
    base = ical_uid if _PLAIN_NAME.match(ical_uid) else hashlib.sha256(ical_uid.encode()).hexdigest()
    return base + ".ics"


def _recipients(call: Call) -> list[str]:
    addresses = list(dict.fromkeys(text(el) or "" for el in call.body.iterchildren(gw("recipient"))))
    limit = call.services.limits.max_schedule_recipients
    if limit and len(addresses) > limit:
        raise BadRequest(f"at most {limit} recipients per scheduling message")
    return addresses


def _check_originator(session: Any, cal: Any, kind: str) -> str:
    """The address the message comes from; Forbidden unless a user session sends as itself."""
    if kind == "REPLY":
        senders = itip.attendees(cal)
        sender = senders[0] if len(senders) == 1 else ""
    else:
        sender = itip.organizer(cal) or ""
    if not sender:
        raise BadRequest(f"a {kind} names its {'one ATTENDEE' if kind == 'REPLY' else 'ORGANIZER'}")
    if not session.delivery and itip.address(session.user.get("email") or "") != sender:
        raise Forbidden("a scheduling message must come from the caller's own address")
    return sender


async def schedule_message(call: Call) -> etree._Element:
    session = call.any_session()
    message = required(call.body, "message")
    cal = await call.run(itip.parse, message)  # a large object would hold the reactor
    kind = itip.method(cal)
    if kind not in itip.METHODS:
        raise BadRequest(f"METHOD must be one of {', '.join(itip.METHODS)}")
    ical_uid = itip.uid(cal)
    if not ical_uid:
        raise BadRequest("the message has no UID")
    sender = _check_originator(session, cal, kind)
    component = itip.components(cal)[0].name
    addresses = _recipients(call)
    users = call.services.users
    delimiter = call.services.limits.recipient_delimiter
    out = response("scheduleMessage")
    changed: dict[int, int] = {}
    for address in addresses:
        status = itip.INVALID_USER
        try:
            user, _ = await call.run_users(recipients.resolve_recipient, users, address, delimiter)
        except NotFound:
            user = None
        if user is not None and user.get("store_id") is not None:
            try:
                modseqs = await call.run(_deliver, call, user, sender, kind, ical_uid, component, message)
                changed.update(modseqs)
                status = itip.DELIVERED
            except Exception as err:  # noqa: BLE001 - the failure is this recipient's answer
                log.warning("scheduling: %s to %s not delivered: %s", kind, address, err)
                status = itip.NOT_DELIVERED
        log.info("scheduling: %s %s from %s to %s: %s", kind, ical_uid, sender, address, status)
        result = element("result")
        add(result, "address", address)
        add(result, "status", status)
        out.append(result)
    for folder_id, modseq in changed.items():
        call.services.notifier.changed(folder_id, modseq)
    return out


def _folders(st: Any, store_id: int) -> list[dict[str, Any]]:
    return st.list_folders(store_id, counts=False)


def _inbox(st: Any, store_id: int, folders: list[dict[str, Any]]) -> int:
    for folder in folders:
        if folder["container_class"] == INBOX_CLASS:
            return folder["id"]
    return st.create_folder(store_id, None, INBOX_NAME, INBOX_CLASS)["id"]


def _read_text(st: Any, folder_id: int, item_uid: int) -> tuple[str, str, str]:
    """(resource name, ETag, text) of a stored object."""
    row = st.get_item(folder_id, item_uid, ["name", "etag"])
    with closing(st.blobs.open(row["blob_key"])) as fp:
        return row["name"], row["etag"], fp.read().decode("utf-8", "surrogateescape")


def _deliver(call: Call, user: dict[str, Any], sender: str, kind: str, ical_uid: str, component: str,
             message: str) -> dict[int, int]:
    """Keep the message in the user's schedule inbox and apply it to their copy (in a
    storage thread); the folders changed, with their new modseq."""
    st = call.storage
    max_size = call.services.limits.max_message_size
    folders = _folders(st, user["store_id"])
    changed: dict[int, int] = {}
    inbox = _inbox(st, user["store_id"], folders)
    # Messages about one object share its UID: in the inbox the UID is not a key.
    columns = {**calendar_object_columns(message), "icalUid": None}
    kept = store_text_object(st, inbox, f"{uuid.uuid4().hex}.ics", message, columns, max_size)
    changed[inbox] = kept["modseq"]
    calendars = [f["id"] for f in folders if f["container_class"] in ("calendar", "tasks")]
    found: tuple[int, int] | None = None
    for folder_id in calendars:
        item_uid = st.find_item_by_ical_uid(folder_id, ical_uid)
        if item_uid is not None:
            found = (folder_id, item_uid)
            break
    if found is None:
        if kind != "REQUEST":
            return changed  # nothing to update: the message waits in the inbox
        # A task goes to the first task list, an event to the first calendar (made if none).
        wanted = "tasks" if component == "VTODO" else "calendar"
        targets = [f["id"] for f in folders if f["container_class"] == wanted]
        target = targets[0] if targets else st.create_folder(
            user["store_id"], None, DEFAULT_TASKS_NAME if wanted == "tasks" else DEFAULT_CALENDAR_NAME, wanted)["id"]
        copy = itip.as_copy(message)
        saved = store_text_object(st, target, copy_name(ical_uid), copy, calendar_object_columns(copy), max_size)
        changed[target] = saved["modseq"]
        return changed
    folder_id, item_uid = found
    # A REQUEST or CANCEL changes only the sender's own event; a REPLY only one the
    # recipient organizes.
    owner = sender if kind != "REPLY" else user.get("email") or ""
    for attempt in range(UPDATE_ATTEMPTS):
        name, etag, current = _read_text(st, folder_id, item_uid)
        if not itip.copy_organizer_matches(current, owner):
            log.warning("scheduling: %s for %s ignored: the stored copy has another organizer", kind, ical_uid)
            return changed
        updated = itip.apply(current, message)
        if updated is None:
            return changed
        try:
            # Written only over what was read: replies of several attendees at once all count.
            saved = store_text_object(st, folder_id, name, updated, calendar_object_columns(updated), max_size,
                                      if_match=etag)
        except Conflict as err:
            if err.reason != PRECONDITION_FAILED or attempt == UPDATE_ATTEMPTS - 1:
                raise
            continue
        changed[folder_id] = saved["modseq"]
        return changed
    return changed


# What free-busy may learn of another user's event (RFC 5545 section 3.6.4): its times.
BUSY_PROPERTIES = frozenset({"UID", "DTSTAMP", "DTSTART", "DTEND", "DURATION", "RRULE", "RDATE", "EXDATE",
                             "RECURRENCE-ID", "STATUS", "TRANSP"})


def times_only(text: str) -> str:
    """An event's text with nothing but what its busy time is computed from (no summary,
    place, attendees or alarms): the caller may not read the other user's calendar."""
    cal = itip.parse(text)
    for comp in cal.subcomponents:
        if comp.name != "VEVENT":
            continue
        for name in [n for n in comp if n not in BUSY_PROPERTIES]:
            comp.pop(name)
        comp.subcomponents = []
    cal.subcomponents = [c for c in cal.subcomponents if c.name in ("VEVENT", "VTIMEZONE")]
    return itip.serialize(cal)


async def free_busy_items(call: Call) -> etree._Element:
    """Per <recipient>: its status, and the texts of its events that occur in
    [<start>, <end>) (epoch seconds), at most max_freebusy_items in all, reduced to their times."""
    call.session()
    start, end = required_int(call.body, "start"), required_int(call.body, "end")
    if end <= start:
        raise BadRequest("<end> must be after <start>")
    addresses = _recipients(call)
    limits = call.services.limits
    out = response("freeBusyItems")
    left = limits.max_freebusy_items
    for address in addresses:
        result = element("result")
        add(result, "address", address)
        try:
            user, _ = await call.run_users(recipients.resolve_recipient, call.services.users, address,
                                           limits.recipient_delimiter)
        except NotFound:
            add(result, "status", itip.INVALID_USER)
            out.append(result)
            continue
        texts = await call.run(_busy_texts, call, user["store_id"], start, end, left)
        left -= len(texts)
        add(result, "status", "2.0")
        for one in texts:
            add(result, "item", one)
        out.append(result)
    return out


def _busy_texts(call: Call, store_id: int, start: int, end: int, limit: int) -> list[str]:
    st = call.storage
    restriction = {"and": [{"cmp": ["itemClass", "eq", "IPM.Appointment"]}, {"occurs": [start, end]}]}
    texts: list[str] = []
    for folder in _folders(st, store_id):
        if folder["container_class"] != "calendar":
            continue
        _, table = st.query_items(folder["id"], ["uid", "blob_key"], restriction, limit=limit - len(texts) + 1)
        for key in table["blob_key"]:
            if len(texts) >= limit:
                raise BadRequest(f"more than {limit} events to answer a free-busy request")
            with closing(st.blobs.open(key)) as fp:
                text = fp.read().decode("utf-8", "surrogateescape")
            try:
                texts.append(times_only(text))
            except BadRequest:
                continue  # stored unparsable: it has no busy time to show
    return texts
