"""The access properties of each PROPFIND response, from the caller's folder rights rather
than from Radicale's read/write view: `DAV:current-user-privilege-set` and `DAV:acl`
(RFC 3744, gateways/caldav/privileges.py), `CS:invite`, `CS:allowed-sharing-modes` and the
`CS:shared` resource type of calendars others share (gateways/caldav/sharing.py).

Radicale answers every other property; radicale_glue hands each response here to finish.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from xml.etree import ElementTree as ET

from gateways.caldav import context, privileges, sharing
from shared import rights as R

DAV = "DAV:"
PRIVILEGE_SET = f"{{{DAV}}}current-user-privilege-set"
RESOURCETYPE = f"{{{DAV}}}resourcetype"
ACL = f"{{{DAV}}}acl"
INVITE = f"{{{sharing.CS}}}invite"
SHARING_MODES = f"{{{sharing.CS}}}allowed-sharing-modes"
# Answered here alone; Radicale never sees them asked.
OWN = frozenset({ACL, INVITE, SHARING_MODES})
CALENDAR_CLASSES = ("calendar", "tasks", "journal")
REASONS = {200: "OK", 403: "Forbidden", 404: "Not Found"}


def folder_of(item: Any) -> Any:
    """The store folder of a collection or of an object in one (None for the home and root)."""
    folder = getattr(item, "folder", None)
    if folder is None:
        folder = getattr(getattr(item, "collection", None), "folder", None)
    return folder


def rights_of(ctx: context.RequestContext, item: Any) -> str:
    """The caller's letters on what `item` is: its folder's, every right in their own home,
    lookup and read at the root."""
    folder = folder_of(item)
    if folder is not None:
        return folder.rights
    path = getattr(item, "path", "")
    return R.ALL if path == ctx.user else R.LOOKUP + R.READ


def shared_with_caller(ctx: context.RequestContext, folder: Any) -> bool:
    return folder is not None and (getattr(folder.store, "public", False)
                                   or (folder.owner is not None and folder.owner != ctx.user))


def complete(ctx: context.RequestContext, response: ET.Element, item: Any, asked: Iterable[str],
             root: str) -> None:
    """Put the caller's privileges into Radicale's `response` for `item`, and answer the
    properties of OWN that were `asked`."""
    rights = rights_of(ctx, item)
    folder = folder_of(item)
    for prop in response.iter(f"{{{DAV}}}prop"):
        for element in prop:
            if element.tag == PRIVILEGE_SET:
                element[:] = list(privileges.privilege_set(PRIVILEGE_SET, rights))
            elif element.tag == RESOURCETYPE and shared_with_caller(ctx, folder) and item is not None \
                    and getattr(item, "folder", None) is folder:
                ET.SubElement(element, f"{{{sharing.CS}}}shared")
    by_status: dict[int, list[ET.Element]] = {}
    for tag in asked:
        status, element = _own_property(ctx, tag, item, folder, rights, root)
        by_status.setdefault(status, []).append(element)
    for status, elements in by_status.items():
        _add(response, status, elements)


def _own_property(ctx: context.RequestContext, tag: str, item: Any, folder: Any, rights: str,
                  root: str) -> tuple[int, ET.Element]:
    collection = folder is not None and getattr(item, "folder", None) is folder
    if tag == SHARING_MODES:
        if not collection or folder.container_class not in CALENDAR_CLASSES:
            return 404, ET.Element(tag)
        return 200, sharing.sharing_modes(rights)
    if folder is None:
        return 404, ET.Element(tag)
    if tag == ACL and not R.has(rights, R.ADMIN):
        return 403, ET.Element(tag)  # RFC 3744 §5.5: reading the ACL takes DAV:read-acl
    if tag == INVITE and not collection:
        return 404, ET.Element(tag)
    entries = [(e.identifier, e.rights) for e in ctx.call(folder.acl)]
    owner = folder.owner if shared_with_caller(ctx, folder) else ctx.user
    if getattr(folder.store, "public", False):
        owner = None
    if tag == ACL:
        return 200, privileges.acl_element(root, owner, entries)
    return 200, sharing.invite_element(root, owner, entries)


def _add(response: ET.Element, status: int, elements: list[ET.Element]) -> None:
    status_line = f"HTTP/1.1 {status} {REASONS[status]}"
    for propstat in response.iter(f"{{{DAV}}}propstat"):
        if propstat.findtext(f"{{{DAV}}}status") == status_line:
            propstat.find(f"{{{DAV}}}prop").extend(elements)
            return
    propstat = ET.SubElement(response, f"{{{DAV}}}propstat")
    ET.SubElement(propstat, f"{{{DAV}}}prop").extend(elements)
    ET.SubElement(propstat, f"{{{DAV}}}status").text = status_line
