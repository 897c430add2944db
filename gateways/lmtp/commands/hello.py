"""LHLO (RFC 2033 §4.1) and the SMTP greetings LMTP does not take."""
from __future__ import annotations

from typing import Any

from gateways.lmtp.commands import command
from gateways.lmtp.grammar import Reply


@command("LHLO")
def lhlo(conn: Any, argument: str) -> Reply:
    """Name the extensions (RFC 2033 §4.1, RFC 5321 §4.1.1.1); a new LHLO resets the transaction."""
    if not argument.strip():
        return conn.bad(Reply(501, "5.5.4", "Syntax: LHLO hostname"))
    conn.reset_transaction()
    conn.client_name = argument.strip()
    size = conn.limits.max_message_size
    return Reply(250, "", "CHUNKING", extra=(
        conn.factory.hostname, "PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME",
        f"SIZE {size}" if size else "SIZE"))


@command("HELO", "EHLO")
def smtp_hello(conn: Any, argument: str) -> Reply:
    """An LMTP server must not answer HELO/EHLO as an SMTP server would (RFC 2033 §4.1)."""
    return conn.bad(Reply(500, "5.5.1", "This is LMTP: use LHLO"))
