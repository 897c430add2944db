"""NOOP, RSET, QUIT, VRFY and HELP (RFC 5321 §4.1.1.5-10)."""
from __future__ import annotations

from typing import Any

from gateways.lmtp.commands import command
from gateways.lmtp.grammar import Reply


@command("NOOP")
def noop(conn: Any, argument: str) -> Reply:
    return Reply(250, "2.0.0", "OK")


@command("RSET")
def rset(conn: Any, argument: str) -> Reply:
    """Abort the transaction (RFC 5321 §4.1.1.5)."""
    conn.reset_transaction()
    return Reply(250, "2.0.0", "OK")


@command("QUIT")
def quit_(conn: Any, argument: str) -> Reply:
    conn.closing = True
    return Reply(221, "2.0.0", "Bye")


@command("VRFY")
def vrfy(conn: Any, argument: str) -> Reply:
    """252: never say who exists (RFC 5321 §3.5.3, no user enumeration)."""
    return Reply(252, "2.5.2", "Cannot VRFY user, but will accept message and attempt delivery")


@command("HELP")
def help_(conn: Any, argument: str) -> Reply:
    return Reply(214, "2.0.0", "Commands: LHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP")


@command("EXPN", "TURN", "ETRN", "STARTTLS", "AUTH")
def not_implemented(conn: Any, argument: str) -> Reply:
    return conn.bad(Reply(502, "5.5.1", "Command not implemented"))
