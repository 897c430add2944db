"""The schedule inbox and outbox (RFC 6638 sections 2.1, 2.2) and the principal's
scheduling properties (section 2.4): schedule-inbox-URL, schedule-outbox-URL,
calendar-user-address-set (the user's e-mail address as `mailto:`), calendar-user-type
and schedule-default-calendar-URL.

The inbox is the store folder of class `schedule-inbox` at `<user>/schedule-inbox/` (made
when first asked for); the outbox at `<user>/schedule-outbox/` holds nothing, it is only
POSTed to (gateways/caldav/scheduling/outbox.py). Neither is listed in the calendar home.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from gateways.caldav import context
from gateways.caldav.scheduling.identity import own_addresses
from gateways.caldav.radicale_glue import PROPFIND_AMENDERS, Item
from gateways.caldav.scheduling import tags
from gateways.caldav.storage import FolderCollection, PrincipalCollection, calendars_of
from shared.errors import Conflict, Forbidden

INBOX = "schedule-inbox"
OUTBOX = "schedule-outbox"
INBOX_CLASS = "schedule-inbox"
INBOX_FOLDER_NAME = "Scheduling Inbox"
DAV, CALDAV = "DAV:", "urn:ietf:params:xml:ns:caldav"
SCHEDULE_INBOX_URL = f"{{{CALDAV}}}schedule-inbox-URL"
SCHEDULE_OUTBOX_URL = f"{{{CALDAV}}}schedule-outbox-URL"
ADDRESS_SET = f"{{{CALDAV}}}calendar-user-address-set"
USER_TYPE = f"{{{CALDAV}}}calendar-user-type"
DEFAULT_CALENDAR_URL = f"{{{CALDAV}}}schedule-default-calendar-URL"
RESOURCETYPE = f"{{{DAV}}}resourcetype"
HREF = f"{{{DAV}}}href"


class InboxCollection(FolderCollection):
    """The schedule inbox: the iTIP messages the user received, to read and delete."""

    def get_meta(self, key: str | None = None) -> Any:
        meta = {"tag": "VCALENDAR", "D:displayname": "Scheduling Inbox",
                "C:supported-calendar-component-set": "VEVENT,VTODO"}
        return meta if key is None else meta.get(key)

    def set_meta(self, props: Mapping[str, str]) -> None:
        raise ValueError("the schedule inbox has no properties to set")

    def upload(self, href: str, item: Any) -> Any:
        """Only scheduling puts messages here (RFC 6638 section 2.2): a client's PUT is 403."""
        self.ctx.error = Forbidden("the schedule inbox takes no objects from clients")
        raise self.ctx.error


class OutboxCollection(PrincipalCollection):
    """The schedule outbox: free-busy requests are POSTed to it; it holds no items."""

    def __init__(self, user: str) -> None:
        self._path = f"{user}/{OUTBOX}"

    @property
    def etag(self) -> str:
        return '"outbox"'

    def get_meta(self, key: str | None = None) -> Any:
        # A leaf collection for Radicale (read right "r"); its resourcetype is amended below.
        meta = {"tag": "VCALENDAR", "D:displayname": "Scheduling Outbox",
                "C:supported-calendar-component-set": "VEVENT,VTODO"}
        return meta if key is None else meta.get(key)

    def list_items(self) -> list[Any]:
        return []

    def sync(self, old_token: str = "") -> tuple[str, list[str]]:
        return "http://groupware.invalid/ns/sync/outbox", []


def inbox_folder(ctx: context.RequestContext) -> Any:
    """The user's schedule inbox folder, made when it does not exist yet."""
    store = ctx.session.store()
    for _ in range(2):
        for folder in ctx.call(store.folders, counts=False):
            if folder.container_class == INBOX_CLASS:
                return folder
        try:
            return ctx.call(store.create_folder, INBOX_FOLDER_NAME, None, INBOX_CLASS)
        except Conflict:
            continue  # made meanwhile (a delivery): found by the next listing
    raise Conflict("the schedule inbox could not be made")


def special_collection(ctx: context.RequestContext, user: str, segment: str) -> Any:
    """The inbox or outbox collection a path segment names, or None."""
    if segment == OUTBOX:
        return OutboxCollection(user)
    if segment == INBOX:
        return InboxCollection(ctx, user, INBOX, inbox_folder(ctx))
    return None


def _href(base_prefix: str, *segments: str) -> str:
    return base_prefix + "/" + "/".join(quote(s) for s in segments) + "/"


def _default_calendar(ctx: context.RequestContext) -> str | None:
    return next((segment for segment, folder in calendars_of(ctx).items()
                 if folder.container_class == "calendar" and folder.store_id == folder.session.store_id), None)


def _values(ctx: context.RequestContext, user: str, base_prefix: str, principal: bool) -> dict[str, Any]:
    """Each scheduling property a collection has: a list of hrefs or a text."""
    values: dict[str, Any] = {}
    default = _default_calendar(ctx)
    if principal:
        values[SCHEDULE_INBOX_URL] = [_href(base_prefix, user, INBOX)]
        values[SCHEDULE_OUTBOX_URL] = [_href(base_prefix, user, OUTBOX)]
        values[USER_TYPE] = "INDIVIDUAL"
    if default is not None:
        values[DEFAULT_CALENDAR_URL] = [_href(base_prefix, user, default)]
    return values


def amend_propfind(response: ET.Element, item: Any, base_prefix: str) -> None:
    """Add the scheduling properties Radicale does not know to its <response> for `item`
    (moved from its 404 propstat to the 200 one): the principal's, the inbox's and outbox's
    resource types, and an object's CALDAV:schedule-tag."""
    ctx = context.bound()
    if ctx is None:
        return
    if isinstance(item, Item):
        found, missing = _propstats(response)
        prop = tags.amend_item(response, item, missing, found)
        if prop is not None:
            _move(response, found, missing, [prop])
        return
    principal = type(item) is PrincipalCollection and item.path == ctx.user
    inbox = isinstance(item, InboxCollection)
    outbox = isinstance(item, OutboxCollection)
    if not (principal or inbox or outbox):
        return
    found, missing = _propstats(response)
    if principal:
        for prop in found.iter(ADDRESS_SET) if found is not None else ():
            # First, and marked preferred (as iCloud does): clients take it as the user's address.
            for n, address in enumerate(sorted(own_addresses(ctx))):
                href = ET.Element(HREF, {"preferred": "1"})
                href.text = f"mailto:{address}"
                prop.insert(n, href)
    if inbox or outbox:
        for prop in found.iter(RESOURCETYPE) if found is not None else ():
            for child in list(prop):
                if child.tag == f"{{{CALDAV}}}calendar":
                    prop.remove(child)
            ET.SubElement(prop, f"{{{CALDAV}}}{INBOX if inbox else OUTBOX}")
    if missing is None:
        return
    values = _values(ctx, ctx.user, base_prefix, principal)
    filled = []
    for prop in [p for p in missing if p.tag in values]:
        missing.remove(prop)
        value = values[prop.tag]
        if isinstance(value, list):
            for href in value:
                ET.SubElement(prop, HREF).text = href
        else:
            prop.text = value
        filled.append(prop)
    _move(response, found, missing, filled)


def _move(response: ET.Element, found: Any, missing: Any, props: list[ET.Element]) -> None:
    """Put `props` (taken out of the 404 <prop> `missing`) into the 200 <prop> `found`,
    made when absent; an emptied 404 propstat goes."""
    if not props:
        return
    if found is None:
        found = _new_propstat(response)
    found.extend(props)
    if missing is not None and len(missing) == 0:
        for propstat in list(response.iter(f"{{{DAV}}}propstat")):
            if propstat.find(f"{{{DAV}}}prop") is missing:
                response.remove(propstat)
                break


def _propstats(response: ET.Element) -> tuple[Any, Any]:
    """The <prop> of the 200 propstat and of the 404 one (None when absent)."""
    found = missing = None
    for propstat in response.iter(f"{{{DAV}}}propstat"):
        status = propstat.findtext(f"{{{DAV}}}status") or ""
        prop = propstat.find(f"{{{DAV}}}prop")
        if " 200 " in status:
            found = prop
        elif " 404 " in status:
            missing = prop
    return found, missing


def _new_propstat(response: ET.Element) -> ET.Element:
    propstat = ET.SubElement(response, f"{{{DAV}}}propstat")
    prop = ET.SubElement(propstat, f"{{{DAV}}}prop")
    ET.SubElement(propstat, f"{{{DAV}}}status").text = "HTTP/1.1 200 OK"
    return prop


PROPFIND_AMENDERS.append(amend_propfind)
