"""MAIL FROM and RCPT TO: the envelope of a transaction (RFC 5321 §4.1.1.2-3, RFC 2033 §4.2).

Recipients are resolved at RCPT, so an unknown one is refused there with 550
5.1.1 and a store outage with 451 4.3.0 (the MTA retries); the store is not
asked about a recipient beyond what the MTA already sent.
"""
from __future__ import annotations

from typing import Any

from twisted.internet import defer

from gateways.lmtp.commands import command
from gateways.lmtp.grammar import Reply, SyntaxProblem, parse_mail_from, parse_rcpt_to
from gateways.lmtp.session import Transaction
from shared.errors import NotFound

BODY_TYPES = ("7BIT", "8BITMIME")


@command("MAIL")
def mail(conn: Any, argument: str) -> Reply:
    """Start a transaction; SIZE (RFC 1870) and BODY (RFC 6152) parameters are checked."""
    if conn.client_name is None:
        return conn.bad(Reply(503, "5.5.1", "Send LHLO first"))
    if conn.transaction is not None:
        return conn.bad(Reply(503, "5.5.1", "Nested MAIL command"))
    try:
        path = parse_mail_from(argument)
    except SyntaxProblem as problem:
        return conn.bad(problem.reply)
    for key, value in path.parameters.items():
        if key == "SIZE":
            if value is None or not value.isdigit():
                return conn.bad(Reply(501, "5.5.4", "Bad SIZE parameter"))
            limit = conn.limits.max_message_size
            if limit and int(value) > limit:
                return Reply(552, "5.3.4", f"Message too large (at most {limit} octets)")
        elif key == "BODY":
            if (value or "").upper() not in BODY_TYPES:
                return conn.bad(Reply(501, "5.5.4", "BODY must be 7BIT or 8BITMIME"))
        else:
            return conn.bad(Reply(555, "5.5.4", f"Unsupported MAIL parameter {key}"))
    conn.transaction = Transaction(sender=path.address)
    return Reply(250, "2.1.0", "OK")


@command("RCPT")
def rcpt(conn: Any, argument: str) -> Any:
    """Add a recipient once the store knows it (RFC 2033 §4.2: each gets its own DATA reply)."""
    transaction = conn.transaction
    if transaction is None:
        return conn.bad(Reply(503, "5.5.1", "MAIL first"))
    if transaction.data is not None or transaction.chunking:
        return conn.bad(Reply(503, "5.5.1", "RCPT after BDAT"))
    try:
        path = parse_rcpt_to(argument)
    except SyntaxProblem as problem:
        return conn.bad(problem.reply)
    if path.parameters:
        return conn.bad(Reply(555, "5.5.4", f"Unsupported RCPT parameter {next(iter(path.parameters))}"))
    if len(transaction.recipients) >= conn.limits.max_recipients:
        return Reply(452, "4.5.3", "Too many recipients")
    d = defer.maybeDeferred(conn.factory.deliverer.resolve, path.address)
    d.addCallbacks(lambda recipient: _accepted(conn, transaction, recipient),
                   lambda failure: _refused(conn, path.address, failure))
    return d


def _accepted(conn: Any, transaction: Transaction, recipient: Any) -> Reply:
    if conn.transaction is not transaction:  # reset while the store answered
        return Reply(451, "4.3.0", "Transaction reset")
    transaction.recipients.append(recipient)
    return Reply(250, "2.1.5", "OK")


def _refused(conn: Any, address: str, failure: Any) -> Reply:
    if failure.check(NotFound):
        return Reply(550, "5.1.1", f"<{address}> User doesn't exist")
    conn.log_failure(failure, f"resolving <{address}>")
    return Reply(451, "4.3.0", "Temporary failure, try again later")
