"""Listing mailboxes and their state: NAMESPACE (RFC 2342), LIST with LIST-EXTENDED
(RFC 5258), LIST-STATUS (RFC 5819), CHILDREN (RFC 3348) and SPECIAL-USE (RFC 6154),
LSUB and STATUS (RFC 3501 §6.3).

Mailboxes are the store's mail folders (see `tree`). Subscriptions are a list of
names the store keeps without reading them (changed in `mailboxes`); a new store's
list starts with INBOX and the special-use mailboxes
(`MailboxTree.default_subscriptions`, given with the list's first use). A subscribed
name with no mailbox lists as \\NonExistent (RFC 5258).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateways.imap.commands.acl import answered
from gateways.imap.commands.quota import deleted_values
from gateways.imap.dispatch import AUTHENTICATED_OR_SELECTED, No, capability, command
from gateways.imap.grammar import writer as w
from gateways.imap.objectid import mailbox_id
from gateways.imap.tree import OTHER_USERS, PUBLIC_FOLDERS, MailboxTree, pattern_regex, sort_names
from shared import rights
from shared.mailboxnames import DELIMITER, ancestors

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
