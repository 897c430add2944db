"""STORE and UID STORE (RFC 3501 §6.4.6; UNCHANGEDSINCE and MODIFIED of RFC 7162 §3.1.3).

The whole set goes to the store in one `Folder.set_flags` call, which changes
only the messages whose flags differ and gives them one new modseq. Then the
client hears `* n FETCH (FLAGS (...))` for every message of the set (with UID
for UID STORE and MODSEQ once CONDSTORE is on); with .SILENT only the messages
whose modseq changed are reported, and only when CONDSTORE is on, since their
new MODSEQ is something the client cannot know otherwise. Messages that fail an
UNCHANGEDSINCE test are left alone and named in `[MODIFIED set]`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateways.imap.commands.fetch import Output
from gateways.imap.dispatch import SELECTED, Bad, No, Reply, command
from gateways.imap.grammar import writer as w
from gateways.imap.grammar.sequence import format_numbers
from gateways.imap.keywords import announce
from shared import rights

if TYPE_CHECKING:
    from gateways.imap.connection import IMAPConnection

MODES = {"+": "add", "-": "remove", "": "replace"}
# What a replacing STORE may clear, each behind its own right.
SETTABLE = ("\\Seen", "\\Deleted", "\\Flagged")


@command("STORE", SELECTED, uid=True, expunge_after=False)
async def store(conn: IMAPConnection, cmd: Any) -> Reply | None:
    box = conn.selected
    args = cmd.args
    if args.unchangedsince is not None:
        conn.enable_condstore()  # RFC 7162 §3.1: a CONDSTORE-enabling command
    if not cmd.uid and box.msn_beyond(args.sequence):
        raise Bad("Invalid message sequence number")
    if box.readonly:
        raise No("Mailbox is read-only.", "READ-ONLY")
    flags = [f for f in args.flags if f != "\\Recent"]  # \Recent is the server's alone
    # RFC 4314 §4: \Seen needs `s`, \Deleted `t`, any other flag `w`; a replacing
    # STORE may clear any of them.
    if not box.may(rights.for_flags(flags if args.mode else [*flags, *SETTABLE])):
        raise No("Permission denied.", "NOPERM")
    ranges = box.index_ranges(args.sequence, cmd.uid)
    if not ranges:
        return None
    with box.writing():
        result = await box.folder.set_flags(box.store_uids(ranges), MODES[args.mode], flags,
                                            args.unchangedsince)
        changed = set()
        for change in result.changed:
            box.update(change.uid, change.flags, change.modseq)
            changed.add(change.uid)
    if conn.selected is not box:
        return None
    announce(conn, (name for change in result.changed for name in change.flags))
    failed = set(result.failed)
    condstore = "CONDSTORE" in conn.enabled
    if not args.silent or (condstore and changed):
        out = Output(conn)
        for i in box.iter_indexes(ranges):
            uid = box.uids[i]
            if uid in failed or (args.silent and uid not in changed):
                continue
            items = [b"FLAGS " + w.flag_list(box.flags(i))]
            if cmd.uid:
                items.insert(0, b"UID %d" % uid)
            if condstore:
                items.append(b"MODSEQ (%d)" % box.modseq(i))
            out.add(w.fetch_line(i + 1, b" ".join(items)))
            await out.maybe_flush()
        await out.flush()
    if failed:
        if cmd.uid:
            numbers = sorted(failed)
        else:
            numbers = sorted(n for n in map(box.msn, failed) if n is not None)
        code = b"MODIFIED " + format_numbers(numbers)
        name = "UID STORE" if cmd.uid else "STORE"
        return Reply("OK", f"Conditional {name} failed for some messages", code.decode("ascii"))
    return None
