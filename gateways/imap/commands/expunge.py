"""Removing deleted messages: EXPUNGE, UID EXPUNGE (RFC 4315 §2.1) and CLOSE (RFC 3501
§6.4.2), which expunges silently as it leaves the mailbox."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateways.imap.dispatch import SELECTED, No, command
from gateways.imap.selected import SelectedMailbox
from shared import rights as R
from shared.flags import DELETED

if TYPE_CHECKING:
    from gateways.imap.connection import IMAPConnection


def _deleted_uids(box: SelectedMailbox, ranges: list[tuple[int, int]] | None = None) -> list[int]:
    indexes = box.iter_indexes(ranges) if ranges is not None else range(box.exists)
    return [box.uids[i] for i in indexes if box.flag_bits(i) & DELETED]


@command("CLOSE", SELECTED)
async def close(conn: IMAPConnection, cmd: Any) -> None:
    box = conn.selected
    conn.deselect()
    if box.may(R.EXPUNGE):
        # Expunged silently: the client has left the mailbox (RFC 3501 §6.4.2);
        # without `e` nothing is (RFC 4314 §4), and that is no error either.
        await box.folder.delete_items(_deleted_uids(box))


@command("EXPUNGE", SELECTED, uid=True)
async def expunge(conn: IMAPConnection, cmd: Any) -> None:
    box = conn.selected
    if box.readonly:
        raise No("Mailbox is read-only.", "READ-ONLY")
    if not box.may(R.EXPUNGE):
        raise No("Permission denied.", "NOPERM")
    ranges = box.index_ranges(cmd.args.uids, uid=True) if cmd.uid else None
    uids = _deleted_uids(box, ranges)
    with box.writing():
        gone, modseq = await box.folder.delete_items(uids, with_modseq=True)
        if gone:
            box.wrote(modseq)
    if conn.selected is box:
        # What another session expunged first is gone as well: the client hears
        # of every message it asked to remove before the tagged OK.
        box.mark_expunged([*gone, *uids])
