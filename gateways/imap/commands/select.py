"""Entering and leaving a mailbox: SELECT, EXAMINE (RFC 3501 §6.3.1-2, RFC 7162 §3.1.8),
UNSELECT (RFC 3691) and CHECK; CLOSE, which expunges as it leaves, is in `expunge`."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateways.imap import dispatch, rev2
from gateways.imap.dispatch import AUTHENTICATED_OR_SELECTED, SELECTED, Bad, No, Reply, command
from gateways.imap.grammar import writer as w
from gateways.imap.keywords import permanent_flags, remember as remember_flags
from gateways.imap.objectid import mailbox_id_code
from gateways.imap.qresync import resynchronize
from gateways.imap.selected import SelectedMailbox
from gateways.imap.tree import MailboxTree
from shared import rights as R
from shared.mailboxnames import DELIMITER

if TYPE_CHECKING:
    from gateways.imap.connection import IMAPConnection

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
# Keywords mail clients set; offered in FLAGS even before a message carries them.
COMMON_KEYWORDS = ("$Forwarded", "$Junk", "$NotJunk", "$MDNSent")


@command("SELECT", AUTHENTICATED_OR_SELECTED)
async def select(conn: IMAPConnection, cmd: Any) -> Reply:
    return await _open(conn, cmd, readonly=False)


@command("EXAMINE", AUTHENTICATED_OR_SELECTED)
async def examine(conn: IMAPConnection, cmd: Any) -> Reply:
    return await _open(conn, cmd, readonly=True)


async def _open(conn: IMAPConnection, cmd: Any, readonly: bool) -> Reply:
    args = cmd.args
    if conn.selected is not None:
        # A failed SELECT leaves no mailbox selected (RFC 3501 §6.3.1).
        conn.deselect()
        if "QRESYNC" in conn.enabled or rev2.enabled(conn.enabled):
            conn.send(w.untagged("OK", "Previous mailbox closed", "CLOSED"))
    if args.qresync is not None and "QRESYNC" not in conn.enabled:
        raise Bad("QRESYNC must be enabled first")
    if args.condstore:
        if not dispatch.advertised(conn, "CONDSTORE"):
            raise Bad("CONDSTORE is not supported")
        conn.enabled.add("CONDSTORE")  # RFC 7162 §3.1.8: SELECT (CONDSTORE) enables it
    # Kept as the connection's tree: APPEND, COPY and MOVE find their target in it.
    tree = conn.mailbox_tree = await MailboxTree.load(conn)
    mailbox = tree.selectable(args.mailbox)
    folder = mailbox.folder
    if not R.has(folder.rights, R.READ):
        raise No("Permission denied.", "NOPERM")
    # RFC 4314 §4: without a right to change anything, SELECT opens read-only.
    readonly = readonly or R.read_only(folder.rights)
    box = await SelectedMailbox.open(folder, readonly, conn.enabled, conn.factory.watches,
                                     conn.factory.indexes)
    if conn.closed:
        box.close()
        return Reply("NO", "Connection closed.")
    conn.select(box)
    box.claim_recent(conn.factory.recent)
    keywords = [k for k in box.keywords_in_use() if k not in COMMON_KEYWORDS]
    flags = SYSTEM_FLAGS + COMMON_KEYWORDS + tuple(keywords)
    conn.send(w.flags(flags))
    remember_flags(conn, box, flags)
    permanent = permanent_flags(box, flags)
    conn.send(w.untagged("OK", "Flags permitted", w.permanent_flags_code(permanent)))
    conn.send(w.exists(box.exists))
    if rev2.enabled(conn.enabled):
        # RFC 9051 §6.3.2: the mailbox's LIST, and neither RECENT nor UNSEEN.
        conn.send(w.list_response(mailbox.attributes(), DELIMITER, mailbox.name, utf8=conn.utf8))
    else:
        conn.send(w.recent(box.recent.count(box.uids)))
        unseen = box.first_unseen()
        if unseen is not None:
            conn.send(w.untagged("OK", f"Message {unseen} is first unseen", f"UNSEEN {unseen}"))
    conn.send(w.untagged("OK", "UIDs valid", f"UIDVALIDITY {box.uid_validity}"))
    conn.send(w.untagged("OK", "Predicted next UID", f"UIDNEXT {box.uid_next}"))
    conn.send(w.untagged("OK", "Highest", f"HIGHESTMODSEQ {box.highest_modseq}"))
    conn.send(w.untagged("OK", "Ok", mailbox_id_code(folder)))
    if args.qresync is not None:
        await resynchronize(conn, box, args.qresync)
    name = cmd.name
    return Reply("OK", f"{name} completed", "READ-ONLY" if readonly else "READ-WRITE")


@command("UNSELECT", SELECTED)
def unselect(conn: IMAPConnection, cmd: Any) -> None:
    conn.deselect()


@command("CHECK", SELECTED)
async def check(conn: IMAPConnection, cmd: Any) -> None:
    # Everything is on disk already; CHECK is another way to ask for news.
    await conn.selected.refresh()
