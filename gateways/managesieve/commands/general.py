"""NOOP (RFC 5804 §2.13) and LOGOUT (§2.3)."""
from __future__ import annotations

from typing import Any

from gateways.managesieve.commands import command
from gateways.managesieve.responses import tagged


@command("NOOP", authenticated=None)
def noop(conn: Any, args: Any) -> None:
    """An optional string comes back as the TAG response code."""
    tag = args.optional_string()
    args.end()
    conn.ok("Done", tagged("TAG", tag) if tag is not None else None)


@command("LOGOUT", authenticated=None)
def logout(conn: Any, args: Any) -> None:
    args.end()
    conn.ok("Logout completed.")
    conn.close()
