"""AUTHENTICATE (RFC 5804 §2.1) with SASL PLAIN (RFC 4616) and LOGIN, and UNAUTHENTICATE
(§2.14.1). The login itself is the shared login service's, with its brute-force guard.

An exchange: the server sends a challenge as a string on a line of its own, the client
answers with a string (quoted or a literal); `"*"` aborts.
"""
from __future__ import annotations

import base64
from typing import Any

from twisted.internet import defer

from gateways.managesieve.arguments import Arguments, BadArguments
from gateways.managesieve.commands import command
from gateways.managesieve.parsing import Line
from gateways.managesieve.responses import AUTH_TOO_WEAK, ENCRYPT_NEEDED, TRYLATER, string
from shared.login import ClientLogin, LoginRefused, Outcome
from shared.sasl import decode_response, plain_credentials

REFUSALS = {
    Outcome.BAD_CREDENTIALS: ("Authentication failed.", None),
    Outcome.DISABLED: ("ManageSieve access is disabled for this account.", None),
    Outcome.UNAVAILABLE: ("The store is unavailable, try again later.", TRYLATER),
    Outcome.TOO_MANY: ("Maximum number of connections from user+IP exceeded.", TRYLATER),
}


@command("AUTHENTICATE", authenticated=False)
def authenticate(conn: Any, args: Arguments) -> Any:
    mechanism = args.text("a SASL mechanism").upper()
    initial = args.optional_string()
    args.end()
    if not conn.plaintext_allowed():
        # Without TLS configured only a stronger mechanism could help (§1.3 AUTH-TOO-WEAK).
        code = ENCRYPT_NEEDED if conn.factory.tls_options is not None else AUTH_TOO_WEAK
        return conn.no("Plaintext authentication is disallowed on non-secure connections.", code)
    if mechanism == "PLAIN":
        if initial is None:
            return challenge(conn, b"", plain)
        return plain(conn, initial)
    if mechanism == "LOGIN":
        if initial is None:
            return challenge(conn, b"Username:", login_user)
        return login_user(conn, initial)
    return conn.no(f"Unsupported authentication mechanism {mechanism[:32]!r}.")


def challenge(conn: Any, data: bytes, step: Any) -> None:
    """Send a challenge; the client's next line goes to `step(conn, response)`."""
    conn.send(string(base64.b64encode(data)) + b"\r\n")
    conn.sasl = lambda line: _response(conn, line, step)


def _response(conn: Any, line: Line, step: Any) -> Any:
    args = Arguments("AUTHENTICATE", line.tokens)
    try:
        data = args.string("a SASL response")
        args.end()
    except BadArguments as bad:
        return conn.no(str(bad))
    if data == b"*":
        return conn.no("Authentication aborted.")
    return step(conn, data)


def plain(conn: Any, data: bytes) -> Any:
    """RFC 4616: authzid NUL authcid NUL passwd; no logging in as somebody else."""
    decoded = decode_response(data)
    credentials = plain_credentials(decoded) if decoded is not None else None
    if credentials is None:
        return conn.no("Invalid SASL PLAIN response.")
    if credentials.for_someone_else:
        return conn.no(REFUSALS[Outcome.BAD_CREDENTIALS][0])
    return log_in(conn, credentials.user, credentials.password)


def login_user(conn: Any, data: bytes) -> Any:
    user = decode_response(data)
    if user is None:
        return conn.no("Invalid base64.")
    return challenge(conn, b"Password:", lambda c, reply: login_password(c, user, reply))


def login_password(conn: Any, user: bytes, data: bytes) -> Any:
    password = decode_response(data)
    if password is None:
        return conn.no("Invalid base64.")
    return log_in(conn, user.decode("utf-8", "replace"), password.decode("utf-8", "replace"))


@defer.inlineCallbacks
def log_in(conn: Any, user: str, password: str) -> Any:
    try:
        session = yield conn.factory.login.login(ClientLogin(user, password, conn.peer_host),
                                                 lambda: not conn.closed)
    except LoginRefused as refused:
        if refused.outcome is Outcome.BANNED:
            conn.bye("Too many failed logins from your address, try again later.")
        elif refused.outcome is not Outcome.GONE:
            conn.no(*REFUSALS[refused.outcome])
        return
    conn.logged_in(session)
    conn.ok("Logged in.")


@command("UNAUTHENTICATE", authenticated=True)
def unauthenticate(conn: Any, args: Arguments) -> None:
    args.end()
    conn.logged_out()
    conn.ok("Unauthenticate completed.")
