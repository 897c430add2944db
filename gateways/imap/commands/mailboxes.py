"""Mailbox commands of the authenticated state: NAMESPACE (RFC 2342), LIST with
LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819), CHILDREN (RFC 3348) and
SPECIAL-USE (RFC 6154), LSUB, STATUS, CREATE, DELETE, RENAME, SUBSCRIBE and
UNSUBSCRIBE (RFC 3501 §6.3).

Mailboxes are the store's mail folders (see `tree`). Subscriptions are a list of
names the store keeps without reading them, so every gateway process and client
agrees on them; a new store's list starts with INBOX and the special-use mailboxes
(`MailboxTree.default_subscriptions`, given with the list's first use). As in
Dovecot, CREATE subscribes nothing, DELETE and RENAME leave the list alone (RFC 3501
§6.3.6: a name is never dropped from it unilaterally), and SUBSCRIBE wants a name
that exists now. A subscribed name with no mailbox lists as \\NonExistent (RFC 5258).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateways.imap import rev2
from gateways.imap.dispatch import AUTHENTICATED_OR_SELECTED, No, Reply, capability, command
from gateways.imap.commands.acl import answered
from gateways.imap.grammar import writer as w
from gateways.imap.objectid import mailbox_id, mailbox_id_code
from gateways.imap.commands.quota import deleted_values
from gateways.imap.tree import (ATTRIBUTE_ROLES, OTHER_USERS, PLACEHOLDER, PUBLIC_FOLDERS, MailboxTree,
                                 forget, pattern_regex, sort_names)
from shared import rights
from shared.errors import BadRequest, Conflict, TooLarge
from shared.mailboxnames import DELIMITER, ancestors, normalize

if TYPE_CHECKING:
    from gateways.imap.connection import IMAPConnection

capability("NAMESPACE")
capability("UNSELECT")
capability("CHILDREN")
capability("SPECIAL-USE")
capability("LIST-EXTENDED")
capability("LIST-STATUS")
capability("STATUS=SIZE")  # RFC 8438: the sum of the messages' RFC822.SIZE
capability("LIST-MYRIGHTS")  # RFC 8440: RETURN (MYRIGHTS), rights as MYRIGHTS answers them


async def status_values(conn: IMAPConnection, folder: Any, items: tuple[str, ...]) -> list[tuple[str, int | bytes]]:
    """STATUS items from the folder's listing counters (no message is read); DELETED and
    DELETED-STORAGE (RFC 9208) from the folder's \\Deleted messages, asked only for them."""
    values: dict[str, int | bytes] = {
        "MESSAGES": folder.count, "UIDNEXT": folder.uid_next,
        "RECENT": conn.factory.recent.unclaimed(folder.id, folder.uid_validity, folder.count, folder.uid_next),
        "UIDVALIDITY": folder.uid_validity, "UNSEEN": folder.unseen,
        "HIGHESTMODSEQ": folder.highest_modseq, "SIZE": folder.size,
        "APPENDLIMIT": conn.factory.max_literal,
        "MAILBOXID": b"(" + mailbox_id(folder).encode("ascii") + b")",
    }
    if "DELETED" in items or "DELETED-STORAGE" in items:
        values.update(await deleted_values(folder))
    return [(item, values[item]) for item in items if item in values]


@command("NAMESPACE", AUTHENTICATED_OR_SELECTED)
def namespace(conn: IMAPConnection, cmd: Any) -> None:
    """RFC 2342: one's own mailboxes, other users' (`Other Users/<login>/...`) and the
    public store's (`Public Folders/...`), see `tree`."""
    conn.send(w.namespace_response([("", DELIMITER)], [(OTHER_USERS + DELIMITER, DELIMITER)],
                                   [(PUBLIC_FOLDERS + DELIMITER, DELIMITER)]))


@command("LIST", AUTHENTICATED_OR_SELECTED)
async def list_mailboxes(conn: IMAPConnection, cmd: Any) -> None:
    args = cmd.args
    if args.patterns == ("",) and not args.extended:
        # The hierarchy delimiter and the root (RFC 3501 §6.3.8).
        conn.send(w.list_response(["\\Noselect"], DELIMITER, "", utf8=conn.utf8))
        return
    counts = bool(args.status_items)
    if "SUBSCRIBED" in args.selection:
        tree, subscribed = await MailboxTree.load_with_subscriptions(conn, counts)
        await _list_subscribed(conn, args, tree, subscribed)
        return
    if "SUBSCRIBED" in args.returns:
        tree, subscribed = await MailboxTree.load_with_subscriptions(conn, counts)
    else:
        tree, subscribed = await MailboxTree.load(conn, counts, fresh=False), set()
    special_only = "SPECIAL-USE" in args.selection
    listed: dict[str, Any] = {}
    for pattern in args.patterns:
        for mailbox in tree.match(args.reference, pattern):
            listed.setdefault(mailbox.name, mailbox)
    for mailbox in tree.sorted():
        if mailbox.name not in listed:
            continue
        if special_only and not mailbox.special_use:
            continue
        conn.send(w.list_response(mailbox.attributes(subscribed=mailbox.name in subscribed), DELIMITER,
                                  mailbox.name, utf8=conn.utf8))
        if args.status_items and mailbox.selectable:
            conn.send(w.status_response(mailbox.name, await status_values(conn, mailbox.folder, args.status_items),
                                        conn.utf8))
        if "MYRIGHTS" in args.returns and mailbox.selectable:
            conn.send(w.myrights_response(mailbox.name, answered(mailbox.folder.rights), conn.utf8))
        await conn.writer.writable()


async def _list_subscribed(conn: IMAPConnection, args: Any, tree: MailboxTree, subscribed: set[str]) -> None:
    """LIST (SUBSCRIBED [RECURSIVEMATCH]) (RFC 5258 §3): the subscribed names matching
    the patterns, those naming no mailbox as \\NonExistent; with RECURSIVEMATCH also
    the unsubscribed levels above subscribed names, marked CHILDINFO ("SUBSCRIBED")."""
    regexes = [pattern_regex(args.reference, pattern) for pattern in args.patterns]
    candidates = set(subscribed)
    if "RECURSIVEMATCH" in args.selection:
        candidates.update(_levels_above_unlisted(subscribed, regexes))
    special_only = "SPECIAL-USE" in args.selection
    children = "CHILDREN" in args.returns
    for name in sort_names(candidates):
        if not any(regex.match(name) for regex in regexes):
            continue
        mailbox = tree.get(name)
        if special_only and (mailbox is None or not mailbox.special_use):
            continue
        extended = b""
        if name in subscribed:
            if mailbox is not None:
                attributes = mailbox.attributes(subscribed=True)
            else:
                attributes = ["\\Subscribed", "\\NonExistent"]
                if children:
                    attributes.append("\\HasChildren" if tree.descendants(name) else "\\HasNoChildren")
        else:
            attributes = mailbox.attributes() if mailbox is not None else ["\\NonExistent"]
            if mailbox is None and children:
                attributes.append("\\HasChildren" if tree.descendants(name) else "\\HasNoChildren")
            extended = b' ("CHILDINFO" ("SUBSCRIBED"))'
        conn.send(w.list_response(attributes, DELIMITER, name, extended=extended, utf8=conn.utf8))
        if args.status_items and mailbox is not None and mailbox.selectable:
            conn.send(w.status_response(name, await status_values(conn, mailbox.folder, args.status_items),
                                        conn.utf8))
        if "MYRIGHTS" in args.returns and mailbox is not None and mailbox.selectable:
            conn.send(w.myrights_response(name, answered(mailbox.folder.rights), conn.utf8))
        await conn.writer.writable()


def _levels_above_unlisted(subscribed: set[str], regexes: list[Any]) -> set[str]:
    """The levels above subscribed names that the patterns do not list themselves:
    such a level stands in for them (CHILDINFO, LSUB's \\Noselect). A name the
    patterns list needs no stand-in, as in Dovecot."""
    out: set[str] = set()
    for name in subscribed:
        if not any(regex.match(name) for regex in regexes):
            out.update(ancestors(name))
    return out


@command("LSUB", AUTHENTICATED_OR_SELECTED)
async def lsub(conn: IMAPConnection, cmd: Any) -> None:
    """Subscribed names matching the pattern, whether or not they name a mailbox now.
    RFC 3501 §6.3.9: when "%" stops at a level that is not subscribed but has
    subscribed names below it, that level is answered too, with \\Noselect (here
    meaning "not subscribed itself")."""
    tree, subscribed = await MailboxTree.load_with_subscriptions(conn)
    regex = pattern_regex(cmd.args.reference, cmd.args.pattern)
    candidates = set(subscribed)
    if "%" in cmd.args.pattern:
        candidates.update(_levels_above_unlisted(subscribed, [regex]))
    for name in sort_names(candidates):
        if not regex.match(name):
            continue
        if name in subscribed:
            mailbox = tree.get(name)
            attributes = [a for a in mailbox.attributes() if not a.startswith("\\Has")] if mailbox else []
        else:
            attributes = ["\\Noselect"]
        conn.send(w.list_response(attributes, DELIMITER, name, kind="LSUB", utf8=conn.utf8))
        await conn.writer.writable()


@command("STATUS", AUTHENTICATED_OR_SELECTED)
async def status(conn: IMAPConnection, cmd: Any) -> None:
    mailbox = (await MailboxTree.load(conn, counts=True)).selectable(cmd.args.mailbox)
    if not rights.has(mailbox.folder.rights, rights.READ):
        raise No("Permission denied.", "NOPERM")  # RFC 4314 §4: STATUS needs `r`
    conn.send(w.status_response(mailbox.name, await status_values(conn, mailbox.folder, cmd.args.items),
                                conn.utf8))


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
