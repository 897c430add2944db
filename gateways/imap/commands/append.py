"""APPEND (RFC 3501 §6.3.11) with MULTIAPPEND (RFC 3502), APPENDUID (UIDPLUS, RFC 4315 §3),
APPENDLIMIT (RFC 7889), LITERAL+ (RFC 7888) and CATENATE (RFC 4469, catenate.py).

All messages of one APPEND go to the store in one call that stores them in one
transaction: all of them or none (RFC 3502 §6.3.11), whatever fails on the way (a
message over the store's size limit, a full disk, the store process killed).

The messages never sit whole in the gateway: the framer writes APPEND literals
over `connection.SPOOL_APPEND_OVER` octets to temporary files as they arrive
(`framing.CommandFramer.spool_threshold`; their literals in the command become
empty), and `Folder.append_all` uploads those to the store's upload channel in
chunks (small ones travel inline). Literals over the limit are refused before the
client sends them (synchronizing) or skipped (LITERAL+), both as `NO [TOOBIG]`, by
the framer.
"""
from __future__ import annotations

import contextlib
from typing import IO, TYPE_CHECKING, Any

from gateways.imap.commands import catenate
from gateways.imap.dispatch import AUTHENTICATED_OR_SELECTED, No, Reply, capability, command
from gateways.imap.grammar import writer as w
from gateways.imap.grammar.commands import AppendMessage
from gateways.imap.listing_cache import CACHE
from gateways.imap.tree import forget, target_folder
from shared.errors import NotFound

if TYPE_CHECKING:
    from gateways.imap.connection import IMAPConnection

capability("UIDPLUS")
capability("MULTIAPPEND")
capability("APPENDLIMIT", lambda conn: f"APPENDLIMIT={conn.factory.max_literal}")

# (source, flags, internal date as a Unix time) as `Folder.append_all` takes them.
Outgoing = tuple[bytes | IO[bytes], tuple[str, ...], int | None]


@command("APPEND", AUTHENTICATED_OR_SELECTED)
async def append(conn: IMAPConnection, cmd: Any) -> Reply:
    spooled, conn.spooled = conn.spooled, ()
    try:
        validity, uids = await store_messages(conn, cmd.args.mailbox, cmd.args.messages, spooled)
    finally:
        for fp in spooled:
            fp.close()
    return Reply("OK", "APPEND completed", w.appenduid_code(validity, uids).decode("ascii"))


async def store_messages(conn: IMAPConnection, mailbox: str, messages: tuple[AppendMessage, ...],
                         spooled: tuple[IO[bytes], ...]) -> tuple[int, list[int]]:
    """Store the messages of an APPEND (or REPLACE) into `mailbox`, all or none; the
    (uid validity, uids) they got. The selected mailbox hears of them before this returns."""
    made: list[IO[bytes]] = []
    try:
        outgoing = await _outgoing(conn, messages, spooled, made)
        return await _store(conn, mailbox, outgoing, spooled + tuple(made))
    finally:
        for fp in made:
            fp.close()


async def _store(conn: IMAPConnection, mailbox: str, outgoing: list[Outgoing],
                 files: tuple[IO[bytes], ...]) -> tuple[int, list[int]]:
    sizes = [_size(source) for source, _, _ in outgoing]  # before the upload reads the files
    box = conn.selected
    # The store's push of these very messages waits for the refresh below.
    with box.writing() if box is not None else contextlib.nullcontext():
        folder = await target_folder(conn, mailbox)
        try:
            validity, uids, modseq = await folder.append_all(outgoing)
        except NotFound:
            # The cached tree was out of date (the folder was deleted or replaced
            # elsewhere): ask the store once more before telling the client.
            forget(conn)
            again = await target_folder(conn, mailbox)
            if again.id == folder.id:
                raise No("Mailbox does not exist.", "TRYCREATE") from None
            folder = again
            for fp in files:
                fp.seek(0)
            validity, uids, modseq = await folder.append_all(outgoing)
        except Exception:
            forget(conn)
            raise
        conn.factory.recent.arrived(folder.id, validity, uids[0])
        CACHE.learn_sizes(folder.id, validity, dict(zip(uids, sizes)))
        if box is not None and conn.selected is box and box.folder.id == folder.id \
                and not box.appended(uids, [flags for _, flags, _ in outgoing], modseq):
            await box.refresh()  # EXISTS before the tagged OK (RFC 3501 §6.3.11)
    return validity, uids


async def _outgoing(conn: IMAPConnection, messages: tuple[AppendMessage, ...], spooled: tuple[IO[bytes], ...],
                    made: list[IO[bytes]]) -> list[Outgoing]:
    """Each message with its source: its literal, or the next spooled file where the
    framer left the literal empty; a CATENATE message made into a file put in `made`
    (catenate.py). Everything is checked and made before anything is stored."""
    limit = conn.factory.max_append_messages
    if len(messages) > limit:
        raise No(f"At most {limit} messages in one APPEND.", "LIMIT")
    literals = [view for m in messages
                for view in ([p.text for p in m.catenate if p.text is not None] if m.catenate else [m.message])]
    if sum(1 for view in literals if not view.nbytes) != len(spooled):
        raise No("Cannot store an empty message.")
    files = iter(spooled)
    sources = iter([bytes(view) if view.nbytes else next(files) for view in literals])
    budget = catenate.Budget(conn.factory.max_append_total)
    out: list[Outgoing] = []
    total = 0
    for m in messages:
        source: bytes | IO[bytes]
        if m.catenate:
            source = await catenate.assemble(conn, m.catenate, sources, budget)
            made.append(source)
        else:
            source = next(sources)
        size = _size(source)
        total += size
        if size > conn.factory.max_literal:
            raise No(f"Message too large (limit {conn.factory.max_literal} octets).", "TOOBIG")
        if total > conn.factory.max_append_total:
            raise No(f"Messages too large together (limit {conn.factory.max_append_total} octets).", "TOOBIG")
        when = int(m.internal_date.timestamp()) if m.internal_date is not None else None
        out.append((source, m.flags, when))
    return out


def _size(source: bytes | IO[bytes]) -> int:
    if isinstance(source, bytes):
        return len(source)
    here = source.tell()
    end = source.seek(0, 2)
    source.seek(here)
    return end - here
