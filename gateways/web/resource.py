"""The web side of the HTTP gateway: the onboarding page and client autoconfiguration.

The CalDAV gateway's resource hands over the paths `handles()` claims (see `ROUTES`);
everything here runs on the reactor, talks to the store only through `shared/`, and logs
people in through the same login service and brute-force guard as every gateway.

    GET  /                                       the page, or the login form
    POST /login, /logout                         session cookie in, out
    POST /profile                                the Apple profile of the logged-in user
    GET  /profile/<one-time token>               the same, from the QR code (once, briefly)
    POST /publish                                publish or revoke a calendar's feed link
    POST /password                               change the password (user_plugin db)
    GET  /.well-known/autoconfig/mail/config-v1.1.xml, /mail/config-v1.1.xml
                                                 Thunderbird autoconfig
    POST /autodiscover/autodiscover.xml          Outlook's Autodiscover (POX)

Secrets travel in POST bodies and cookies only; the single URL holding one (the QR code's
download) works once and expires within minutes. No process keeps a login or a link for
itself (see gateways.web.sessions): any gateway process or host with the web key answers.
"""
from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote

from twisted.internet import defer
from twisted.web import server

from gateways.caldav import storage as caldav_storage
from gateways.caldav.limits import RequestLimits
from gateways.caldav.properties import publish_url
from gateways.web import autoconfig, autodiscover, mobileconfig
from gateways.web.i18n import Texts, negotiate
from gateways.web.pages import CalendarRow, login_page, onboarding_page, page
from gateways.web.sessions import WebKey, WebSession, WebTokens, same_secret
from gateways.web.settings import ClientSettings
from shared.authguard import log_safe
from shared.errors import AuthFailed, BadRequest, Forbidden, GroupwareError, SessionInvalid, Unavailable
from shared.features import WEB
from shared.login import ClientLogin, LoginRefused, LoginService, Outcome, plaintext_login_allowed

log = logging.getLogger("gateways.web")

SESSION_COOKIE = b"groupware_session"
LOGIN_COOKIE = b"groupware_login"
FLASH_COOKIE = b"groupware_notice"
AUTOCONFIG_PATHS = frozenset({"/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml"})
AUTODISCOVER_PATH = "/autodiscover/autodiscover.xml"  # Outlook capitalises it; compared case-blind
POST_PATHS = frozenset({"/login", "/logout", "/profile", "/publish", "/password"})
DOWNLOAD = re.compile(r"^/profile/([A-Za-z0-9_-]{16,1024})$")
# A form of the page is a few hundred bytes; a larger body is no form of ours.
MAX_FORM = 64 * 1024
MAX_FIELD = 4096
SECURITY_HEADERS = (
    (b"content-security-policy", b"default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                                 b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)


class BadForm(Exception):
    """A POST that is not one of the page's forms, or whose CSRF token is wrong."""


class WebPages:
    """The onboarding page and autoconfiguration documents of one HTTP gateway."""

    def __init__(self, reactor: Any, login: LoginService, key: WebKey, settings: ClientSettings, plaintext_auth: bool,
                 session_expiry: float, download_expiry: float, password_change: bool,
                 xml_limits: RequestLimits, retry_after: int, organization: str = "",
                 signer: mobileconfig.ProfileSigner | None = None,
                 password_changed: Callable[[str], None] = lambda user: None) -> None:
        self.reactor = reactor
        self.login = login
        self.settings = settings
        self.plaintext_auth = plaintext_auth
        self.tokens = WebTokens(key, reactor.seconds, session_expiry, download_expiry)
        self.download_minutes = max(1, int(download_expiry // 60))
        self.password_change = password_change
        self.xml_limits = xml_limits
        self.retry_after = retry_after
        self.organization = organization
        self.signer = signer
        self.password_changed = password_changed

    # -- routing
    def handles(self, request: server.Request) -> bool:
        path = request.path.decode("latin-1")
        method = request.method
        if path.lower() == AUTODISCOVER_PATH:
            return True
        if method in (b"GET", b"HEAD"):
            return path == "/" or path in AUTOCONFIG_PATHS or DOWNLOAD.match(path) is not None
        return method == b"POST" and path in POST_PATHS

    def render(self, request: server.Request) -> Any:
        path = request.path.decode("latin-1")
        if path.lower() == AUTODISCOVER_PATH:
            return self._autodiscover(request)
        if path in AUTOCONFIG_PATHS:
            return self._autoconfig(request)
        match = DOWNLOAD.match(path)
        if match is not None:
            return self._download(request, match.group(1))
        for name, value in SECURITY_HEADERS:
            request.setHeader(name, value)
        t = Texts(negotiate(_header(request, b"accept-language")))
        request.setHeader(b"content-language", t.language.encode())
        request.setHeader(b"vary", b"Accept-Language, Cookie")
        address = request.getClientAddress().host
        if not plaintext_login_allowed(request.isSecure(), self.plaintext_auth, address):
            if self.settings.http is not None and self.settings.http.ssl and request.method != b"POST":
                request.setResponseCode(301)
                request.setHeader(b"location", (self.settings.base_url + "/").encode())
                return b""
            return self._html(request, 403, page(t, t("login_title"), f'<p class="problem">{t("https_only")}</p>'))
        if request.method == b"POST":
            try:
                form = _form(request)
            except BadForm:
                return self._html(request, 400, page(t, t("login_title"), f'<p class="problem">{t("expired")}</p>'))
            if path == "/login":
                return self._post_login(request, t, form)
            handler = {"/logout": self._post_logout, "/profile": self._post_profile,
                       "/publish": self._post_publish, "/password": self._post_password}[path]
            self._with_session(request, t, form, handler)
            return server.NOT_DONE_YET
        self._with_session(request, t, None, self._get_page)
        return server.NOT_DONE_YET

    # -- the login of a request
    async def _session(self, request: server.Request) -> WebSession | None:
        """The login the request's cookie names, as the store sees it now: None when there is
        none, it expired or was logged off (in any process). Unavailable passes through."""
        session_id = self.tokens.session_id(_cookie(request, SESSION_COOKIE))
        if session_id is None:
            return None
        try:
            store = await self.login.adapter.resume(session_id, WEB, request.getClientAddress().host)
        except SessionInvalid:
            return None
        info = store.user
        return WebSession(info.name, self._address(info.name, info.email), info.full_name, store,
                          self.tokens.key.csrf(session_id))

    def _with_session(self, request: server.Request, t: Texts, form: dict[str, str] | None, handler: Any) -> None:
        """Run `handler(request, t, form, session)` for the request's login; without one (or,
        for a form, without its CSRF token) the login form answers."""
        async def work() -> None:
            try:
                session = await self._session(request)
            except Unavailable:
                request.setHeader(b"retry-after", str(self.retry_after).encode())
                self._finish(request, self._login_form(request, t, problem=t("unavailable"), code=503))
                return
            if session is None or (form is not None and not same_secret(form.get("csrf"), session.csrf)):
                if session is None and _cookie(request, SESSION_COOKIE):
                    self._set_cookie(request, SESSION_COOKIE, "", 0)  # a dead login's cookie goes
                if form is None:
                    self._finish(request, self._login_form(request, t))
                else:
                    self._finish(request, self._login_form(request, t, problem=t("expired"), code=403))
                return
            result = handler(request, t, session) if form is None else handler(request, t, form, session)
            if result is not server.NOT_DONE_YET:
                self._finish(request, result)
        defer.ensureDeferred(work()).addErrback(self._internal_error, request)

    def _finish(self, request: server.Request, body: bytes) -> None:
        if not (request.finished or request._disconnected):
            request.write(body)
            request.finish()

    def _get_page(self, request: server.Request, t: Texts, session: WebSession) -> Any:
        flash = self.tokens.read_flash(_cookie(request, FLASH_COOKIE))
        if _cookie(request, FLASH_COOKIE):
            self._set_cookie(request, FLASH_COOKIE, "", 0)
        self._respond(request, self._page(request, t, session, *flash))
        return server.NOT_DONE_YET

    # -- answers
    def _html(self, request: server.Request, code: int, body: bytes) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return body if request.method != b"HEAD" else b""

    def _respond(self, request: server.Request, work: Any) -> None:
        def send(result: tuple[int, bytes]) -> None:
            if request.finished or request._disconnected:
                return
            code, body = result
            request.write(self._html(request, code, body))
            request.finish()

        defer.ensureDeferred(work).addCallbacks(send, self._internal_error, errbackArgs=(request,))

    def _redirect(self, request: server.Request) -> bytes:
        """Post/Redirect/Get: the page is fetched again, a reload does not repeat the POST."""
        request.setResponseCode(303)
        request.setHeader(b"location", b"/")
        return b""

    def _set_cookie(self, request: server.Request, name: bytes, value: str, max_age: int | None) -> None:
        request.addCookie(name, value.encode("ascii"), path=b"/", httpOnly=True, secure=request.isSecure(),
                          sameSite="strict", max_age=None if max_age is None else str(max_age).encode())

    # -- logging in and out
    def _login_form(self, request: server.Request, t: Texts, user: str = "", problem: str | None = None,
                    code: int = 200) -> bytes:
        token = secrets.token_urlsafe(24)
        self._set_cookie(request, LOGIN_COOKIE, token, None)
        return self._html(request, code, login_page(t, token, user, problem))

    def _post_login(self, request: server.Request, t: Texts, form: dict[str, str]) -> Any:
        user = form.get("user", "").strip()
        if not same_secret(form.get("csrf"), _cookie(request, LOGIN_COOKIE) or ""):
            return self._login_form(request, t, user, t("expired"), 400)
        if not user:
            return self._login_form(request, t, user, t("bad_login"))
        address = request.getClientAddress().host
        connected = lambda: not request._disconnected  # noqa: E731
        d = self.login.login(ClientLogin(user, form.get("password", ""), address), connected)

        def logged_in(store: Any) -> None:
            if request.finished or request._disconnected:
                store.logoff()
                return
            self._set_cookie(request, SESSION_COOKIE, self.tokens.session_cookie(store.id), int(self.tokens.expiry))
            self._set_cookie(request, LOGIN_COOKIE, "", 0)
            request.write(self._redirect(request))
            request.finish()

        def refused(failure: Any) -> None:
            failure.trap(LoginRefused)
            if request.finished or request._disconnected:
                return
            outcome = failure.value.outcome
            if outcome is Outcome.BANNED:
                request.setHeader(b"retry-after", str(int(failure.value.retry_after) + 1).encode())
                body = self._login_form(request, t, user, t("banned"), 429)
            elif outcome is Outcome.UNAVAILABLE:
                request.setHeader(b"retry-after", str(self.retry_after).encode())
                body = self._login_form(request, t, user, t("unavailable"), 503)
            else:
                body = self._login_form(request, t, user, t("bad_login"))
            request.write(body)
            request.finish()
        d.addCallbacks(logged_in, refused).addErrback(self._internal_error, request)
        return server.NOT_DONE_YET

    def _address(self, user: str, email: str) -> str:
        if email:
            return email
        if "@" in user or not self.settings.domains:
            return user
        return f"{user}@{self.settings.domains[0]}"

    def _post_logout(self, request: server.Request, t: Texts, form: dict[str, str], session: WebSession) -> Any:
        # Logged off at the store, the session is refused by every store process, so the
        # cookie is dead whichever gateway process it reaches.
        def done(_: Any) -> None:
            log.info("web logout: user=%s", log_safe(session.user))
            self._set_cookie(request, SESSION_COOKIE, "", 0)
            self._finish(request, self._redirect(request))
        session.store.logoff().addCallback(done).addErrback(self._internal_error, request)
        return server.NOT_DONE_YET

    # -- the page
    async def _page(self, request: server.Request, t: Texts, session: WebSession, notice: str | None = None,
                    problem: str | None = None, opened: str | None = None) -> tuple[int, bytes]:
        rows = []
        try:
            folders = await session.store.store().folders(counts=False)
            for segment, folder in sorted(caldav_storage.segment_names(folders).items()):
                if folder.container_class not in caldav_storage.CALENDAR_CLASSES:
                    continue  # address books have no feed to publish
                token = folder.publish_token
                rows.append(CalendarRow(segment, folder.display_name or folder.name,
                                        self.settings.caldav_url(session.user) + quote(segment, safe="") + "/",
                                        publish_url(self.settings.base_url, token) if token else None))
        except GroupwareError as err:  # the page still shows the settings, and says what failed
            log.info("web: calendars of %s not listed: %s", log_safe(session.user), err.message)
            problem = problem or t("unavailable" if isinstance(err, Unavailable) else "error")
        token = self.tokens.new_download(session.store.id)
        download = f"{self.settings.base_url}/profile/{token}" if self.settings.base_url else ""
        return 200, onboarding_page(t, self.settings, session.user, session.address, session.csrf, download,
                                    self.download_minutes, rows, self.password_change, notice, problem, opened)

    def _after(self, request: server.Request, session: WebSession, section: str, notice: str | None = None,
               problem: str | None = None) -> None:
        if not (request.finished or request._disconnected):
            self._set_cookie(request, FLASH_COOKIE, self.tokens.flash(notice, problem, section), 60)
            request.write(self._redirect(request))
            request.finish()

    # -- the Apple profile
    def _profile_bytes(self, login: str, address: str, full_name: str) -> bytes:
        return mobileconfig.render(self.settings, login, address, full_name, self.organization, self.signer)

    def _send_profile(self, request: server.Request, data: bytes) -> bytes:
        request.setHeader(b"content-type", mobileconfig.CONTENT_TYPE.encode())
        name = re.sub(r"[^A-Za-z0-9.-]", "_", self.settings.hostname)
        request.setHeader(b"content-disposition", f'attachment; filename="{name}.mobileconfig"'.encode())
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"content-length", str(len(data)).encode())
        return data if request.method != b"HEAD" else b""

    def _post_profile(self, request: server.Request, t: Texts, form: dict[str, str], session: WebSession) -> Any:
        return self._send_profile(request, self._profile_bytes(session.user, session.address, session.full_name))

    def _download(self, request: server.Request, token: str) -> Any:
        """The profile of a one-time link: the first request for it wins, in whichever gateway
        process or host (the store records its name); any later one, or a link whose login
        has ended, gets 404."""
        address = request.getClientAddress().host

        async def work() -> None:
            download = self.tokens.download(token)
            store, why = None, "unknown or expired"
            try:
                if download is not None:
                    store = await self.login.adapter.resume(download.session_id, WEB, address)
                    if not await store.use_once(download.name, download.expires):
                        store, why = None, "used before"
            except SessionInvalid:
                store, why = None, "its login has ended"
            except Unavailable:
                request.setResponseCode(503)
                request.setHeader(b"retry-after", str(self.retry_after).encode())
                request.setHeader(b"content-type", b"text/plain; charset=utf-8")
                self._finish(request, b"the server is busy; try again in a moment\n")
                return
            if store is None:
                log.info("web: one-time profile link refused (%s) from %s", why, address)
                request.setResponseCode(404)
                request.setHeader(b"content-type", b"text/plain; charset=utf-8")
                self._finish(request, b"this link has been used or has expired; open the page again for a new one\n")
                return
            info = store.user
            log.info("web: profile of %s downloaded by its one-time link from %s", log_safe(info.name), address)
            self._finish(request, self._send_profile(
                request, self._profile_bytes(info.name, self._address(info.name, info.email), info.full_name)))
        defer.ensureDeferred(work()).addErrback(self._internal_error, request)
        return server.NOT_DONE_YET

    # -- publishing calendars
    def _post_publish(self, request: server.Request, t: Texts, form: dict[str, str], session: WebSession) -> Any:
        segment, action = form.get("calendar", ""), form.get("action", "")
        if action not in ("publish", "revoke"):
            return self._html(request, 400, page(t, t("title"), f'<p class="problem">{t("error")}</p>'))

        async def change() -> None:
            folders = await session.store.store().folders(counts=False)
            folder = caldav_storage.segment_names(folders).get(segment)
            if folder is None or folder.container_class not in caldav_storage.CALENDAR_CLASSES:
                self._after(request, session, "calendars", problem=t("error"))
                return
            name = folder.display_name or folder.name
            if action == "publish":
                await folder.publish()
                log.info("web: %s published calendar %s", log_safe(session.user), log_safe(segment))
                self._after(request, session, "calendars", notice=t("published", name=name))
            else:
                await folder.unpublish()
                log.info("web: %s unpublished calendar %s", log_safe(session.user), log_safe(segment))
                self._after(request, session, "calendars", notice=t("revoked", name=name))
        self._store_work(request, session, t, change(), "calendars")
        return server.NOT_DONE_YET

    # -- the password
    def _post_password(self, request: server.Request, t: Texts, form: dict[str, str], session: WebSession) -> Any:
        if not self.password_change:
            self._after(request, session, "password", problem=t("password_directory"))
            return server.NOT_DONE_YET
        old, new = form.get("old", ""), form.get("new", "")
        if new != form.get("again", ""):
            self._after(request, session, "password", problem=t("password_mismatch"))
            return server.NOT_DONE_YET
        address = request.getClientAddress().host

        async def change() -> None:
            guard = self.login.guard
            try:
                # A wrong old password counts at the guard, like a failed login.
                attempt = await guard.before_attempt(self.login.protocol, address, session.user)
            except Exception:  # noqa: BLE001  (banned: the guard said why in its log)
                self._after(request, session, "password", problem=t("banned"))
                return
            try:
                await session.store.change_password(old, new)
            except AuthFailed:
                guard.failed(self.login.protocol, address, session.user)
                self._after(request, session, "password", problem=t("password_wrong"))
                return
            except Forbidden:
                self._after(request, session, "password", problem=t("password_directory"))
                return
            except BadRequest:
                self._after(request, session, "password", problem=t("password_refused"))
                return
            finally:
                attempt.done()
            log.info("web: %s changed their password rip=%s", log_safe(session.user), address)
            self.password_changed(session.user)
            self._after(request, session, "password", notice=t("password_changed"))
        self._store_work(request, session, t, change(), "password")
        return server.NOT_DONE_YET

    def _store_work(self, request: server.Request, session: WebSession, t: Texts, work: Any, section: str) -> None:
        def failed(failure: Any) -> None:
            if failure.check(Unavailable):
                self._after(request, session, section, problem=t("unavailable"))
            elif failure.check(GroupwareError):
                log.info("web: %s: %s", log_safe(session.user), failure.getErrorMessage())
                self._after(request, session, section, problem=t("error"))
            else:
                self._internal_error(failure, request)
        defer.ensureDeferred(work).addErrback(failed)

    # -- autoconfiguration
    def _autoconfig(self, request: server.Request) -> bytes:
        values = request.args.get(b"emailaddress") or [b""]
        address = values[0].decode("utf-8", "replace")
        request.setHeader(b"content-type", b"application/xml; charset=utf-8")
        request.setHeader(b"cache-control", b"public, max-age=3600")
        body = autoconfig.document(self.settings, address, self.organization)
        return body if request.method != b"HEAD" else b""

    def _autodiscover(self, request: server.Request) -> bytes:
        if request.method not in (b"POST",):
            request.setResponseCode(405)
            request.setHeader(b"allow", b"POST")
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"POST an Autodiscover request here\n"
        request.content.seek(0)
        body = request.content.read(autodiscover.MAX_BODY + 1)
        request.setHeader(b"content-type", b"text/xml; charset=utf-8")
        try:
            address = autodiscover.requested_address(body, self.xml_limits)
        except autodiscover.InvalidRequest as refused:
            return autodiscover.error(refused.code, refused.message)
        return autodiscover.response(self.settings, address, self.organization)

    def _internal_error(self, failure: Any, request: server.Request) -> None:
        log.error("web: %s", failure.getTraceback())
        if not (request.finished or request._disconnected):
            request.setResponseCode(500)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            request.write(b"internal error\n")
            request.finish()

    def close(self) -> list[Any]:
        """Nothing to end here: logins live at the store, and go on in the other processes
        (and after a restart of this one) until they expire or are logged out."""
        return []


def _header(request: server.Request, name: bytes) -> str | None:
    value = request.getHeader(name)
    return value.decode("latin-1") if value is not None else None


def _cookie(request: server.Request, name: bytes) -> str | None:
    value = request.getCookie(name)
    return value.decode("ascii", "replace") if value else None


def _form(request: server.Request) -> dict[str, str]:
    """The urlencoded body of a POST (never the query string: secrets stay out of URLs)."""
    kind = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
    if kind != b"application/x-www-form-urlencoded":
        raise BadForm()
    request.content.seek(0)
    data = request.content.read(MAX_FORM + 1)
    if len(data) > MAX_FORM:
        raise BadForm()
    try:
        fields = parse_qs(data.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=32)
    except (UnicodeDecodeError, ValueError):
        raise BadForm() from None
    return {k: v[0][:MAX_FIELD] for k, v in fields.items() if v}
