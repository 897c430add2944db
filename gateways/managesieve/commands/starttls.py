"""STARTTLS (RFC 5804 §2.2): TLS on the plain port, then the capabilities again."""
from __future__ import annotations

from typing import Any

from gateways.managesieve.commands import command
from gateways.managesieve.commands.capability import send_capabilities


@command("STARTTLS", authenticated=False)
def starttls(conn: Any, args: Any) -> None:
    args.end()
    if conn.factory.tls_options is None:
        return conn.no("TLS is not configured.")
    if conn.tls_active:
        return conn.no("TLS is already active.")
    conn.ok("Begin TLS negotiation now.")
    conn.start_tls()
    # §2.2: after the handshake the server re-issues the capability list, then OK.
    send_capabilities(conn, "TLS negotiation successful.")
    return None
