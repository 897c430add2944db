"""COPY, MOVE and their UID forms (RFC 3501 §6.4.7, MOVE RFC 6851), with COPYUID (RFC 4315 §3).

Each is one bulk store call (`Folder.copy` / `Folder.move`) for the whole set,
which answers the (source uid, new uid) pairs COPYUID reports. MOVE then tells
the client the moved messages are gone: the COPYUID goes in an untagged OK, and
the EXPUNGEs (or VANISHED once QRESYNC is enabled) go out before the tagged OK.
A target that does not exist gets `NO [TRYCREATE]`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateways.imap.dispatch import SELECTED, Bad, No, Reply, capability, command
from gateways.imap.grammar import writer as w
from gateways.imap.tree import forget, target_folder
from shared import rights

if TYPE_CHECKING:
    from gateways.imap.connection import IMAPConnection

capability("MOVE")


@command("COPY", SELECTED, uid=True)
async def copy(conn: IMAPConnection, cmd: Any) -> Reply | None:
    return await _transfer(conn, cmd, move=False)


@command("MOVE", SELECTED, uid=True)
async def move(conn: IMAPConnection, cmd: Any) -> Reply | None:
    return await _transfer(conn, cmd, move=True)


async def _transfer(conn: IMAPConnection, cmd: Any, move: bool) -> Reply | None:
    box = conn.selected
    args = cmd.args
    if not cmd.uid and box.msn_beyond(args.sequence):
        raise Bad("Invalid message sequence number")
    if move and box.readonly:
        raise No("Mailbox is read-only.", "READ-ONLY")
    if move and not box.may(rights.MOVE_OUT):
        raise No("Permission denied.", "NOPERM")
    folder = await target_folder(conn, args.mailbox)
    ranges = box.index_ranges(args.sequence, cmd.uid)
    if not ranges:
        return None  # nothing named (RFC 4315 §3: no COPYUID without messages)
    uids = box.store_uids(ranges)
    same = folder.id == box.folder.id
    try:
        if move and not same:
            pairs = await box.folder.move(uids, folder)
        else:
            pairs = await box.folder.copy(uids, folder)
            if move and pairs:
                await box.folder.delete_items([src for src, _ in pairs])
    except Exception:
        forget(conn)  # the target may be gone or moved: read the tree again next time
        raise
    if conn.selected is not box:
        return None
    name = "UID " + cmd.name if cmd.uid else cmd.name
    code = None
    if pairs:
        validity = pairs.uid_validity or folder.uid_validity
        conn.factory.recent.arrived(folder.id, validity, min(d for _, d in pairs))
        code = w.copyuid_code(validity, [s for s, _ in pairs], [d for _, d in pairs]).decode("ascii")
    if same:
        await box.refresh()  # the copies are news for this very session
    if not move:
        return Reply("OK", f"{name} completed", code)
    if code is not None:
        conn.send(w.untagged("OK", "Moved", code))
    box.mark_expunged(src for src, _ in pairs)
    return Reply("OK", f"{name} completed")
