"""The CalDAV/CardDAV/iCal gateway's resource: twisted.web in front of Radicale.

It does what must not cost a thread or must happen before a body is read: URL mapping
(`/caldav/...`, `/carddav/...`, `/ical/<user>/<calendar>`, `/.well-known/caldav` and
`/.well-known/carddav`, principal discovery on any other path), hostile-XML and depth
refusal, and Basic authentication through the login service (`shared.login`, whose delay
after failures is a reactor timer) and the session cache on top of it. Then it hands the
request to the module that answers it:

- `site`: the HTTP site, bodies over the limit refused (413) before they are read;
- `published`: GET of a published calendar (no login);
- `calendar_put`: PUT of a whole calendar; `calendar_post`: sharing and publishing;
- `outbox_post`: free-busy requests to the schedule outbox;
- `direct`: sync-collection and multiget REPORTs answered on the reactor;
- `wsgi_bridge`: everything else, Radicale in a worker thread;
- `answers`: how every one of them answers, and the one mapping of errors to answers.
"""
from __future__ import annotations

import base64
import logging
import binascii
import re
import secrets
from typing import Any

from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.web import resource, server
from twisted.web.wsgi import WSGIResource

from gateways.caldav import (addressbooks, answers, calendar_post, calendar_put, context, direct, outbox_post,
                             published, radicale_glue, rights, storage, wsgi_bridge)
from gateways.caldav import auth as auth_plugin
from gateways.caldav import limits as request_limits
from gateways.caldav.date_limits import DateLimits
from gateways.caldav.scheduling import collections as scheduling_collections
from gateways.caldav.series_limit import SeriesLimit
from gateways.caldav.sessions import SessionCache
from shared.budget import BudgetRegistry
from shared.fair_share import FairShare
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
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


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
        self.wsgi = WSGIResource(reactor, threadpool, lambda environ, start: wsgi_bridge.answer(self, environ, start))
        # The roots a calendar's URLs are answered under (named in sharing invitations).
        self.roots = (CALDAV_ROOT, CARDDAV_ROOT)
        self.direct = direct.DirectAnswers(reactor, threadpool, CALDAV_ROOT)

    # -- routing
    def render(self, request: server.Request) -> Any:
        path = request.path.decode("latin-1")
        if b"\x00" in request.path or "%00" in path:
            return answers.plain(request, 400, "bad path\n")
        if self.web is not None and self.web.handles(request):
            return self.web.render(request)
        well_known = {"/.well-known/caldav": CALDAV_ROOT, "/.well-known/carddav": CARDDAV_ROOT}.get(path.rstrip("/"))
        if well_known is not None:
            request.setResponseCode(301)
            request.setHeader(b"location", (well_known + "/").encode())
            return b""
        if path.startswith("/.well-known/"):
            return answers.plain(request, 404, "not found\n")
        if path.startswith(PUBLISHED_ROOT):
            return published.render(self, request, path[len(PUBLISHED_ROOT):].removesuffix(".ics"))
        if path.startswith(ICAL_ROOT + "/"):
            if request.method not in (b"GET", b"HEAD", b"PUT"):
                return answers.plain(request, 405, "GET or PUT a whole calendar here\n")
            rest = [p for p in request.postpath[1:] if p]
            if len(rest) != 2:
                return answers.plain(request, 404, "expected /ical/<user>/<calendar>\n")
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
            return answers.plain(request, 404, "not found\n")
        try:
            request_limits.check_depth(request.method, request.getHeader(b"depth"))
            if request.method in XML_METHODS or getattr(request, "calendar_post", None) is not None:
                self.limits.check_xml(request.content)
        except request_limits.Refused as refused:
            if refused.code == 403:
                request.setResponseCode(403)
                request.setHeader(b"content-type", b"application/xml; charset=utf-8")
                return request_limits.FINITE_DEPTH
            return answers.plain(request, refused.code, refused.text)
        self._authenticate(request)
        return server.NOT_DONE_YET

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
        answers.finish(request, 401, text, [("WWW-Authenticate", f'Basic realm="{REALM}"')])

    def _authenticate(self, request: server.Request) -> None:
        address = request.getClientAddress().host
        if not plaintext_login_allowed(request.isSecure(), self.plaintext_auth, address):
            answers.finish(request, 403, "log in over https\n")
            return
        credentials = self._credentials(request)
        if credentials is None:
            self._challenge(request)
            return
        user, password = credentials
        d = self.sessions.logon(user, password, address)
        d.addCallbacks(lambda session: self._authenticated(request, user, session),
                       lambda failure: self._login_refused(request, failure))
        d.addErrback(answers.internal_error, request)

    def _login_refused(self, request: server.Request, failure: Any) -> None:
        failure.trap(LoginRefused)
        refused = failure.value
        outcome = refused.outcome
        if outcome is Outcome.BANNED:
            answers.finish(request, 429, "too many failed logins from your address\n",
                         [("Retry-After", str(int(refused.retry_after) + 1))])
        elif outcome is Outcome.UNAVAILABLE:
            answers.send(request, answers.unavailable(self.retry_after))
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
        ctx.base_url = self.base_url(request)
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
            calendar_put.answer(self, request, user, session, target, budget)
            return
        target = getattr(request, "calendar_post", None)
        if target is not None:
            calendar_post.answer(self, request, user, session, target)
            return
        target = getattr(request, "schedule_post", None)
        if target is not None:
            outbox_post.answer(self, request, user, ctx, target)
            return
        # Sync polls and multigets are answered without a worker thread where they can be.
        self.direct.answer(request, user, session).addCallback(
            lambda answered: None if answered else self._to_radicale(request, user)).addErrback(
            answers.internal_error, request)

    def _to_radicale(self, request: server.Request, user: str) -> None:
        """Radicale answers in a worker thread, within the user's share of the threads: one
        user's slow requests wait for each other, never for everybody's threads."""
        def start() -> defer.Deferred:
            self.wsgi.render(request)
            return request.notifyFinish()  # the thread is busy until the answer is out
        turn = self.thread_share.run(user, start)
        turn.addErrback(lambda failure: None)  # a lost connection: nothing to answer
        request.notifyFinish().addErrback(lambda _: turn.cancel())

    def in_thread(self, fn: Any, *args: Any) -> defer.Deferred:
        """`fn(*args)` in a worker thread of the gateway's pool."""
        return deferToThreadPool(self.reactor, self.threadpool, fn, *args)

    @staticmethod
    def base_url(request: server.Request) -> str:
        """scheme://host[:port] as the client addressed us (the Host header when it is sane)."""
        scheme = "https" if request.isSecure() else "http"
        host = (request.getHeader(b"host") or b"").decode("latin-1")
        if not _HOST.match(host):
            address = request.getHost()
            host = f"{address.host}:{address.port}" if ":" not in address.host else f"[{address.host}]:{address.port}"
        return f"{scheme}://{host}"
