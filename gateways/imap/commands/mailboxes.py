"""Changing the mailboxes: CREATE, DELETE, RENAME, SUBSCRIBE and UNSUBSCRIBE
(RFC 3501 §6.3).

Mailboxes are the store's mail folders (see `tree`). Subscriptions are a list of
names the store keeps without reading them, so every gateway process and client
agrees on them. As in Dovecot, CREATE subscribes nothing, DELETE and RENAME leave the
list alone (RFC 3501 §6.3.6: a name is never dropped from it unilaterally), and
SUBSCRIBE wants a name that exists now. LIST, LSUB and STATUS are in `list_status`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateways.imap import rev2
from gateways.imap.dispatch import AUTHENTICATED_OR_SELECTED, No, Reply, command
from gateways.imap.objectid import mailbox_id_code
from gateways.imap.tree import ATTRIBUTE_ROLES, PLACEHOLDER, MailboxTree, forget
from shared.errors import BadRequest, Conflict, TooLarge
from shared.mailboxnames import DELIMITER, normalize

if TYPE_CHECKING:
    from gateways.imap.connection import IMAPConnection


def _levels(name: str) -> list[str]:
    parts = name.split(DELIMITER)
    if any(not part for part in parts):
        raise No("Mailbox names have no empty levels.", "CANNOT")
    if "*" in name or "%" in name:
        raise No("Mailbox names cannot hold the LIST wildcards * and %.", "CANNOT")
    return parts


async def _parent_for(conn: IMAPConnection, tree: MailboxTree, parts: list[str]) -> Any:
    """The folder that will hold `parts[-1]`, creating missing levels above it."""
    parent = None
    for depth in range(1, len(parts)):
        prefix = DELIMITER.join(parts[:depth])
        mailbox = tree.get(prefix)
        if mailbox is not None:
            if mailbox.folder is not None or mailbox.placeholder is not None:
                parent = mailbox.folder or mailbox.placeholder
            elif tree.in_shared_namespace(prefix):
                parent = None  # a namespace root, or a level the user may not see
            else:
                raise No(f"{prefix} is not a mail folder.", "CANNOT")
            continue
        parent = await _create_folder(conn, tree, prefix, parts[depth - 1], parent)
    return parent


async def _create_folder(conn: IMAPConnection, tree: MailboxTree, name: str, level: str, parent: Any,
                         role: str | None = None) -> Any:
    """Create `level` below `parent`, in the parent's store (a colleague's or the
    public one, which asks for `k` there) or at the top of one's own."""
    if parent is None:
        if tree.in_shared_namespace(name):
            # Below another user's (or the public) store's top, or a level not to be seen:
            # the owner's (an admin's) to create.
            raise No("Permission denied.", "NOPERM")
        return await conn.store.create_folder(level, role=role)
    return await parent.store.create_folder(level, parent=parent, role=role)


@command("CREATE", AUTHENTICATED_OR_SELECTED)
async def create(conn: IMAPConnection, cmd: Any) -> Reply:
    # A trailing delimiter only says that names will be created below (RFC 3501 §6.3.3).
    name = normalize(cmd.args.mailbox).rstrip(DELIMITER)
    if not name:
        raise No("Mailbox name missing.", "CANNOT")
    role = None
    if cmd.args.special_use:
        roles = [ATTRIBUTE_ROLES.get(use.lower()) for use in cmd.args.special_use]
        if None in roles or len(roles) > 1:
            raise No("Only one of \\Sent \\Drafts \\Trash \\Junk \\Archive can be given.", "USEATTR")
        role = roles[0]
    parts = _levels(name)
    forget(conn)
    tree = await MailboxTree.load(conn)
    existing = tree.get(name)
    if existing is not None and existing.placeholder is not None:
        # The \\Noselect name a DELETE left becomes a mailbox again (RFC 3501 §6.3.4).
        return Reply("OK", "CREATE completed", mailbox_id_code(await existing.placeholder.change_class("mail")))
    if existing is not None:
        raise No("Mailbox already exists.", "ALREADYEXISTS")
    parent = await _parent_for(conn, tree, parts)
    try:
        folder = await _create_folder(conn, tree, name, parts[-1], parent, role)
    except Conflict:
        raise No("Mailbox already exists.", "ALREADYEXISTS") from None
    return Reply("OK", "CREATE completed", mailbox_id_code(folder))


@command("DELETE", AUTHENTICATED_OR_SELECTED)
async def delete(conn: IMAPConnection, cmd: Any) -> None:
    name = normalize(cmd.args.mailbox)
    if name == "INBOX":
        raise No("INBOX cannot be deleted.", "CANNOT")
    forget(conn)
    tree = await MailboxTree.load(conn)
    mailbox = tree.get(name)
    folder = (mailbox.folder or mailbox.placeholder) if mailbox is not None else None
    if folder is None:
        raise No("Mailbox does not exist.", "NONEXISTENT")
    has_children = tree.has_subfolders(folder)
    if mailbox.placeholder is not None and has_children:
        # RFC 3501 §6.3.4: a \\Noselect name with inferiors cannot go (Dovecot's words and
        # code); IMAP4rev2 has a code of its own for it (RFC 9051 §6.3.4, §7.1).
        raise No("Mailbox has children, delete them first.",
                 "HASCHILDREN" if rev2.enabled(conn.enabled) else "ALREADYEXISTS")
    if conn.selected is not None and conn.selected.folder.id == folder.id:
        conn.deselect()
    if has_children:
        # RFC 3501 §6.3.4: its messages go, the name stays as \\Noselect above its inferiors.
        await folder.change_class(PLACEHOLDER)
        return
    await folder.delete()


@command("RENAME", AUTHENTICATED_OR_SELECTED)
async def rename(conn: IMAPConnection, cmd: Any) -> None:
    source = normalize(cmd.args.source)
    destination = normalize(cmd.args.destination).rstrip(DELIMITER)
    forget(conn)
    tree = await MailboxTree.load(conn)
    mailbox = tree.selectable(source)
    if tree.get(destination) is not None:
        raise No("Mailbox already exists.", "ALREADYEXISTS")
    if destination == "INBOX" or destination.startswith(source + DELIMITER):
        raise No("Cannot rename a mailbox there.", "CANNOT")
    parts = _levels(destination)
    parent = await _parent_for(conn, tree, parts)
    if source == "INBOX":
        # RFC 3501 §6.3.5: the messages move to the new name; INBOX stays, empty.
        target = await _create_folder(conn, tree, destination, parts[-1], parent)
        await mailbox.folder.move("1:*", target)
        return
    try:
        await mailbox.folder.rename(name=parts[-1], parent=parent)
    except Conflict:
        raise No("Mailbox already exists.", "ALREADYEXISTS") from None


@command("SUBSCRIBE", AUTHENTICATED_OR_SELECTED)
async def subscribe(conn: IMAPConnection, cmd: Any) -> None:
    """RFC 3501 §6.3.6 lets a server check that the name exists; Dovecot does, and so
    do we (a \\Noselect level of the tree counts). The name stays subscribed after."""
    name = normalize(cmd.args.mailbox)
    tree = await MailboxTree.load(conn)
    if tree.get(name) is None:
        raise No("Mailbox does not exist.", "NONEXISTENT")
    await _change_subscriptions(conn.store.subscribe, name, tree)


@command("UNSUBSCRIBE", AUTHENTICATED_OR_SELECTED)
async def unsubscribe(conn: IMAPConnection, cmd: Any) -> None:
    """Any name can go, a mailbox or not; one that was not subscribed is no error (as in Dovecot)."""
    name = normalize(cmd.args.mailbox)
    if not name:
        raise No("Mailbox name missing.", "CANNOT")
    await _change_subscriptions(conn.store.unsubscribe, name, await MailboxTree.load(conn))


async def _change_subscriptions(change: Any, name: str, tree: MailboxTree) -> None:
    """A list's first change starts it with the tree's defaults, as its first read would."""
    try:
        await change([name], tree.default_subscriptions())
    except TooLarge:
        raise No("Too many subscriptions.", "LIMIT") from None
    except BadRequest:
        raise No("This name cannot be subscribed.", "CANNOT") from None
