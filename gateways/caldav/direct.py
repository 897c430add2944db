"""REPORTs answered on the reactor, without a worker thread and without Radicale.

Clients poll their calendars (sync-collection) and fetch what changed (calendar-multiget)
far more often than they send anything else. Through Radicale each such request takes
a worker thread, a listing of the calendar home and a store call. Here, when the
session already knows the calendar (or lists its home once), it costs one store call,
and the answer is written in the form Radicale gives it. Only the plain forms are
answered here (see `sync` and `multiget`); every other request, any store error and
anything unexpected go to Radicale as usual, which answers them as it always does.
"""
from __future__ import annotations

import logging
import zlib
from collections.abc import Awaitable, Callable
from typing import Any
from xml.etree import ElementTree as ET

from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool

from gateways.caldav import multiget, storage, sync
from gateways.caldav.xmlbody import xml_root

log = logging.getLogger("gateways.caldav")

# Bodies of the requests answered here are small; a larger one goes to Radicale.
MAX_BODY = 256 * 1024
# Answers with more items than this are written in a worker thread, off the reactor.
INLINE_ROWS = 200


class Report:
    """What a handler needs: where the calendar is, the session's folder for it, and a
    way to write a large answer off the reactor."""

    def __init__(self, answers: "DirectAnswers", session: Any, user: str, segment: str,
                 script_name: str) -> None:
        self.answers = answers
        self.session = session
        self.user = user
        self.segment = segment
        self.href_prefix = f"{script_name}/{user}/{segment}/"

    async def folder(self, folder_id: int | None = None) -> Any:
        """The folder at the request's URL, from the session's home as last listed (listed
        again when it is not there, or is not the folder `folder_id` names), or None."""
        home = storage.HOMES.get(self.session)
        folder = home.get(self.segment) if home is not None else None
        if folder is None or (folder_id is not None and folder.id != folder_id):
            home = await storage.list_home(self.session)
            folder = home.get(self.segment)
        if folder is None or (folder_id is not None and folder.id != folder_id):
            return None
        return folder

    async def write(self, rows: int, fn: Callable[..., bytes], *args: Any) -> bytes:
        if rows > INLINE_ROWS:
            return await deferToThreadPool(self.answers.reactor, self.answers.threadpool, fn, *args)
        return fn(*args)


Handler = Callable[[Report, ET.Element], Awaitable["bytes | None"]]
HANDLERS: dict[str, Handler] = {sync.ROOT: sync.answer, multiget.ROOT: multiget.answer,
                                multiget.ADDRESS_BOOK.root: multiget.answer_address_book}


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


class DirectAnswers:
    """Answers the REPORTs it can; the rest is handed back for Radicale."""

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
        if len(body) > MAX_BODY:
            return defer.succeed(False)
        root = xml_root(body)
        handler = HANDLERS.get(root.tag) if root is not None else None
        if handler is None:
            return defer.succeed(False)
        # The root the client used (/caldav or /carddav) prefixes the hrefs of the answer.
        script_name = "/" + b"/".join(request.prepath).decode("utf-8", "replace") if request.prepath \
            else self.script_name
        report = Report(self, session, user, segment, script_name)
        return defer.ensureDeferred(self._answer(request, handler, report, root))

    async def _answer(self, request: Any, handler: Handler, report: Report, root: ET.Element) -> bool:
        try:
            data = await handler(report, root)
        except Exception as err:  # noqa: BLE001 - Radicale answers it, with the store's error
            log.debug("caldav: REPORT of %s/%s left to Radicale: %s", report.user, report.segment, err)
            return False
        if data is None:
            return False
        self._send(request, data)
        return True

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
