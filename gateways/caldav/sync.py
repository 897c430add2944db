"""sync-collection REPORT (RFC 6578) of a calendar for ETags, answered on the reactor.

Clients poll their calendars with sync-collection far more often than they send
anything else, and mostly little has changed. Through Radicale such a poll takes a
worker thread, a listing of the calendar home and a store call. Here, when the
session already knows the calendar (or lists its home once), the poll costs one
store call (getChangedItems, which reads only the changes) and the answer is written
in the form Radicale gives it. Everything else goes to Radicale as usual: the first
sync (no token), properties other than ETag and content type, a limit, a token the
store cannot answer for (Radicale's 403 valid-sync-token) and any store error.
"""
from __future__ import annotations

import logging
import zlib
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree as ET

from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool

from gateways.caldav import listing, storage

log = logging.getLogger("gateways.caldav")

SYNC_COLLECTION = "{DAV:}sync-collection"
SYNC_TOKEN = "{DAV:}sync-token"
SYNC_LEVEL = "{DAV:}sync-level"
PROP = "{DAV:}prop"
# What a poll asks of each item (a REPORT, unlike a PROPFIND, reports an item's
# resourcetype as not found: left to Radicale).
ANSWERED_PROPS = frozenset({listing.GETETAG, listing.GETCONTENTTYPE})
# A poll body is a few hundred bytes; anything much larger is not one.
MAX_BODY = 16 * 1024
# The columns an answer needs of each changed item.
COLUMNS = ("name", "etag", "itemClass")
# Answers with more items than this are written in a worker thread, off the reactor.
INLINE_ROWS = 200
HEAD = b"<?xml version='1.0' encoding='utf-8'?>\n"
GONE = "<response><href>%s</href><status>HTTP/1.1 404 Not Found</status></response>"


def parse(body: bytes) -> tuple[tuple[int, int, int], list[str]] | None:
    """(parsed token, properties) of a sync-collection body answered here, else None."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    if root.tag != SYNC_COLLECTION:
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


def calendar_segment(request: Any, user: str) -> str | None:
    """The calendar URL segment of a request for `/caldav/<user>/<calendar>/`, or None."""
    parts = list(request.postpath)
    if parts and parts[-1] == b"":
        parts.pop()
    if len(parts) != 2:
        return None
    try:
        owner, segment = (p.decode("utf-8") for p in parts)
    except UnicodeDecodeError:
        return None
    if owner != user or not segment or segment in (".", "..") or "/" in segment:
        return None
    return segment


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


class SyncResponder:
    """Answers the sync polls it can; the rest is handed back for Radicale."""

    def __init__(self, reactor: Any, threadpool: Any, script_name: str) -> None:
        self.reactor = reactor
        self.threadpool = threadpool
        self.script_name = script_name

    def answer(self, request: Any, user: str, session: Any) -> defer.Deferred:
        """Fires with True once the request is answered, False if Radicale should answer it."""
        if request.method != b"REPORT":
            return defer.succeed(False)
        segment = calendar_segment(request, user)
        if segment is None:
            return defer.succeed(False)
        content = request.content
        content.seek(0)
        body = content.read(MAX_BODY + 1)
        content.seek(0)
        wanted = parse(body) if len(body) <= MAX_BODY else None
        if wanted is None:
            return defer.succeed(False)
        return defer.ensureDeferred(self._answer(request, user, session, segment, *wanted))

    async def _answer(self, request: Any, user: str, session: Any, segment: str,
                      parsed: tuple[int, int, int], props: list[str]) -> bool:
        try:
            folder = await self._folder(session, segment, parsed[0])
            if folder is None:
                return False
            changes = await folder.changed_items(parsed[2], COLUMNS)
            storage.check_sync_token(parsed, changes)
        except Exception as err:  # noqa: BLE001 - Radicale answers it, with the store's error
            log.debug("caldav: sync poll of %s/%s left to Radicale: %s", user, segment, err)
            return False
        token = storage.sync_token(folder.id, changes.uid_validity, changes.highest_modseq)
        href_prefix = f"{self.script_name}/{user}/{segment}/"
        if len(changes.items) + len(changes.deleted_names) > INLINE_ROWS:
            data = await deferToThreadPool(self.reactor, self.threadpool, write_answer, href_prefix, token,
                                           changes, props)
        else:
            data = write_answer(href_prefix, token, changes, props)
        self._send(request, data)
        return True

    async def _folder(self, session: Any, segment: str, folder_id: int) -> Any:
        """The folder at `segment` if it is the token's, from the session's home as last
        listed, else as listed now."""
        home = storage.HOMES.get(session)
        folder = home.get(segment) if home is not None else None
        if folder is None or folder.id != folder_id:
            home = await storage.list_home(session)
            folder = home.get(segment)
        return folder if folder is not None and folder.id == folder_id else None

    @staticmethod
    def _send(request: Any, data: bytes) -> None:
        if request.finished or request._disconnected:
            return
        request.setResponseCode(207)
        request.setHeader(b"content-type", b"text/xml; charset=utf-8")
        accept = (request.getHeader(b"accept-encoding") or b"").decode("latin-1")
        if "gzip" in [e.strip() for e in accept.split(",")]:
            zcomp = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
            data = zcomp.compress(data) + zcomp.flush()
            request.setHeader(b"content-encoding", b"gzip")
        request.setHeader(b"content-length", str(len(data)).encode())
        request.write(data)
        request.finish()
