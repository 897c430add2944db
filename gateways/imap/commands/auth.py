"""Getting in: STARTTLS, LOGIN, AUTHENTICATE PLAIN with SASL-IR (RFC 3501 §6.2, RFC 4616,
RFC 4959), and the one `log_in` every way in goes through (to `shared.login`); getting out
without hanging up: UNAUTHENTICATE (RFC 8437).

Before TLS, and unless `disable_plaintext_auth = no` or the client is on loopback,
LOGIN and AUTHENTICATE are refused and LOGINDISABLED is advertised instead of
AUTH=PLAIN (RFC 3501 §6.2.3, §7.2.1).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateways.imap import dispatch
from gateways.imap.dispatch import (AUTHENTICATED_OR_SELECTED, NOT_AUTHENTICATED, Bad, No, Reply, capability,
                                    command, unavailable)
from gateways.imap.grammar import writer as w
from shared.login import ClientLogin, LoginRefused, Outcome
from shared.sasl import decode_response, plain_credentials

if TYPE_CHECKING:
    from gateways.imap.connection import IMAPConnection


def auth_failed() -> No:
    return No("Authentication failed.", "AUTHENTICATIONFAILED")


def plaintext_refused() -> No:
    return No("Plaintext authentication disallowed on non-secure (SSL/TLS) connections.", "PRIVACYREQUIRED")


def not_allowed() -> No:
    return No("IMAP access is disabled for this account.", "AUTHORIZATIONFAILED")


# The answer to each way a login is refused (besides a ban and a closed connection).
def too_many() -> No:
    return No("Maximum number of connections from user+IP exceeded (mail_max_userip_connections).", "LIMIT")


REFUSALS = {Outcome.BAD_CREDENTIALS: auth_failed, Outcome.DISABLED: not_allowed, Outcome.UNAVAILABLE: unavailable,
            Outcome.TOO_MANY: too_many}


def _tls_offered(conn: IMAPConnection) -> bool:
    return conn.state == NOT_AUTHENTICATED and conn.factory.tls_options is not None and not conn.tls_active


def _plaintext_ok(conn: IMAPConnection) -> bool:
    return conn.state == NOT_AUTHENTICATED and conn.plaintext_allowed()


capability("STARTTLS", _tls_offered)
capability("LOGINDISABLED", lambda conn: conn.state == NOT_AUTHENTICATED and not conn.plaintext_allowed())
capability("AUTH=PLAIN", _plaintext_ok)
capability("SASL-IR", _plaintext_ok)
capability("UNAUTHENTICATE")


@command("STARTTLS", NOT_AUTHENTICATED)
def starttls(conn: IMAPConnection, cmd: Any) -> Reply:
    if conn.factory.tls_options is None:
        raise Bad("TLS is not configured")
    if conn.tls_active:
        raise Bad("TLS is already active")

    def handshake() -> None:
        # Anything pipelined after STARTTLS came in plaintext before the handshake:
        # it must never run as if it came over TLS (CVE-2011-0411, CVE-2021-38084).
        conn.framer.discard_buffered()
        conn.transport.startTLS(conn.factory.tls_options)
        conn.tls_active = True
    conn.after_reply(handshake)
    return Reply("OK", "Begin TLS negotiation now")


@command("LOGIN", NOT_AUTHENTICATED)
async def login(conn: IMAPConnection, cmd: Any) -> Reply:
    if not conn.plaintext_allowed():
        raise plaintext_refused()
    return await log_in(conn, cmd.args.userid, cmd.args.password)


@command("AUTHENTICATE", NOT_AUTHENTICATED)
async def authenticate(conn: IMAPConnection, cmd: Any) -> Reply:
    if cmd.args.mechanism != "PLAIN":
        raise No("Unsupported authentication mechanism.", "CANNOT")
    if not conn.plaintext_allowed():
        raise plaintext_refused()
    response = cmd.args.initial_response
    if response is None:
        conn.send(w.continuation(b""))
        line = await conn.read_line()
        if line.strip() == b"*":
            raise Bad("Authentication cancelled")
        response = decode_response(line)
        if response is None:
            raise Bad("Invalid base64 in the SASL response")
    credentials = plain_credentials(response)
    if credentials is None:
        raise Bad("Invalid SASL PLAIN response")
    if credentials.for_someone_else:
        raise auth_failed()
    return await log_in(conn, credentials.user, credentials.password)


@command("UNAUTHENTICATE", AUTHENTICATED_OR_SELECTED)
def unauthenticate(conn: IMAPConnection, cmd: Any) -> None:
    """RFC 8437 §3: the store session ends; the connection (and its TLS) stays for another login."""
    conn.unauthenticated()


async def log_in(conn: IMAPConnection, user: str, password: str) -> Reply:
    """Log in through the gateway's login service and switch the connection to the
    authenticated state.

    A bad password and an unknown user get the same answer; an account with IMAP
    switched off gets NO; a store outage gets NO [UNAVAILABLE], never a bad password.
    """
    try:
        session = await conn.factory.login.login(ClientLogin(user, password, conn.peer_host),
                                                 lambda: not conn.closed)
    except LoginRefused as refused:
        raise refusal(conn, refused.outcome) from None
    conn.logged_in(session, user)
    return Reply("OK", "Logged in", w.capability_code(dispatch.capabilities(conn)).decode("ascii"))


def refusal(conn: IMAPConnection, outcome: Outcome) -> No:
    """The tagged NO for a refused login; a banned address is also told BYE and let go."""
    if outcome is Outcome.BANNED:
        conn.send(w.untagged("BYE", "Too many failed logins from your address, try again later"))
        conn.logout()
        return auth_failed()
    if outcome is Outcome.GONE:
        return No("Connection closed.")
    return REFUSALS[outcome]()
