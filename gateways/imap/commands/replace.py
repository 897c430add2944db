"""REPLACE and UID REPLACE (RFC 8508): store a new version of a message (a draft being
edited) into a mailbox, then expunge the old one from the selected mailbox.

The new message is stored exactly as APPEND stores one (`append.store_messages`, with its
limits, spooling and literal8); only once it is stored is the old one expunged, so a
failed REPLACE leaves the old message where it was (RFC 8508 §3.3). The client hears
`* OK [APPENDUID ...]`, then the EXPUNGE (or VANISHED), then the tagged OK.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateways.imap.commands.append import store_messages
from gateways.imap.dispatch import SELECTED, Bad, No, capability, command
from gateways.imap.grammar import writer as w

if TYPE_CHECKING:
    from gateways.imap.connection import IMAPConnection

capability("REPLACE")


@command("REPLACE", SELECTED, uid=True)
async def replace(conn: IMAPConnection, cmd: Any) -> None:
    spooled, conn.spooled = conn.spooled, ()
    try:
        box = conn.selected
        args = cmd.args
        if cmd.uid:
            if box.msn(args.number) is None:
                raise No("No such message.", "NONEXISTENT")
            old = args.number
        else:
            if args.number > box.exists:
                raise Bad("Invalid message sequence number")
            old = box.uid(args.number)
        if box.readonly:
            raise No("Mailbox is read-only.", "READ-ONLY")
        validity, uids = await store_messages(conn, args.mailbox, (args.message,), spooled)
    finally:
        for fp in spooled:
            fp.close()
    conn.send(w.untagged("OK", "Replacement Message ready", w.appenduid_code(validity, uids).decode("ascii")))
    with box.writing():
        gone, modseq = await box.folder.delete_items([old], with_modseq=True)
        if gone:
            box.wrote(modseq)
    if conn.selected is box:
        box.mark_expunged([old])
