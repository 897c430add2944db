"""DATA (RFC 5321 §4.1.1.4, RFC 2033 §4.2) and BDAT (RFC 3030): the message, and one
reply per accepted recipient once the store has answered for each.

`250 2.0.0` is sent only after the store said the message is stored for that
recipient (its answer comes after the data is durable), so a crash after the
reply loses nothing. Data that breaks a limit is still read to its end, so the
connection stays in step, and then refused for every recipient.
"""
from __future__ import annotations

from typing import Any

from twisted.internet import defer

from gateways.lmtp.commands import command
from gateways.lmtp.content import MessageData
from gateways.lmtp.grammar import Reply, SyntaxProblem, parse_bdat
from gateways.lmtp.session import Transaction
from shared.spool import Spool

TEMPORARY_FAILURE = Reply(451, "4.3.0", "Temporary failure, try again later")


@command("DATA")
def data(conn: Any, argument: str) -> Reply:
    transaction = conn.transaction
    if transaction is None or not transaction.recipients:
        return conn.bad(Reply(503, "5.5.1", "No valid recipients"))
    if transaction.chunking:
        return conn.bad(Reply(503, "5.5.1", "DATA after BDAT"))
    if argument.strip():
        return conn.bad(Reply(501, "5.5.4", "DATA takes no argument"))
    _start_message(conn, transaction, dot_stuffed=True)
    conn.expect_message(transaction.data, lambda: deliver(conn, transaction))
    return Reply(354, "", "Send message, end with <CRLF>.<CRLF>")


@command("BDAT")
def bdat(conn: Any, argument: str) -> Any:
    """A chunk of `size` octets (RFC 3030 §2); replies after every chunk, per recipient after LAST."""
    try:
        size, last = parse_bdat(argument)
    except SyntaxProblem as problem:
        # Without a size the chunk cannot be skipped: the connection cannot stay in step.
        conn.closing = True
        return problem.reply
    transaction = conn.transaction
    if transaction is None or not transaction.recipients:
        refusal = conn.bad(Reply(503, "5.5.1", "No valid recipients"))
        conn.expect_octets(size, None, lambda: refusal)  # the chunk is read and dropped
        return None
    if not transaction.chunking:
        transaction.chunking = True
        _start_message(conn, transaction, dot_stuffed=False)

    def chunk_done() -> Any:
        if last:
            transaction.data.finish()
            return deliver(conn, transaction)
        return Reply(250, "2.0.0", f"{size} octets received")

    conn.expect_octets(size, transaction.data, chunk_done)
    return None


def _start_message(conn: Any, transaction: Transaction, dot_stuffed: bool) -> None:
    spool = Spool(conn.factory.spool_dir, conn.limits.max_message_size, conn.factory.spool_memory)
    transaction.spool = spool
    transaction.data = MessageData(spool.write, conn.limits.max_line_length, dot_stuffed)


def deliver(conn: Any, transaction: Transaction) -> defer.Deferred:
    """One reply per recipient, in RCPT order (RFC 2033 §4.2); the transaction ends."""
    conn.transaction = None
    count = len(transaction.recipients)
    spool, content = transaction.spool, transaction.data
    if spool.too_large:
        transaction.discard()
        return defer.succeed([Reply(552, "5.3.4", "Message too large")] * count)
    if content.bad_content is None and spool.size == 0:
        content.bad_content = "Message is empty"
    if content.bad_content is not None:
        transaction.discard()
        return defer.succeed([Reply(554, "5.6.0", content.bad_content)] * count)
    message = spool.close()
    d = defer.maybeDeferred(conn.factory.deliverer.deliver, message, transaction.sender, transaction.recipients)
    d.addCallback(lambda results: [recipient_reply(result) for result in results])

    def failed(failure: Any) -> list[Reply]:
        conn.log_failure(failure, "delivering")
        return [TEMPORARY_FAILURE] * count

    d.addErrback(failed)
    d.addBoth(lambda replies: (transaction.discard(), replies)[1])
    return d


# What each status of shared.delivery.RecipientResult is answered with (RFC 3463 codes).
STATUS_REPLIES = {
    "stored": (250, "2.0.0", "Saved"),
    "duplicate": (250, "2.0.0", "Already delivered (duplicate)"),
    "discarded": (250, "2.0.0", "Discarded by filter"),
    "rejected": (550, "5.7.1", "Rejected by filter"),
    "quota": (552, "5.2.2", "Mailbox is full"),
    "toolarge": (552, "5.3.4", "Message too large"),
    "unavailable": (451, "4.3.0", "Temporary failure, try again later"),
    "storagefull": (452, "4.3.1", "Insufficient system storage"),
}


def recipient_reply(result: Any) -> Reply:
    """The LMTP answer for one `shared.delivery.RecipientResult`; the result's own text
    (a Sieve reject's reason, "Redirected") replaces the default one."""
    code, status, text = STATUS_REPLIES.get(result.status, STATUS_REPLIES["unavailable"])
    if result.status in ("rejected", "discarded") and _one_line(result.text):
        text = _one_line(result.text)
    return Reply(code, status, f"<{result.address}> {text}")


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())[:400]
