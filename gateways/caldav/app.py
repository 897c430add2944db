"""The HTTP side of the CalDAV/iCal gateway: twisted.web in front of Radicale.

The resource does what must not cost a thread or must happen before a body is
read: size limits (413 before reading), Basic authentication through the login
service (`shared.login`, whose delay after failures is a reactor timer) and the
session cache on top of it, hostile-XML refusal, URL mapping (`/caldav/...`,
`/carddav/...`, `/ical/<user>/<calendar>`, `/.well-known/caldav` and
`/.well-known/carddav`, principal discovery on any other path). Then it hands the
request to Radicale in a WSGI thread, and maps store errors Radicale could not express
(503, 403, 409) back.
"""
from __future__ import annotations

import base64
import binascii
import logging
import re
import secrets
from xml.sax.saxutils import escape
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.web import resource, server
from twisted.web.wsgi import WSGIResource

from gateways.caldav import addressbooks
from gateways.caldav import auth as auth_plugin
from gateways.caldav import properties
from gateways.caldav import (context, direct, feed_import, listing, radicale_glue, recurrence, rights, sharing,
                             storage)
from gateways.caldav import limits as request_limits
from gateways.caldav.scheduling import collections as scheduling_collections
from gateways.caldav.scheduling import outbox as scheduling_outbox
from gateways.caldav.scheduling import tags as scheduling_tags
from gateways.caldav.date_limits import DateLimits, refusal
from gateways.caldav.series_limit import PRECONDITION as MAX_INSTANCES, SeriesLimit
from gateways.caldav.feed import feed_etag, feed_text
from gateways.caldav.sessions import SessionCache
from gateways.caldav.xmlbody import request_body, xml_root
from shared.budget import BudgetExhausted, BudgetRegistry, WorkBudget, WorkCancelled, run_under, working_under
from shared.fair_share import FairShare
from shared.errors import (PRECONDITION_FAILED, UID_CONFLICT, AuthFailed, BadRequest, Conflict, Forbidden,
                           GroupwareError, NotFound, Quota, SessionInvalid, StorageFull, TooLarge, Unavailable)
from shared.login import LoginRefused, Outcome, plaintext_login_allowed

log = logging.getLogger("gateways.caldav")

CALDAV_ROOT = "/caldav"
# The same home under the URL Kopano's kDAV gave address books (answers name this root).
CARDDAV_ROOT = "/carddav"
ICAL_ROOT = "/ical"
PUBLISHED_ROOT = "/ical/published/"
REALM = "Groupware CalDAV"
CONTEXT_HEADER = b"x-groupware-context"
# Methods whose body is XML, checked before parsing (gateways/caldav/limits.py).
XML_METHODS = frozenset({b"PROPFIND", b"PROPPATCH", b"REPORT", b"MKCALENDAR", b"MKCOL"})
# RFC 4791 §7.8 (calendar-query) and §7.10 (free-busy-query) postcondition, with RFC 4918's
# 507: answering would take more than the server gives one request.
TOO_MUCH_WORK = (b'<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:">'
                 b'<D:number-of-matches-within-limits/></D:error>')
# RFC 4331 section 6: the write would exceed the user's quota (the store's quota fault).
QUOTA_NOT_EXCEEDED = (b'<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:">'
                      b'<D:quota-not-exceeded/></D:error>')
NO_UID_CONFLICT = (b'<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:" '
                   b'xmlns:C="urn:ietf:params:xml:ns:caldav"><C:no-uid-conflict/></D:error>')
PUBLISH_ACTIONS = {"{%s}publish-calendar" % properties.CS: True, "{%s}unpublish-calendar" % properties.CS: False}
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
UNAVAILABLE_TEXT = "the store is unavailable, try again later\n"
# StorageFull: the store's disk is full, 507 Insufficient Storage (RFC 4918 section 11.5).
STATUS_FOR_ERROR: dict[type, int] = {Unavailable: 503, Forbidden: 403, NotFound: 404, Conflict: 409,
                                     TooLarge: 413, BadRequest: 400, AuthFailed: 401, SessionInvalid: 401,
                                     StorageFull: 507}


def publish_action(body: bytes) -> bool | None:
    """What a POST to a calendar asks: True to publish it, False to unpublish it, None
    when its body is neither `<CS:publish-calendar/>` nor `<CS:unpublish-calendar/>`."""
    root = xml_root(body)
    return PUBLISH_ACTIONS.get(root.tag) if root is not None else None


class LimitedRequest(server.Request):
    """Refuses a body longer than the site's limit before reading it: by Content-Length
    when given, else while chunks arrive."""

    _too_large = False
    _received = 0

    def _limit(self) -> int:
        return self.channel.site.max_request_size

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self._limit():
            self._refuse()
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._too_large:
            return
        self._received += len(data)
        if self._received > self._limit():
            self._refuse()
            return
        super().handleContentChunk(data)

    def _refuse(self) -> None:
        if self._too_large:
            return
        self._too_large = True
        log.info("caldav: request body over %d bytes refused from %s", self._limit(),
                 self.getClientAddress().host)
        transport = self.channel.transport
        transport.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: text/plain\r\n"
                        b"Content-Length: 18\r\nConnection: close\r\n\r\nrequest too large\n")
        transport.loseConnection()

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._too_large:
            return
        super().requestReceived(command, path, version)


class CalDAVSite(server.Site):
    """The HTTP(S) site: bodies bounded (LimitedRequest), idle connections closed after
    `timeout` seconds, connections per address counted by `limits` (shared.connlimits)."""

    requestFactory = LimitedRequest

    def __init__(self, root: resource.Resource, max_request_size: int, timeout: float = 60,
                 limits: Any = None, retry_after: int = 30) -> None:
        super().__init__(root, timeout=timeout or None)
        self.max_request_size = max_request_size
        self.displayTracebacks = False
        self.limits = limits
        text = "too many connections from your address, try again later\n"
        self.refusal = (f"HTTP/1.1 503 Service Unavailable\r\nRetry-After: {retry_after}\r\n"
                        f"Content-Type: text/plain\r\nContent-Length: {len(text)}\r\nConnection: close\r\n\r\n"
                        f"{text}").encode("ascii")

    def buildProtocol(self, addr: Any) -> Any:
        if self.limits is None:
            return super().buildProtocol(addr)
        return self.limits.connection(self, super().buildProtocol, addr, self.refusal, "caldav")

    def log(self, request: Any) -> None:
        """No access log of our own: Radicale already logs each request."""


class GatewayResource(resource.Resource):
    """Every path of the gateway; routing is by prefix, not by child resources."""

    isLeaf = True

    def __init__(self, reactor: Any, threadpool: Any, adapter: Any, sessions: SessionCache,
                 plaintext_auth: bool, retry_after: int, max_request_size: int,
                 limits: request_limits.RequestLimits = request_limits.RequestLimits(),
                 time_limit: float = 0, max_instances: int = 100000,
                 date_limits: DateLimits | None = None, threads_per_user: int = 0, web: Any = None,
                 max_query_instances: int = 10000, scheduler: Any = None,
                 series_limit: SeriesLimit | None = None) -> None:
        super().__init__()
        # The onboarding page and autoconfiguration (gateways.web.resource.WebPages), or None.
        self.web = web
        self.limits = limits
        self.reactor = reactor
        self.threadpool = threadpool
        self.adapter = adapter
        self.sessions = sessions
        self.plaintext_auth = plaintext_auth
        self.retry_after = retry_after
        self.contexts: dict[str, context.RequestContext] = {}
        # Seconds of thread work a request may take, and the budgets of requests in progress.
        self.time_limit = time_limit
        # Recurrence instances one answer may hold (RequestContext.count_instances).
        self.max_query_instances = max_query_instances
        self.budgets = BudgetRegistry()
        # Implicit scheduling and the outbox (gateways/caldav/scheduling/), or None: off.
        self.scheduler = scheduler
        if scheduler is not None:
            radicale_glue.advertise("calendar-auto-schedule")  # RFC 6638 section 5.1
        self.date_limits = date_limits or DateLimits()
        # CALDAV:max-instances, checked on each object PUT.
        self.series_limit = series_limit or SeriesLimit()
        self.thread_share = FairShare(threads_per_user)
        app = radicale_glue.make_application(storage.Storage, auth_plugin.Auth, rights.Rights,
                                             max_request_size, REALM, max_instances)
        self.radicale = app
        self.wsgi = WSGIResource(reactor, threadpool, self._wsgi_app)
        self.direct = direct.DirectAnswers(reactor, threadpool, CALDAV_ROOT)

    # -- routing
    def render(self, request: server.Request) -> Any:
        path = request.path.decode("latin-1")
        if b"\x00" in request.path or "%00" in path:
            return self._plain(request, 400, "bad path\n")
        if self.web is not None and self.web.handles(request):
            return self.web.render(request)
        well_known = {"/.well-known/caldav": CALDAV_ROOT, "/.well-known/carddav": CARDDAV_ROOT}.get(path.rstrip("/"))
        if well_known is not None:
            request.setResponseCode(301)
            request.setHeader(b"location", (well_known + "/").encode())
            return b""
        if path.startswith("/.well-known/"):
            return self._plain(request, 404, "not found\n")
        if path.startswith(PUBLISHED_ROOT):
            return self._published(request, path[len(PUBLISHED_ROOT):].removesuffix(".ics"))
        if path.startswith(ICAL_ROOT + "/"):
            if request.method not in (b"GET", b"HEAD", b"PUT"):
                return self._plain(request, 405, "GET or PUT a whole calendar here\n")
            rest = [p for p in request.postpath[1:] if p]
            if len(rest) != 2:
                return self._plain(request, 404, "expected /ical/<user>/<calendar>\n")
            if request.method == b"PUT" and not addressbooks.is_vcard_upload(request.getHeader(b"content-type")):
                request.calendar_import = rest
            # The whole calendar is the collection; Radicale serves and replaces it.
            request.prepath, request.postpath = [CALDAV_ROOT[1:].encode()], rest + [b""]
        elif any(path == root or path.startswith(root + "/") for root in (CALDAV_ROOT, CARDDAV_ROOT)):
            request.prepath, request.postpath = request.postpath[:1], request.postpath[1:]
            segments = [p for p in request.postpath if p]
            if (request.method == b"PUT" and len(segments) == 2 and not path.endswith((".ics", ".vcf"))
                    and not addressbooks.is_vcard_upload(request.getHeader(b"content-type"))):
                # A whole calendar: updated by difference, as at /ical/.
                request.calendar_import = segments
            elif request.method == b"POST" and len(segments) == 2 and segments[1] == scheduling_collections.OUTBOX.encode():
                # A free-busy request (RFC 6638 section 6.2), answered here.
                request.schedule_post = segments
            elif request.method == b"POST" and len(segments) == 2:
                # publish-calendar / unpublish-calendar (calendarserver.org), answered here.
                request.calendar_post = segments
        elif request.method in (b"PROPFIND", b"OPTIONS"):
            # Clients probe the server root (or any path) for current-user-principal.
            request.prepath, request.postpath = [CALDAV_ROOT[1:].encode()], [b""]
        else:
            return self._plain(request, 404, "not found\n")
        try:
            request_limits.check_depth(request.method, request.getHeader(b"depth"))
            if request.method in XML_METHODS or getattr(request, "calendar_post", None) is not None:
                self.limits.check_xml(request.content)
        except request_limits.Refused as refused:
            if refused.code == 403:
                request.setResponseCode(403)
                request.setHeader(b"content-type", b"application/xml; charset=utf-8")
                return request_limits.FINITE_DEPTH
            return self._plain(request, refused.code, refused.text)
        self._authenticate(request)
        return server.NOT_DONE_YET

    # -- published calendars (no login: the secret in the URL is the credential)
    def _published(self, request: server.Request, token: str) -> Any:
        if request.method not in (b"GET", b"HEAD"):
            return self._plain(request, 405, "a published calendar is read-only\n")
        d = self.adapter.read_published_calendar(token)

        def render(calendar: dict[str, Any]) -> Any:
            etag = feed_etag(e for _, e, _ in calendar["items"])
            request.setHeader(b"etag", etag.encode())
            request.setHeader(b"cache-control", b"private, max-age=300")
            if request.getHeader(b"if-none-match") == etag.encode():
                self._finish(request, 304, "")
                return None
            name = calendar["display_name"] or calendar["name"]
            texts = [text for _, _, text in calendar["items"]]
            built = deferToThreadPool(self.reactor, self.threadpool, feed_text, name, calendar["description"], texts)
            return built.addCallback(lambda text: self._send_feed(request, text))

        def failed(failure: Any) -> None:
            if failure.check(NotFound):
                self._finish(request, 404, "not found\n")
            elif failure.check(Unavailable):
                self._unavailable(request)
            else:
                self._internal_error(failure, request)
        d.addCallback(render).addErrback(failed)
        return server.NOT_DONE_YET

    def _send_feed(self, request: server.Request, text: str) -> None:
        if request.finished or request._disconnected:
            return
        request.setHeader(b"content-type", b"text/calendar; charset=utf-8")
        request.setHeader(b"content-disposition", b'attachment; filename="calendar.ics"')
        data = text.encode("utf-8")
        request.setHeader(b"content-length", str(len(data)).encode())
        if request.method != b"HEAD":
            request.write(data)
        request.finish()

    def _plain(self, request: server.Request, code: int, text: str,
               headers: Iterable[tuple[bytes, bytes]] = ()) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        for name, value in headers:
            request.setHeader(name, value)
        return text.encode()

    def _finish(self, request: server.Request, code: int, text: str,
                headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
        if request.finished or request._disconnected:
            return
        body = self._plain(request, code, text, headers)
        if request.method != b"HEAD":
            request.write(body)
        request.finish()

    def _finish_xml(self, request: server.Request, code: int, body: bytes) -> None:
        if request.finished or request._disconnected:
            return
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"application/xml; charset=utf-8")
        request.write(body)
        request.finish()

    def _unavailable(self, request: server.Request) -> None:
        """503 with Retry-After: the store could not answer, the client should come back."""
        self._finish(request, 503, UNAVAILABLE_TEXT, [(b"retry-after", str(self.retry_after).encode())])

    # -- authentication
    def _credentials(self, request: server.Request) -> tuple[str, str] | None:
        header = request.getHeader(b"authorization") or b""
        scheme, _, value = header.partition(b" ")
        if scheme.lower() != b"basic":
            return None
        try:
            user, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return (user, password) if sep and user else None

    def _challenge(self, request: server.Request, text: str = "authentication required\n") -> None:
        self._finish(request, 401, text, [(b"www-authenticate", f'Basic realm="{REALM}"'.encode())])

    def _authenticate(self, request: server.Request) -> None:
        address = request.getClientAddress().host
        if not plaintext_login_allowed(request.isSecure(), self.plaintext_auth, address):
            self._finish(request, 403, "log in over https\n")
            return
        credentials = self._credentials(request)
        if credentials is None:
            self._challenge(request)
            return
        user, password = credentials
        d = self.sessions.logon(user, password, address)
        d.addCallbacks(lambda session: self._authenticated(request, user, session),
                       lambda failure: self._login_refused(request, failure))
        d.addErrback(self._internal_error, request)

    def _login_refused(self, request: server.Request, failure: Any) -> None:
        failure.trap(LoginRefused)
        refused = failure.value
        outcome = refused.outcome
        if outcome is Outcome.BANNED:
            self._finish(request, 429, "too many failed logins from your address\n",
                         [(b"retry-after", str(int(refused.retry_after) + 1).encode())])
        elif outcome is Outcome.UNAVAILABLE:
            self._unavailable(request)
        elif outcome is Outcome.DISABLED:
            # The password was right; CalDAV is switched off for this user.
            self._challenge(request, "CalDAV is disabled for this account\n")
        else:
            self._challenge(request)

    def _authenticated(self, request: server.Request, user: str, session: Any) -> None:
        if request.finished or request._disconnected:
            return
        token = secrets.token_hex(16)
        budget = self.budgets.open(self.time_limit)
        ctx = self.contexts[token] = context.RequestContext(self.reactor, session, user, budget)
        ctx.base_url = self._base_url(request)
        ctx.date_limits = self.date_limits
        ctx.series_limit = self.series_limit
        ctx.max_instances = self.max_query_instances
        ctx.scheduler = self.scheduler
        request.requestHeaders.removeHeader(b"authorization")
        request.requestHeaders.setRawHeaders(CONTEXT_HEADER, [token.encode()])

        # The session stays logged on until this request's answer is out, whatever the
        # cache does with it meanwhile (expiry, another password, eviction).
        self.sessions.hold(session)

        def finished(result: Any) -> None:
            if result is not None:  # the connection was lost before the answer was out
                budget.cancel()
            self.budgets.close(budget)
            self.contexts.pop(token, None)
            self.sessions.release(session)
        request.notifyFinish().addBoth(finished)
        target = getattr(request, "calendar_import", None)
        if target is not None:
            self._import_calendar(request, user, session, target, budget)
            return
        target = getattr(request, "calendar_post", None)
        if target is not None:
            self._post_calendar(request, user, session, target)
            return
        target = getattr(request, "schedule_post", None)
        if target is not None:
            self._schedule_post(request, user, ctx, target)
            return
        # Sync polls and multigets are answered without a worker thread where they can be.
        self.direct.answer(request, user, session).addCallback(
            lambda answered: None if answered else self._in_thread(request, user)).addErrback(
            self._internal_error, request)

    def _in_thread(self, request: server.Request, user: str) -> None:
        """Radicale answers in a worker thread, within the user's share of the threads: one
        user's slow requests wait for each other, never for everybody's threads."""
        def start() -> defer.Deferred:
            self.wsgi.render(request)
            return request.notifyFinish()  # the thread is busy until the answer is out
        turn = self.thread_share.run(user, start)
        turn.addErrback(lambda failure: None)  # a lost connection: nothing to answer
        request.notifyFinish().addErrback(lambda _: turn.cancel())

    @staticmethod
    def _base_url(request: server.Request) -> str:
        """scheme://host[:port] as the client addressed us (the Host header when it is sane)."""
        scheme = "https" if request.isSecure() else "http"
        host = (request.getHeader(b"host") or b"").decode("latin-1")
        if not _HOST.match(host):
            address = request.getHost()
            host = f"{address.host}:{address.port}" if ":" not in address.host else f"[{address.host}]:{address.port}"
        return f"{scheme}://{host}"

    # -- POST to a calendar: sharing it, or publishing it at a secret read-only URL
    def _post_calendar(self, request: server.Request, user: str, session: Any, target: list[bytes]) -> None:
        request.content.seek(0)
        body = request.content.read()
        root = xml_root(body)
        if root is not None and root.tag == sharing.SHARE:
            self._share_calendar(request, user, session, target, root)
            return
        publish = publish_action(body)
        if publish is None:
            self._finish(request, 400, "POST <CS:share>, <CS:publish-calendar/> or <CS:unpublish-calendar/> "
                                       f"(xmlns:CS=\"{properties.CS}\") to a calendar\n")
            return
        self._publish_calendar(request, user, session, target, publish)

    async def _calendar_of(self, session: Any, segment: str) -> Any:
        """The calendar at `segment` of the session's home, NotFound when there is none."""
        own, shared = await defer.gatherResults([session.store().folders(counts=False),
                                                 session.shared_folders(counts=False)], consumeErrors=True)
        folder = storage.segment_names(own, shared).get(segment)
        if folder is None or folder.container_class not in storage.CALENDAR_CLASSES:
            raise NotFound("no such calendar")
        return folder

    def _post_failed(self, request: server.Request, failure: Any, forbidden: str) -> None:
        err = failure.value
        if isinstance(err, defer.FirstError):
            err = err.subFailure.value
        if isinstance(err, Unavailable):
            self._unavailable(request)
        elif isinstance(err, GroupwareError):
            code = next((c for cls, c in STATUS_FOR_ERROR.items() if isinstance(err, cls)), 500)
            self._finish(request, code, forbidden if code == 403 else err.message + "\n")
        else:
            self._internal_error(failure, request)

    # -- POST of CS:share: the owner shares a calendar with other users (gateways/caldav/sharing.py)
    def _share_calendar(self, request: server.Request, user: str, session: Any, target: list[bytes],
                        root: Any) -> None:
        owner, segment = (s.decode("utf-8", "replace") for s in target)
        if owner != user:
            self._finish(request, 404, "not found\n")
            return
        try:
            changes = sharing.requested_changes(root)
        except ValueError as err:
            self._finish(request, 400, f"{err}\n")
            return

        async def change() -> None:
            folder = await self._calendar_of(session, segment)
            made = await sharing.apply(folder, changes, (CALDAV_ROOT, CARDDAV_ROOT), session.user.email)
            for name, letters in made:
                log.info("caldav: %s shared calendar %s with %s: %s", user, segment, name, letters or "removed")
            storage.HOMES.forget(session)

        def done(_: Any) -> None:
            self._finish(request, 200, "")

        defer.ensureDeferred(change()).addCallbacks(
            done, lambda failure: self._post_failed(request, failure, "only the owner shares a calendar\n")
        ).addErrback(self._internal_error, request)

    # -- POST of CS:publish-calendar / CS:unpublish-calendar: the owner publishes it at a secret
    # read-only URL, or revokes it
    def _publish_calendar(self, request: server.Request, user: str, session: Any, target: list[bytes],
                          publish: bool) -> None:
        owner, segment = (s.decode("utf-8", "replace") for s in target)
        if owner != user:
            self._finish(request, 404, "not found\n")
            return

        async def change() -> str | None:
            folder = await self._calendar_of(session, segment)
            storage.HOMES.forget(session)  # its listing holds the old secret
            if not publish:
                await folder.unpublish()
                return None
            return properties.publish_url(self._base_url(request), await folder.publish())

        def done(url: str | None) -> None:
            log.info("caldav: %s %s calendar %s", user, "published" if url else "unpublished", segment)
            if url is None:
                self._finish(request, 204, "")
                return
            body = (f'<?xml version="1.0" encoding="utf-8"?>\n<CS:publish-url xmlns:CS="{properties.CS}" '
                    f'xmlns:D="DAV:"><D:href>{escape(url)}</D:href></CS:publish-url>\n').encode()
            if request.finished or request._disconnected:
                return
            request.setResponseCode(200)
            request.setHeader(b"content-type", b"application/xml; charset=utf-8")
            request.write(body)
            request.finish()

        def failed(failure: Any) -> None:
            self._post_failed(request, failure, "only the owner publishes a calendar\n")
        defer.ensureDeferred(change()).addCallbacks(done, failed).addErrback(self._internal_error, request)

    # -- POST to the schedule outbox: a free-busy request
    def _schedule_post(self, request: server.Request, user: str, ctx: context.RequestContext,
                       target: list[bytes]) -> None:
        if target[0].decode("utf-8", "replace") != user or self.scheduler is None:
            self._finish(request, 404, "not found\n")
            return
        content_type = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
        if content_type != b"text/calendar":
            self._finish(request, 415, "POST a text/calendar free-busy request to the outbox\n")
            return
        request.content.seek(0)
        body = request.content.read()

        def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
            return deferToThreadPool(self.reactor, self.threadpool, fn, *args)

        async def answer() -> bytes:
            info, _, _ = await ctx.session.whoami()
            own = frozenset({info.email.strip().lower()} if info.email.strip() else ())
            return await scheduling_outbox.free_busy(ctx, body, own, self.scheduler.max_attendees, in_thread)

        def done(data: bytes) -> None:
            if request.finished or request._disconnected:
                return
            request.setResponseCode(200)
            request.setHeader(b"content-type", b"application/xml; charset=utf-8")
            request.write(data)
            request.finish()

        def failed(failure: Any) -> None:
            err = failure.value
            if isinstance(err, scheduling_outbox.OutboxRefused):
                log.info("caldav: free-busy request of %s refused: %s", user, err)
                self._finish(request, err.status, scheduling_outbox.error_body(err.condition).decode(),
                             [(b"content-type", b"application/xml; charset=utf-8")])
            elif isinstance(err, BudgetExhausted):
                self._finish(request, 507, TOO_MUCH_WORK.decode(), [(b"content-type", b"text/xml; charset=utf-8")])
            elif isinstance(err, Unavailable):
                self._unavailable(request)
            elif isinstance(err, GroupwareError):
                code = next((c for cls, c in STATUS_FOR_ERROR.items() if isinstance(err, cls)), 500)
                self._finish(request, code, err.message + "\n")
            else:
                self._internal_error(failure, request)
        defer.ensureDeferred(answer()).addCallbacks(done, failed).addErrback(self._internal_error, request)

    # -- PUT of a whole calendar (the iCal feed, or a collection)
    def _import_calendar(self, request: server.Request, user: str, session: Any, target: list[bytes],
                         budget: WorkBudget) -> None:
        owner, segment = (s.decode("utf-8", "replace") for s in target)
        if owner != user:
            self._finish(request, 404, "not found\n")
            return
        request.content.seek(0)
        body = request.content.read()

        def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
            return deferToThreadPool(self.reactor, self.threadpool, fn, *args)
        d = defer.ensureDeferred(feed_import.import_calendar(
            session, segment, body, in_thread, if_match=(request.getHeader(b"if-match") or b"").decode("latin-1"),
            if_none_match=request.getHeader(b"if-none-match") == b"*", max_objects=self.limits.import_objects,
            series_limit=lambda text: run_under(budget, self.series_limit.exceeded_by, text, budget.check)))

        def done(result: feed_import.ImportResult) -> None:
            plan = result.plan
            log.info("caldav: calendar %s/%s replaced by PUT: %d saved, %d deleted, %d unchanged",
                     user, segment, len(plan.saves), len(plan.deletes), plan.unchanged)
            self._finish(request, 201 if result.created else 204, "", [(b"etag", result.etag.encode())])

        def failed(failure: Any) -> None:
            err = failure.value
            if isinstance(err, feed_import.TooManyInstances):
                log.info("caldav: calendar PUT %s/%s refused: %s", user, segment, err)
                self._finish_xml(request, 403, refusal(MAX_INSTANCES))
                return
            if isinstance(err, WorkCancelled):
                self._unavailable(request)
                return
            if isinstance(err, BudgetExhausted):
                log.warning("caldav: calendar PUT %s/%s stopped: %s", user, segment, err)
                self._finish_xml(request, 507, TOO_MUCH_WORK)
                return
            if not isinstance(err, GroupwareError):
                self._internal_error(failure, request)
                return
            if isinstance(err, Conflict) and err.reason == PRECONDITION_FAILED:
                self._finish(request, 412, "precondition failed\n")
            elif isinstance(err, Unavailable):
                self._unavailable(request)
            else:
                code = next((c for cls, c in STATUS_FOR_ERROR.items() if isinstance(err, cls)), 500)
                log.info("caldav: calendar PUT %s/%s refused: %s", user, segment, err.message)
                self._finish(request, code, err.message + "\n")
        d.addCallbacks(done, failed).addErrback(self._internal_error, request)

    def _internal_error(self, failure: Any, request: server.Request) -> None:
        log.error("caldav: %s", failure.getTraceback())
        self._finish(request, 500, "internal error\n")

    # -- the WSGI side (runs in a worker thread)
    def _wsgi_app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        ctx = self.contexts.get(environ.pop("HTTP_X_GROUPWARE_CONTEXT", ""))
        if ctx is None:
            start_response("401 Unauthorized", [("Content-Type", "text/plain")])
            return [b"authentication required\n"]
        # PEP 3333 hands the path over as latin-1; the bytes on the wire are UTF-8.
        for key in ("PATH_INFO", "SCRIPT_NAME"):
            environ[key] = environ.get(key, "").encode("latin-1").decode("utf-8", "replace")
        environ[auth_plugin.USER_KEY] = ctx.user
        vcard_put = False
        if environ["REQUEST_METHOD"] == "PUT":
            body = request_body(environ) or b""
            vcard_put = addressbooks.is_vcard_put(body, environ.get("CONTENT_TYPE"))
            refused = addressbooks.check_upload(body, environ.get("CONTENT_TYPE", ""), self.limits)
            if refused is not None:
                start_response(refused[0], [("Content-Type", "text/xml; charset=utf-8")])
                return [refused[1]]
            if vcard_put:
                ctx.put_texts = addressbooks.sent_texts(body)
                addressbooks.lighten_request(environ, body)
            try:
                too_many = not vcard_put and self.series_limit.exceeded_by(body.decode("utf-8", "replace"),
                                                                           ctx.budget.check)
            except BudgetExhausted:
                return self._stopped(ctx, start_response)
            if too_many:
                # Counted before the engine parses it: its own walk of the rule would stop at the
                # same limit with 507, and the client should learn why (RFC 4791 §5.3.2.1).
                log.info("caldav: PUT of %s refused: more than %d recurrence instances", ctx.user,
                         self.series_limit.max_instances)
                start_response("403 Forbidden", [("Content-Type", "text/xml; charset=utf-8")])
                return [refusal(MAX_INSTANCES)]
        ctx.schedule_tag_match = environ.get("HTTP_IF_SCHEDULE_TAG_MATCH")
        if environ["REQUEST_METHOD"] == "PUT" and environ["PATH_INFO"].strip("/").count("/") == 2:
            ctx.put_conditions = (environ.get("HTTP_IF_MATCH") or None, environ.get("HTTP_IF_NONE_MATCH") == "*")
        elif environ["REQUEST_METHOD"] == "DELETE" and environ["PATH_INFO"].strip("/").count("/") == 2:
            ctx.delete_condition = environ.get("HTTP_IF_MATCH") or None
        elif environ["REQUEST_METHOD"] == "REPORT":
            # The body is put back for Radicale to read.
            body = request_body(environ)
            broken = None if body is None else self.date_limits.violation(body)
            if broken is not None:
                log.info("caldav: REPORT of %s refused: a date beyond %s", ctx.user, broken)
                start_response("403 Forbidden", [("Content-Type", "text/xml; charset=utf-8")])
                return [refusal(broken)]
            if body is not None:
                ctx.expand, ctx.limit_recurrence_set, ctx.limit_freebusy_set = recurrence.requested_ranges(body)
        captured: list[Any] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
            captured[:] = [status, headers]
            return lambda data: None

        context.bind(ctx)
        try:
            with working_under(ctx.budget):
                try:
                    body = listing.calendar_propfind(self.radicale, environ, ctx, capture)
                except GroupwareError:
                    if ctx.error is None:
                        raise
                    # The store's error (in ctx.error) is answered below, as Radicale's would be.
                    capture("500 Internal Server Error", [("Content-Type", "text/plain; charset=utf-8")])
                    body = [b"internal server error\n"]
                if body is None:
                    body = self.radicale(environ, capture)
        finally:
            context.bind(None)
        if ctx.budget.stopped is not None:
            return self._stopped(ctx, start_response)
        status, headers = captured
        if ctx.error is not None and status[:3] in ("500", "400", "403", "404", "409"):
            status, headers, body = self._store_error(ctx.error, status, headers, body)
        if environ["REQUEST_METHOD"] == "PUT":
            refused = addressbooks.refused_put(ctx, environ["PATH_INFO"], vcard_put, status)
            if refused is not None:
                status, headers, body = refused[0], [("Content-Type", "text/xml; charset=utf-8")], [refused[1]]
        if (self.scheduler is not None and environ["REQUEST_METHOD"] in ("GET", "PUT")
                and environ["PATH_INFO"].strip("/").count("/") == 2):  # one object, not a whole calendar
            headers = headers + scheduling_tags.tag_headers(ctx, environ["REQUEST_METHOD"], status, headers, body)
        start_response(status, headers)
        return body

    def _stopped(self, ctx: context.RequestContext, start_response: Callable[..., Any]) -> Iterable[bytes]:
        """The answer to a request its work budget stopped (Radicale answered 400 or 500)."""
        reason = ctx.budget.stopped
        if isinstance(reason, WorkCancelled):
            log.info("caldav: request of %s stopped: %s", ctx.user, reason)
            start_response("503 Service Unavailable", [("Content-Type", "text/plain; charset=utf-8"),
                                                       ("Retry-After", str(self.retry_after))])
            return [UNAVAILABLE_TEXT.encode()]
        log.warning("caldav: request of %s stopped: %s", ctx.user, reason)
        start_response("507 Insufficient Storage", [("Content-Type", "text/xml; charset=utf-8")])
        return [TOO_MUCH_WORK]

    def _store_error(self, err: GroupwareError, status: str, headers: list, body: Any) -> tuple:
        """Radicale answers a plugin exception with 500 (or 400 for a ValueError); say what the
        store said instead. An outage, a refusal or a conflict wins over Radicale's guess."""
        if isinstance(err, Quota):
            # The user's quota, not the server's trouble (RFC 4331 section 6).
            return "507 Insufficient Storage", [("Content-Type", "text/xml; charset=utf-8")], [QUOTA_NOT_EXCEEDED]
        code = next((c for cls, c in STATUS_FOR_ERROR.items() if isinstance(err, cls)), 500)
        if code in (503, 507, 500):
            log.warning("caldav: store %s: %s", "unavailable" if code == 503 else "error", err.message)
        if isinstance(err, Conflict) and err.reason == PRECONDITION_FAILED:
            # The store's own If-Match / If-None-Match check, made as it wrote.
            return "412 Precondition Failed", [("Content-Type", "text/plain; charset=utf-8")], [b"precondition failed\n"]
        if isinstance(err, Conflict) and err.reason == UID_CONFLICT:
            # Another writer (another thread or gateway process) stored the UID first.
            return "409 Conflict", [("Content-Type", "text/xml; charset=utf-8")], [NO_UID_CONFLICT]
        if not (status.startswith("500") or code in (503, 403, 409, 413, 507)) or status.startswith(str(code)):
            return status, headers, body
        reason = {503: "Service Unavailable", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
                  413: "Payload Too Large", 401: "Unauthorized", 400: "Bad Request",
                  507: "Insufficient Storage"}.get(code, "Internal Server Error")
        new_headers = [("Content-Type", "text/plain; charset=utf-8")]
        if code == 503:
            new_headers.append(("Retry-After", str(self.retry_after)))
        text = UNAVAILABLE_TEXT if code == 503 else reason.lower() + "\n"
        return f"{code} {reason}", new_headers, [text.encode()]
