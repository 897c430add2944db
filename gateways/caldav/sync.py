"""sync-collection REPORT (RFC 6578) of a calendar for ETags, answered on the reactor
(see `direct`): one getChangedItems call, which reads only the changes.

Left to Radicale: the first sync (no token), properties other than ETag and content
type, a limit, a sync-level other than 1, and a token the store cannot answer for
(Radicale's 403 valid-sync-token).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from xml.etree import ElementTree as ET

from gateways.caldav import listing, storage

if TYPE_CHECKING:
    from gateways.caldav.direct import Report

ROOT = "{DAV:}sync-collection"
SYNC_TOKEN = "{DAV:}sync-token"
SYNC_LEVEL = "{DAV:}sync-level"
PROP = "{DAV:}prop"
# What a poll asks of each item (a REPORT, unlike a PROPFIND, reports an item's
# resourcetype as not found: left to Radicale).
ANSWERED_PROPS = frozenset({listing.GETETAG, listing.GETCONTENTTYPE})
# The columns an answer needs of each changed item.
COLUMNS = ("name", "etag", "itemClass")
HEAD = b"<?xml version='1.0' encoding='utf-8'?>\n"
GONE = "<response><href>%s</href><status>HTTP/1.1 404 Not Found</status></response>"


def parse(root: ET.Element) -> tuple[tuple[int, int, int], list[str]] | None:
    """(parsed token, properties) of a sync-collection answered here, else None."""
    if root.tag != ROOT:
        return None
    token: tuple[int, int, int] | None = None
    props: list[str] | None = None
    for child in root:
        if child.tag == SYNC_TOKEN:
            token = storage.parse_sync_token((child.text or "").strip())
        elif child.tag == SYNC_LEVEL:
            if (child.text or "").strip() != "1":
                return None
        elif child.tag == PROP:
            props = [el.tag for el in child]
        else:  # a limit, or something newer than this module
            return None
    if token is None or not props or any(p not in ANSWERED_PROPS for p in props):
        return None
    return token, props


async def answer(report: "Report", root: ET.Element) -> bytes | None:
    wanted = parse(root)
    if wanted is None:
        return None
    parsed, props = wanted
    folder = await report.folder(parsed[0])
    if folder is None:
        return None
    changes = await folder.changed_items(parsed[2], COLUMNS)
    storage.check_sync_token(parsed, changes)
    token = storage.sync_token(folder.id, changes.uid_validity, changes.highest_modseq)
    return await report.write(len(changes.items) + len(changes.deleted_names), write_answer,
                              report.href_prefix, token, changes, props)


def write_answer(href_prefix: str, token: str, changes: Any, props: list[str]) -> bytes:
    """The multistatus Radicale writes for these changes: the deleted items' 404s first,
    then the changed items in uid order."""
    changed = [(item.name, item.etag, item.get("itemClass")) for item in changes.items if item.name]
    names = {name for name, _, _ in changed}
    gone = [n for n in dict.fromkeys(changes.deleted_names.values()) if n not in names]
    parts = [HEAD, b'<multistatus xmlns="DAV:"><sync-token>', listing.xml_text(token).encode("utf-8"),
             b"</sync-token>"]
    parts.extend((GONE % quote(href_prefix + name)).encode("utf-8") for name in gone)
    parts.append(listing.item_responses(href_prefix, changed, props))
    parts.append(b"</multistatus>")
    return b"".join(parts)
