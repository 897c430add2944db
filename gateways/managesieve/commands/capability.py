"""CAPABILITY (RFC 5804 §2.4), also the greeting (§1.7) and the answer after STARTTLS (§2.2)."""
from __future__ import annotations

from typing import Any

from gateways.managesieve.commands import command
from gateways.managesieve.responses import response, string
from shared.sieve import capabilities as sieve_capabilities

IMPLEMENTATION = "groupware"
VERSION = "1.0"
SASL_MECHANISMS = ("PLAIN", "LOGIN")


def capabilities(conn: Any) -> list[tuple[str, str | None]]:
    """What this connection offers now: SASL mechanisms only where a password may be sent
    (`disable_plaintext_auth`), STARTTLS until TLS is on, OWNER once logged in."""
    factory = conn.factory
    mechanisms = " ".join(SASL_MECHANISMS) if conn.plaintext_allowed() else ""
    caps: list[tuple[str, str | None]] = [
        ("IMPLEMENTATION", IMPLEMENTATION),
        ("SASL", "" if conn.authenticated else mechanisms),
        ("SIEVE", " ".join(sieve_capabilities())),
        ("MAXREDIRECTS", str(factory.sieve_limits.max_redirects)),
    ]
    if factory.tls_options is not None and not conn.tls_active and not conn.authenticated:
        caps.append(("STARTTLS", None))
    if conn.authenticated:
        caps.append(("OWNER", conn.session.user.name))
    caps += [("UNAUTHENTICATE", None), ("VERSION", VERSION)]
    return caps


def send_capabilities(conn: Any, text: str | None = None) -> None:
    lines = [string(name) + (b" " + string(value) if value is not None else b"") + b"\r\n"
             for name, value in capabilities(conn)]
    conn.send(b"".join(lines) + response("OK", None, text))


@command("CAPABILITY", authenticated=None)
def capability(conn: Any, args: Any) -> None:
    args.end()
    send_capabilities(conn, "Capability completed.")

