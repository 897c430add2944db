"""Getting in: STARTTLS, LOGIN, AUTHENTICATE PLAIN with SASL-IR (RFC 3501 §6.2, RFC 4616,
RFC 4959), and the one `log_in` every way in goes through.

Before TLS, and unless `disable_plaintext_auth = no` or the client is on loopback,
LOGIN and AUTHENTICATE are refused and LOGINDISABLED is advertised instead of
AUTH=PLAIN (RFC 3501 §6.2.3, §7.2.1).
"""
from __future__ import annotations

import binascii
import logging
from base64 import b64decode
from typing import Any

from gateways.imap import dispatch
from gateways.imap.dispatch import NOT_AUTHENTICATED, Bad, No, Reply, capability, command
from gateways.imap.grammar import writer as w
from shared.authguard import Banned, log_safe
from shared.errors import AuthFailed, Forbidden

log = logging.getLogger("gateways.imap")


def auth_failed() -> No:
    return No("Authentication failed.", "AUTHENTICATIONFAILED")


def plaintext_refused() -> No:
    return No("Plaintext authentication disallowed on non-secure (SSL/TLS) connections.", "PRIVACYREQUIRED")


def not_allowed() -> No:
    return No("IMAP access is disabled for this account.", "AUTHORIZATIONFAILED")


def unavailable() -> No:
    return No("Temporary failure, please try again later.", "UNAVAILABLE")


def _tls_offered(conn: Any) -> bool:
    return conn.state == NOT_AUTHENTICATED and conn.factory.tls_options is not None and not conn.tls_active


def _plaintext_ok(conn: Any) -> bool:
    return conn.state == NOT_AUTHENTICATED and conn.plaintext_allowed()


capability("STARTTLS", _tls_offered)
capability("LOGINDISABLED", lambda conn: conn.state == NOT_AUTHENTICATED and not conn.plaintext_allowed())
capability("AUTH=PLAIN", _plaintext_ok)
capability("SASL-IR", _plaintext_ok)


@command("STARTTLS", NOT_AUTHENTICATED)
def starttls(conn: Any, cmd: Any) -> Reply:
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
async def login(conn: Any, cmd: Any) -> Reply:
    if not conn.plaintext_allowed():
        raise plaintext_refused()
    return await log_in(conn, cmd.args.userid, cmd.args.password)


@command("AUTHENTICATE", NOT_AUTHENTICATED)
async def authenticate(conn: Any, cmd: Any) -> Reply:
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
        try:
            response = b64decode(line.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise Bad("Invalid base64 in the SASL response") from None
    parts = response.split(b"\0")
    if len(parts) != 3:
        raise Bad("Invalid SASL PLAIN response")
    authzid, authcid, password = (p.decode("utf-8", "replace") for p in parts)
    if authzid and authzid != authcid:
        raise auth_failed()  # no logging in as someone else
    return await log_in(conn, authcid, password)


async def log_in(conn: Any, user: str, password: str) -> Reply:
    """Check the password with the store (through the shared brute-force guard) and
    switch the connection to the authenticated state.

    A bad password and an unknown user get the same answer; an account with IMAP
    switched off gets NO; a store outage gets NO [UNAVAILABLE], never a bad password.
    """
    factory = conn.factory
    try:
        await factory.guard.before_attempt("imap", conn.peer_host, user)
    except Banned:
        conn.send(w.untagged("BYE", "Too many failed logins from your address, try again later"))
        conn.logout()
        raise auth_failed() from None
    try:
        session = await factory.adapter.logon(user, password, protocol="imap", client_address=conn.peer_host)
    except AuthFailed:
        factory.guard.failed("imap", conn.peer_host, user)
        raise auth_failed() from None
    except Forbidden:
        raise not_allowed() from None
    except Exception as exc:  # noqa: BLE001  (an outage is never a bad password)
        log.warning("imap login of %s: store unavailable: %s rip=%s", log_safe(user), exc, conn.peer_host)
        raise unavailable() from None
    if conn.closed:
        session.logoff()
        raise No("Connection closed.")
    if not session.has_feature("imap"):
        session.logoff()
        raise not_allowed()
    factory.guard.succeeded(conn.peer_host, user)
    conn.logged_in(session, user)
    log.info("imap login: user=%s rip=%s", log_safe(user), conn.peer_host)
    return Reply("OK", "Logged in", w.capability_code(dispatch.capabilities(conn)).decode("ascii"))
