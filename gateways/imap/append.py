"""APPEND (RFC 3501 §6.3.11) with APPENDUID (UIDPLUS, RFC 4315 §3), APPENDLIMIT (RFC 7889)
and LITERAL+ (RFC 7888).

The message never sits whole in the gateway: the framer writes APPEND literals
over `connection.SPOOL_APPEND_OVER` octets to a temporary file as they arrive
(`framing.CommandFramer.spool_threshold`), and `Folder.append` uploads that file
to the store's upload channel in chunks (small ones travel inline). Literals over
the limit are refused before the client sends them (synchronizing) or skipped
(LITERAL+), both as `NO [TOOBIG]`, by the framer.
"""
from __future__ import annotations

import contextlib
from typing import Any

from gateways.imap.dispatch import AUTHENTICATED_OR_SELECTED, No, Reply, capability, command
from gateways.imap.grammar import writer as w
from gateways.imap.tree import forget, resolve
from shared.errors import NotFound

capability("UIDPLUS")
capability("APPENDLIMIT", lambda conn: f"APPENDLIMIT={conn.factory.max_literal}")


@command("APPEND", AUTHENTICATED_OR_SELECTED)
async def append(conn: Any, cmd: Any) -> Reply:
    args = cmd.args
    spooled, conn.spooled = conn.spooled, ()
    try:
        source: Any = spooled[0] if spooled else bytes(args.message)
        size = _size(source)
        if size == 0:
            raise No("Cannot store an empty message.")
        if size > conn.factory.max_literal:
            raise No(f"Message too large (limit {conn.factory.max_literal} octets).", "TOOBIG")
        when = int(args.internal_date.timestamp()) if args.internal_date is not None else None
        start = None if isinstance(source, bytes) else source.tell()
        box = conn.selected
        # The store's push of this very message waits for the refresh below.
        with box.writing() if box is not None else contextlib.nullcontext():
            folder = await _target(conn, args.mailbox)
            try:
                uid, _ = await folder.append(source, args.flags, when)
            except NotFound:
                # The cached tree was out of date (the folder was deleted or replaced
                # elsewhere): ask the store once more before telling the client.
                forget(conn)
                again = await _target(conn, args.mailbox)
                if again.id == folder.id:
                    raise No("Mailbox does not exist.", "TRYCREATE") from None
                folder = again
                if start is not None:
                    source.seek(start)
                uid, _ = await folder.append(source, args.flags, when)
            except Exception:
                forget(conn)
                raise
            conn.factory.recent.arrived(folder.id, folder.uid_validity, uid)
            if box is not None and conn.selected is box and box.folder.id == folder.id:
                await box.refresh()  # EXISTS before the tagged OK (RFC 3501 §6.3.11)
    finally:
        for fp in spooled:
            fp.close()
    return Reply("OK", "APPEND completed", w.appenduid_code(folder.uid_validity, uid).decode("ascii"))


async def _target(conn: Any, name: str) -> Any:
    mailbox = await resolve(conn, name)
    if mailbox is None or not mailbox.selectable:
        raise No("Mailbox does not exist.", "TRYCREATE")
    return mailbox.folder


def _size(source: Any) -> int:
    if isinstance(source, bytes):
        return len(source)
    here = source.tell()
    end = source.seek(0, 2)
    source.seek(here)
    return end - here
