"""`groupware deliver -r RECIPIENT [-f SENDER]`: one message from standard input into the store.

Like dovecot-lda or kopano-dagent's pipe mode, and usable as Postfix's
`mailbox_command`: the message goes through the same pipeline as LMTP
(shared.delivery: Sieve, spam to Junk, +detail, duplicate suppression) and
the exit code tells the MTA what happened (sysexits.h):

    0   EX_OK         stored (or dropped on purpose: duplicate, Sieve discard)
    65  EX_DATAERR    the input cannot be read as a message (empty, NUL, too large lines)
    67  EX_NOUSER     no such recipient: the MTA bounces
    73  EX_CANTCREAT  mailbox full or message too large: the MTA bounces
    75  EX_TEMPFAIL   store, database or directory unavailable: the MTA retries
    77  EX_NOPERM     refused by the recipient's Sieve script (reject): the MTA bounces

It reaches the store on server_socket with the delivery right, which the store
grants to root, its own user and the users in its `delivery_uids`.
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
from typing import Any, BinaryIO

from shared.config import Config
from shared.errors import NotFound
from shared.spool import Spool, crlf

log = logging.getLogger("groupware.deliver")

EX_OK = 0
EX_DATAERR = 65
EX_NOUSER = 67
EX_CANTCREAT = 73
EX_TEMPFAIL = 75
EX_NOPERM = 77
STATUS_EXITS = {"stored": EX_OK, "duplicate": EX_OK, "discarded": EX_OK, "quota": EX_CANTCREAT,
                "toolarge": EX_CANTCREAT, "rejected": EX_NOPERM, "unavailable": EX_TEMPFAIL,
                "storagefull": EX_TEMPFAIL}
READ_SIZE = 64 * 1024


class BadInput(ValueError):
    """Standard input is not a message we can store."""


def spool_input(stream: BinaryIO, spool: Spool, max_line: int) -> bool:
    """Copy `stream` into `spool` with CRLF line ends; a leading mbox `From ` line
    (which some MTAs add) is dropped, as dovecot-lda does. True when the message
    starts with a Return-Path field: the MTA's local delivery (Postfix's local(8))
    has put the trace fields on already, and they go on only once (RFC 5321 §4.4)."""
    first = True
    traced = False
    carry = b""  # a CR at the end of a read: its LF may start the next one
    line_length = 0
    while True:
        chunk = stream.read(READ_SIZE)
        if not chunk:
            break
        data = carry + chunk
        carry = b""
        if data.endswith(b"\r"):
            data, carry = data[:-1], b"\r"
        if first:
            first = False
            if data.startswith(b"From "):
                newline = data.find(b"\n")
                data = data[newline + 1:] if newline >= 0 else b""
            traced = data[:12].lower() == b"return-path:"
        if b"\x00" in data:
            raise BadInput("message contains NUL characters")
        for i, piece in enumerate(data.split(b"\n")):
            line_length = (line_length if i == 0 else 0) + len(piece) - piece.endswith(b"\r")
            if line_length > max_line:
                raise BadInput(f"message has a line longer than {max_line} octets")
        spool.write(crlf(data))
    spool.write(crlf(carry))
    if spool.size == 0:
        raise BadInput("empty message")
    return traced


def deliver(cfg: Config, recipient: str, sender: str, stream: BinaryIO | None = None) -> int:
    """Read the message, deliver it in a reactor of its own; the sysexits code."""
    from twisted.internet import task

    from shared.logging import setup_logging

    log_file = cfg.get("log_file")
    # The MTA puts what a mailbox_command writes into bounces: on stderr only problems.
    setup_logging(cfg.get("log_level") if log_file not in ("", "-") else "warning", log_file)
    stream = stream if stream is not None else sys.stdin.buffer
    spool = Spool(os.environ.get("TMPDIR") or tempfile.gettempdir(), cfg.get_size("lmtp_max_message_size"))
    try:
        try:
            traced = spool_input(stream, spool, cfg.get_size("lmtp_max_line_length"))
        except BadInput as exc:
            return _fail(EX_DATAERR, str(exc))
        except OSError as exc:
            return _fail(EX_DATAERR, f"cannot read the message: {exc}")
        if spool.too_large:
            return _fail(EX_CANTCREAT, "message too large")
        message = spool.close()
        code: list[int] = []
        task.react(lambda reactor: _run(reactor, cfg, message, recipient, sender, not traced, code), [])
    except SystemExit:
        pass
    finally:
        spool.discard()
    return code[0] if code else EX_TEMPFAIL


async def _deliver(reactor: Any, cfg: Config, message: str | bytes, address: str, sender: str,
                   trace: bool) -> int:
    from shared.delivery import Deliverer
    from shared.model import Adapter

    adapter = Adapter(cfg, reactor)
    try:
        deliverer = Deliverer(adapter, cfg, reactor)
        try:
            recipient = await deliverer.resolve(address)
        except NotFound:
            return _fail(EX_NOUSER, f"<{address}>: no such user")
        (result,) = await deliverer.deliver(message, sender, [recipient], trace_headers=trace)
        code = STATUS_EXITS.get(result.status, EX_TEMPFAIL)
        if code != EX_OK:
            return _fail(code, f"<{address}>: {result.text or result.status}")
        return EX_OK
    finally:
        adapter.close()


def _run(reactor: Any, cfg: Config, message: str | bytes, address: str, sender: str, trace: bool,
         code: list[int]) -> Any:
    from twisted.internet import defer

    d = defer.ensureDeferred(_deliver(reactor, cfg, message, address, sender, trace))

    def failed(failure: Any) -> int:
        # An outage, a refused delivery right or a bug: the MTA keeps the message and retries.
        return _fail(EX_TEMPFAIL, f"temporary failure: {failure.getErrorMessage()}")
    d.addErrback(failed)
    d.addCallback(code.append)
    return d


def _fail(code: int, message: str) -> int:
    print(f"groupware deliver: {message}", file=sys.stderr)
    return code
