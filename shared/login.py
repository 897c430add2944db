"""Logging in, for every gateway: one service in the shape of a `twisted.cred` portal.

A gateway hands `LoginService.login` what its client sent (`ClientLogin`: twisted.cred's
`UsernamePassword` plus the client's address) and gets a store session back, or a
`LoginRefused` whose `outcome` it turns into its own protocol's answer:

    outcome           IMAP                        POP3                    CalDAV
    BAD_CREDENTIALS   NO [AUTHENTICATIONFAILED]   -ERR [AUTH]             401
    DISABLED          NO [AUTHORIZATIONFAILED]    -ERR [AUTH] ...disabled 401, saying so
    UNAVAILABLE       NO [UNAVAILABLE]            -ERR [SYS/TEMP]         503 + Retry-After
    BANNED            BYE                         -ERR [AUTH], hang up    429 + Retry-After
    TOO_MANY          NO [LIMIT]                  -ERR [IN-USE]           (not counted per user)
    GONE              nothing: the client went away while its login ran

Behind `login`, in this order: the process's brute-force guard (`shared.authguard`: the
attempt's turn, the delay owed, a ban), the portal's checker (`StoreChecker`: the store checks the
password and opens the session in one call), its realm (`ProtocolRealm`: is the
gateway's protocol switched on for this user and on this host), then one log line.
Only a bad password or an unknown user counts as a failure at the guard, whose log
line fail2ban reads; a store that cannot answer is never reported as a bad password.

A new way in (LMTP delivery, ManageSieve, a web page) names its protocol in
`shared.features` and, for another kind of credentials, registers a checker for them
on the portal (`LoginService(..., checkers=[...])`); it does not write a login flow.
"""
from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable
from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword, UsernamePassword
from twisted.cred.error import LoginDenied, UnauthorizedLogin, UnhandledCredentials
from twisted.cred.portal import IRealm, Portal
from twisted.internet import defer
from twisted.python.failure import Failure
from zope.interface import Interface, implementer

from shared.authguard import AuthGuard, Banned, is_loopback, log_safe
from shared.connlimits import ConnectionLimits
from shared.errors import BANNED, AuthFailed, Forbidden
from shared.metrics import LOGINS
from shared.model import Adapter, Session

__all__ = ["ClientLogin", "IStoreSession", "LoginRefused", "LoginService", "Outcome", "ProtocolRealm",
           "StoreChecker", "is_loopback", "plaintext_login_allowed"]

log = logging.getLogger("shared.login")


def plaintext_login_allowed(secure: bool, plaintext_auth: bool, host: str) -> bool:
    """Whether a client may send its password in the clear: over TLS, where the admin
    allows plaintext logins, or from this machine (nobody can listen in on loopback)."""
    return secure or plaintext_auth or is_loopback(host)


class Outcome(enum.Enum):
    """Why a login gave no session; each gateway has one answer per outcome."""

    BAD_CREDENTIALS = "bad credentials"  # wrong password or unknown user: the same answer
    DISABLED = "disabled"  # right password, the protocol is switched off for this user or host
    UNAVAILABLE = "unavailable"  # the store could not say: try again later
    BANNED = "banned"  # the guard refuses the address for `retry_after` more seconds
    GONE = "gone"  # the client went away while its login ran: nobody to answer
    TOO_MANY = "too many connections"  # the user holds mail_max_userip_connections from this address


class LoginRefused(Exception):
    def __init__(self, outcome: Outcome, retry_after: float = 0.0) -> None:
        super().__init__(outcome.value)
        self.outcome = outcome
        self.retry_after = retry_after


class IStoreSession(Interface):
    """The avatar of a login: the user's session at the store (`shared.model.Session`)."""


@implementer(IUsernamePassword)
class ClientLogin(UsernamePassword):
    """A user name and password as a client sent them, and the address it connects from
    (the guard counts by it and the store logs it)."""

    def __init__(self, username: str, password: str, client_address: str) -> None:
        super().__init__(username, password)  # type: ignore[arg-type]  # text, not bytes
        self.client_address = client_address


@implementer(ICredentialsChecker)
class StoreChecker:
    """Checks a user name and password at the store for one protocol.

    The store checks the password and opens a session in one call, so the avatar id
    this checker hands the realm is that session. A store refusing the protocol for
    the user (Forbidden) is `LoginDenied`, a bad password `UnauthorizedLogin`, an
    address the store has banned `Banned` (for `ban_retry` seconds, as far as the
    gateway can tell); any other failure (an outage) passes through unchanged.
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, adapter: Adapter, protocol: str, ban_retry: float = 0.0,
                 lifetime: int | None = None) -> None:
        self.adapter = adapter
        self.protocol = protocol
        self.ban_retry = ban_retry
        self.lifetime = lifetime

    def requestAvatarId(self, credentials: Any) -> defer.Deferred:
        address = getattr(credentials, "client_address", None)
        d = self.adapter.logon(credentials.username, credentials.password, self.protocol, address,
                               self.lifetime)
        return d.addErrback(self._refused, address)

    def _refused(self, failure: Failure, address: str | None) -> Failure:
        if failure.check(AuthFailed) and failure.value.reason == BANNED:
            raise Banned(address or "", self.ban_retry)
        if failure.check(AuthFailed):
            raise UnauthorizedLogin(failure.getErrorMessage())
        if failure.check(Forbidden):
            raise LoginDenied(failure.getErrorMessage())
        return failure


@implementer(IRealm)
class ProtocolRealm:
    """Lets a session in only where its protocol is switched on for the user (as the
    store reported) and not switched off on this gateway host (`disabled_features`)."""

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol

    def requestAvatar(self, session: Session, mind: object,
                      *interfaces: type[Interface]) -> tuple[type[Interface], Session, Callable[[], Any]]:
        if IStoreSession not in interfaces:
            session.logoff()
            raise NotImplementedError("a store login gives a store session only")
        if not session.has_feature(self.protocol):
            session.logoff()
            raise LoginDenied(f"{self.protocol} is switched off for {session.user.name}")
        return IStoreSession, session, session.logoff


def _always_connected() -> bool:
    return True


class LoginService:
    """The one login flow of a gateway's protocol; see the module docstring."""

    def __init__(self, adapter: Adapter, guard: AuthGuard, protocol: str,
                 checkers: Iterable[ICredentialsChecker] = (), limits: ConnectionLimits | None = None,
                 session_lifetime: int | None = None) -> None:
        self.adapter = adapter
        self.guard = guard
        self.protocol = protocol
        # Connections per address and logins per user and address (None: not counted).
        self.limits = limits
        self.portal = Portal(ProtocolRealm(protocol),
                             [StoreChecker(adapter, protocol, guard.ban_time, session_lifetime), *checkers])

    def login(self, credentials: ClientLogin,
              connected: Callable[[], bool] = _always_connected) -> defer.Deferred:
        """Fires with the user's `Session`, or fails with `LoginRefused`.

        `connected()` says whether the client is still there; once it is not, the login
        stops (after the guard's delay) or logs off the session it got.
        """
        d = defer.Deferred.fromCoroutine(self._login(credentials, connected))
        return d.addBoth(self._counted)

    def _counted(self, result: Any) -> Any:
        """Logins by outcome (shared.metrics): success, or the refusal's outcome."""
        if isinstance(result, Failure):
            outcome = result.value.outcome.name.lower() if result.check(LoginRefused) else "error"
        else:
            outcome = "success"
        LOGINS.labels(self.protocol, outcome).inc()
        return result

    async def _login(self, credentials: ClientLogin, connected: Callable[[], bool]) -> Session:
        protocol, user, address = self.protocol, credentials.username, credentials.client_address
        try:
            # This attempt's turn, and the delay owed for earlier failures, come before
            # the password is checked.
            attempt = await self.guard.before_attempt(protocol, address, user)
        except Banned as banned:
            raise LoginRefused(Outcome.BANNED, banned.retry_after) from None
        try:
            return await self._check(credentials, connected)
        finally:
            attempt.done()

    async def _check(self, credentials: ClientLogin, connected: Callable[[], bool]) -> Session:
        protocol, user, address = self.protocol, credentials.username, credentials.client_address
        if not connected():
            raise LoginRefused(Outcome.GONE)
        try:
            _, session, _ = await self.portal.login(credentials, None, IStoreSession)
        except Banned as banned:
            # The store keeps bans of its own (across restarts and gateway hosts).
            log.warning("%s login refused, address banned at the store: user=%s rip=%s",
                        protocol, log_safe(user), address)
            raise LoginRefused(Outcome.BANNED, banned.retry_after) from None
        except UnauthorizedLogin:
            self.guard.failed(protocol, address, user)  # its log line is the failure's
            raise LoginRefused(Outcome.BAD_CREDENTIALS) from None
        except LoginDenied:
            log.warning("%s login refused, %s disabled: user=%s rip=%s", protocol, protocol, log_safe(user), address)
            raise LoginRefused(Outcome.DISABLED) from None
        except UnhandledCredentials:
            raise  # no checker for these credentials: a gateway's mistake, not the store's
        except Exception as exc:  # noqa: BLE001  (an outage is never a bad password)
            log.warning("%s login of %s: store unavailable: %s rip=%s", protocol, log_safe(user), exc, address)
            raise LoginRefused(Outcome.UNAVAILABLE) from None
        if not connected():
            session.logoff()
            raise LoginRefused(Outcome.GONE)
        self.guard.succeeded(address, user)
        if self.limits is not None:
            give_back = self.limits.user_login(session.user.name or user, address)
            if give_back is None:
                session.logoff()
                log.warning("%s login refused, too many connections (mail_max_userip_connections=%d): "
                            "user=%s rip=%s", protocol, self.limits.per_user_ip.limit, log_safe(user), address)
                raise LoginRefused(Outcome.TOO_MANY)
            session.on_logoff.append(give_back)
        log.info("%s login: user=%s rip=%s", protocol, log_safe(user), address)
        return session
