"""sync-collection REPORT (RFC 6578): our sync tokens, and both ways a sync is answered.

The fast path (`answer`) answers a poll for ETags on the reactor (see `direct`): one
getChangedItems call, which reads only the changes. Everything else, the first sync (no
token), properties other than ETag and content type, a limit, a sync-level other than 1,
and a token the store cannot answer for (Radicale's 403 valid-sync-token), is left to
Radicale, which asks the collection (`collection_changes`, the general path).
"""
from __future__ import annotations

import re
from collections.abc import Iterable
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
SYNC_TOKEN_PREFIX = "http://groupware.invalid/ns/sync/"
_SYNC_TOKEN = re.compile(r"^%s(\d+)-(\d+)-(\d+)$" % re.escape(SYNC_TOKEN_PREFIX))
HEAD = b"<?xml version='1.0' encoding='utf-8'?>\n"
GONE = "<response><href>%s</href><status>HTTP/1.1 404 Not Found</status></response>"


def sync_token(folder_id: int, uid_validity: int, modseq: int) -> str:
    return f"{SYNC_TOKEN_PREFIX}{folder_id}-{uid_validity}-{modseq}"


def parse_sync_token(token: str) -> tuple[int, int, int] | None:
    """(folder id, uidvalidity, modseq) of one of our tokens, or None."""
    match = _SYNC_TOKEN.match(token)
    return (int(match.group(1)), int(match.group(2)), int(match.group(3))) if match else None


def check_sync_token(parsed: tuple[int, int, int], changes: Any) -> None:
    """ValueError (Radicale's answer: 403 valid-sync-token) when the changes the store
    gave cannot be answered for this token."""
    _, uid_validity, since = parsed
    if uid_validity != changes.uid_validity:
        raise ValueError("unknown sync token")
    if since > changes.highest_modseq:
        raise ValueError("sync token from the future")
    if changes.expired:
        raise ValueError("sync token expired")


def parse(root: ET.Element) -> tuple[tuple[int, int, int], list[str]] | None:
    """(parsed token, properties) of a sync-collection answered here, else None."""
    if root.tag != ROOT:
        return None
    token: tuple[int, int, int] | None = None
    props: list[str] | None = None
    for child in root:
        if child.tag == SYNC_TOKEN:
            token = parse_sync_token((child.text or "").strip())
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
    check_sync_token(parsed, changes)
    token = sync_token(folder.id, changes.uid_validity, changes.highest_modseq)
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


def collection_changes(collection: Any, old_token: str = "") -> tuple[str, Iterable[str]]:
    """The general path, for Radicale (`storage.Collection.sync`): the first sync (every
    item), or the changes since `old_token`, whose items the collection keeps for the
    multiget Radicale makes next. Tokens name the folder, its uidvalidity and a modseq, so they survive restarts;
    the answer costs in proportion to the changes since the token."""
    f = collection.folder
    if not old_token:
        return sync_token(f.id, f.uid_validity, f.highest_modseq), [item.href for item in collection.list_items()]
    parsed = parse_sync_token(old_token)
    if parsed is None or parsed[0] != f.id:
        raise ValueError("unknown sync token")
    # The changed items, with their cached fields and text (Radicale asks for these
    # very items next), and the deletions come in one store call.
    changes = collection.ctx.call(f.changed_items, parsed[2], list(storage.ITEM_COLUMNS) + ["source"])
    check_sync_token(parsed, changes)
    token = sync_token(f.id, changes.uid_validity, changes.highest_modseq)
    hrefs = []
    for item in (collection._item(r, r.text) for r in changes.items):
        if item.href:
            collection._synced[item.href] = item
            hrefs.append(item.href)
    gone = [n for n in changes.deleted_names.values() if n not in collection._synced]
    collection._synced_gone.update(gone)
    hrefs.extend(gone)
    return token, hrefs
