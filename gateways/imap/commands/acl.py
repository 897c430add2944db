"""Access control lists (RFC 4314): SETACL, DELETEACL, GETACL, LISTRIGHTS and MYRIGHTS,
the RIGHTS=texk capability, and the MYRIGHTS return option of LIST (RFC 8440, answered
in `list_status`).

The store keeps the lists and decides every right; this module only speaks them.
Rights are the letters of `shared.rights`, which also reads RFC 4314 §2.1.1's
obsolete `c` and `d` in a SETACL; in answers `c` follows any right it stands for
and so does `d`, so that RFC 2086 clients read them right (as in Dovecot).
A mailbox the user has no right on answers as a missing one, `NO [NONEXISTENT]`;
looking at or changing the list of a visible mailbox without `a` answers
`NO [NOPERM]`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateways.imap.dispatch import AUTHENTICATED_OR_SELECTED, Bad, No, capability, command
from gateways.imap.grammar import writer as w
from gateways.imap.tree import MailboxTree, forget
from shared import rights as letters
from shared.errors import BadRequest, NotFound

if TYPE_CHECKING:
    from gateways.imap.connection import IMAPConnection

capability("ACL")
capability("RIGHTS=texk")

# RFC 4314 §2.1.1: the obsolete letters, each answered when any right it stands for is held.
OBSOLETE = {virtual: letters.normalize(virtual) for virtual in "cd"}


def answered(rights: str) -> str:
    """Rights as IMAP answers them: in the store's order, with `c` and `d` added."""
    out = letters.normalize(rights)
    return out + "".join(virtual for virtual, real in OBSOLETE.items() if set(out) & set(real))


def requested(rights: str) -> str:
    """The letters a SETACL names; an unknown letter is BAD (RFC 4314 §3.1)."""
    try:
        return letters.normalize(rights)
    except ValueError:
        raise Bad(f"Invalid ACL right in {rights!r}.") from None


async def _visible(conn: IMAPConnection, name: str) -> Any:
    """The selectable mailbox `name` that the user may see, read from the store now."""
    tree = conn.mailbox_tree = await MailboxTree.load(conn)
    return tree.selectable(name)


async def _administered(conn: IMAPConnection, name: str) -> Any:
    mailbox = await _visible(conn, name)
    if "a" not in (mailbox.folder.rights or ""):
        raise No("You lack administrator privileges on this mailbox.", "NOPERM")
    return mailbox


@command("MYRIGHTS", AUTHENTICATED_OR_SELECTED)
async def myrights(conn: IMAPConnection, cmd: Any) -> None:
    mailbox = await _visible(conn, cmd.args.mailbox)
    conn.send(w.myrights_response(cmd.args.mailbox, answered(mailbox.folder.rights or ""), conn.utf8))


@command("GETACL", AUTHENTICATED_OR_SELECTED)
async def getacl(conn: IMAPConnection, cmd: Any) -> None:
    mailbox = await _administered(conn, cmd.args.mailbox)
    entries = await mailbox.folder.acl()
    conn.send(w.acl_response(cmd.args.mailbox, [(e.identifier, answered(e.rights)) for e in entries],
                             conn.utf8))


@command("LISTRIGHTS", AUTHENTICATED_OR_SELECTED)
async def listrights(conn: IMAPConnection, cmd: Any) -> None:
    """RFC 4314 §3.7: the rights always granted to the identifier, then each right
    that may be granted apart. The store owner always has every right."""
    mailbox = await _administered(conn, cmd.args.mailbox)
    required, optional = await mailbox.folder.list_rights(cmd.args.identifier)
    groups = [*optional, *OBSOLETE] if optional else []
    conn.send(w.listrights_response(cmd.args.mailbox, cmd.args.identifier, answered(required), groups,
                                    conn.utf8))


@command("SETACL", AUTHENTICATED_OR_SELECTED)
async def setacl(conn: IMAPConnection, cmd: Any) -> None:
    """An empty rights string leaves an entry that grants nothing, so that nothing is
    inherited from above either (DELETEACL removes the entry)."""
    args = cmd.args
    change = {"add": "+", "remove": "-"}.get(args.mode, "") + requested(args.rights)
    mailbox = await _administered(conn, args.mailbox)
    try:
        await mailbox.folder.set_acl(args.identifier, change)
    except (BadRequest, NotFound) as e:
        raise No(f"Cannot set this right: {e}") from None
    finally:
        forget(conn)  # one's own rights may have changed with it


@command("DELETEACL", AUTHENTICATED_OR_SELECTED)
async def deleteacl(conn: IMAPConnection, cmd: Any) -> None:
    mailbox = await _administered(conn, cmd.args.mailbox)
    try:
        await mailbox.folder.delete_acl(cmd.args.identifier)
    except (BadRequest, NotFound) as e:
        raise No(f"Cannot remove this entry: {e}") from None
    finally:
        forget(conn)
