"""The IMAP view of a store's folder tree: which folders are mailboxes and what they are called.

Only mail folders are mailboxes, named by the rule of shared.mailboxnames (the
folder path joined with `/`, the inbox folder as `INBOX`). A folder of another
kind (a calendar) that has mail folders below it shows as a `\\Noselect` name so
the tree stays whole. So does a placeholder folder, which a DELETE of a mailbox
with children leaves (RFC 3501 §6.3.4), with or without children.
Special-use attributes (RFC 6154) come from the folders' roles. The store
refuses `/` in folder names, so a name's levels are always the folder path.

Folders of other stores that the user may see (the store's shared listing: each
folder with the user's rights letters, RFC 4314) are named in two more namespaces
(RFC 2342): another user's folders as `Other Users/<login>/<path>`, the public
store's as `Public Folders/<path>`, `<path>` named by the same rule as one's own
(so a colleague's inbox is `Other Users/alice/INBOX`). A level the user may not
see (no `l`) that has visible folders below it shows as `\\Noselect`, as do the
namespace roots, as RFC 4314 §4 allows. A folder with no right at all is not in
the tree, so it answers exactly as a missing one.

The store keeps subscriptions as names it does not interpret; this module gives
the names a new store's list starts with (`default_subscriptions`).
"""
from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer

from gateways.imap.dispatch import No
from shared import rights
from shared.mailboxnames import DELIMITER, folder_paths, mailbox_names, normalize

OTHER_USERS = "Other Users"
PUBLIC_FOLDERS = "Public Folders"

ROLE_ATTRIBUTES = {"sent": "\\Sent", "drafts": "\\Drafts", "trash": "\\Trash", "junk": "\\Junk",
                   "archive": "\\Archive"}
ATTRIBUTE_ROLES = {attribute.lower(): role for role, attribute in ROLE_ATTRIBUTES.items()}
PLACEHOLDER = "placeholder"  # the container class of a \\Noselect name the store keeps


@dataclass
class Mailbox:
    name: str
    folder: Any  # shared.model.Folder, or None for a \Noselect name
    has_children: bool = False
    placeholder: Any = None  # the store's placeholder folder holding a \Noselect name

    @property
    def selectable(self) -> bool:
        return self.folder is not None

    @property
    def special_use(self) -> str | None:
        return ROLE_ATTRIBUTES.get(self.folder.role) if self.folder is not None else None

    def attributes(self, subscribed: bool = False) -> list[str]:
        out = ["\\HasChildren" if self.has_children else "\\HasNoChildren"]
        if self.folder is None:
            out.insert(0, "\\Noselect")
        if self.special_use:
            out.append(self.special_use)
        if subscribed:
            out.append("\\Subscribed")
        return out


class MailboxTree:
    """Every mailbox of one user by IMAP name: their own store's and those of other
    stores shared with them, as read in one folder listing of each."""

    def __init__(self, folders: Sequence[Any], shared: Sequence[Any] = ()) -> None:
        self.by_name: dict[str, Mailbox] = {}
        self.by_folder: dict[int, str] = {}
        # Folders (of any store, any class) that have a folder below them.
        self.parents = {f.parent_id for f in folders} | {f.parent_id for f in shared}
        self._add("", folders)
        for prefix, group in shared_namespaces(shared):
            self._add(prefix, group)
        for name in list(self.by_name):
            parts = name.split(DELIMITER)
            for i in range(1, len(parts)):
                parent = DELIMITER.join(parts[:i])
                entry = self.by_name.get(parent)
                if entry is None:
                    entry = self.by_name[parent] = Mailbox(parent, None)
                entry.has_children = True

    def _add(self, prefix: str, folders: Sequence[Any]) -> None:
        """Name `folders` (one store's) below `prefix`; a name taken already stays
        with the first (one's own folders come first)."""
        paths = folder_paths(folders)
        for name, folder in mailbox_names(folders, paths).items():
            name = prefix + name
            if prefix and not may_see(folder):
                continue  # named only for the path of what lies below it
            if name not in self.by_name:
                self.by_name[name] = Mailbox(name, folder)
                self.by_folder[folder.id] = name
        for folder in folders:
            name = normalize(paths.get(folder.id) or "")
            if name and getattr(folder, "container_class", None) == PLACEHOLDER:
                self.by_name.setdefault(prefix + name, Mailbox(prefix + name, None, placeholder=folder))

    @classmethod
    def load(cls, conn: Any, counts: bool = False, fresh: bool = True) -> defer.Deferred:
        """The tree of the connection's user: their own folders as the store has them now
        and those shared with them, read side by side; without `fresh`, the shared ones
        may be the connection's listing of a few seconds ago (`shared_folders`, for LIST).
        Folders' count, unseen and size read 0 unless `counts` (counting is a pass over
        every folder's messages)."""
        return defer.gatherResults([conn.store.folders(counts=counts),
                                    defer.ensureDeferred(shared_folders(conn, counts, fresh))],
                                   consumeErrors=True).addCallbacks(
            lambda lists: cls(*lists), lambda f: f.value.subFailure)

    @classmethod
    async def load_with_subscriptions(cls, conn: Any, counts: bool = False) -> "tuple[MailboxTree, set[str]]":
        """The tree (as `load` without `fresh`) and the subscribed names (RFC 3501
        §6.3.6: names, which may name no mailbox now), read side by side. An empty list
        may be one never started: asking again with the defaults starts it (the store
        gives them only then)."""
        store = conn.store
        tree, names = await defer.gatherResults([cls.load(conn, counts, fresh=False), store.subscriptions()],
                                                consumeErrors=True).addErrback(lambda f: f.value.subFailure)
        if not names:
            names = await store.subscriptions(tree.default_subscriptions())
        return tree, {normalize(name) for name in names}

    def has_subfolders(self, folder: Any) -> bool:
        return folder.id in self.parents

    def in_shared_namespace(self, name: str) -> bool:
        """Whether `name` lies in the other users' or the public namespace."""
        top = normalize(name).split(DELIMITER, 1)[0]
        return top in (OTHER_USERS, PUBLIC_FOLDERS)

    def default_subscriptions(self) -> list[str]:
        """What a new store's list starts with: INBOX and the special-use mailboxes, so
        that clients showing only subscribed mailboxes (Thunderbird) show them. Folders
        created later are not subscribed by their creation (as in Dovecot)."""
        return [m.name for m in self.sorted() if m.folder is not None
                and (m.name == "INBOX" or m.special_use is not None)]

    def get(self, name: str) -> Mailbox | None:
        return self.by_name.get(normalize(name))

    def selectable(self, name: str) -> Mailbox:
        """The mailbox `name` if it can be selected; else the command fails as for a
        missing one (`NO [NONEXISTENT]`), a `\\Noselect` level included."""
        mailbox = self.get(name)
        if mailbox is None or not mailbox.selectable:
            raise No("Mailbox does not exist.", "NONEXISTENT")
        return mailbox

    def folder(self, name: str) -> Any:
        entry = self.get(name)
        return entry.folder if entry is not None else None

    def name_of(self, folder_id: int) -> str | None:
        return self.by_folder.get(folder_id)

    def sorted(self) -> list[Mailbox]:
        return [self.by_name[n] for n in sort_names(self.by_name)]

    def descendants(self, name: str) -> list[Mailbox]:
        prefix = normalize(name) + DELIMITER
        return [m for n, m in self.by_name.items() if n.startswith(prefix)]

    def match(self, reference: str, pattern: str) -> list[Mailbox]:
        """Mailboxes whose names match `reference` + `pattern` (`*` anything, `%` within a level)."""
        regex = pattern_regex(reference, pattern)
        return [m for m in self.sorted() if regex.match(m.name)]


async def shared_folders(conn: Any, counts: bool, fresh: bool = True) -> list[Any]:
    """The folders of other stores the connection's user may see, with the levels
    above them (for their names). For LIST and LSUB (not `fresh`), the listing the
    connection read last serves `imap_shared_cache` seconds, as Dovecot keeps its
    ACLs (`acl_cache_secs`): a grant made meanwhile lists at most that much later.
    Everything else (SELECT, STATUS, MYRIGHTS, ...) reads it fresh, so a revoked
    right is refused at once and a selected folder's counters are current. The
    connection's own CREATE, DELETE, RENAME, SETACL and DELETEACL drop it (`forget`)."""
    cached = conn.shared_listing
    now = time.monotonic()
    if not fresh and not counts and cached is not None and now - cached[0] < conn.factory.shared_cache:
        return cached[1]
    folders = await conn.session.shared_folders(counts=counts, ancestors=True, properties=False)
    conn.shared_listing = (now, folders)
    return folders


def may_see(folder: Any) -> bool:
    """RFC 4314 `l`: the folder is listed."""
    return rights.has(folder.rights, rights.LOOKUP)


def shared_namespaces(folders: Sequence[Any]) -> list[tuple[str, list[Any]]]:
    """The shared folders grouped by store, each with the prefix its names take:
    `Public Folders/` or `Other Users/<owner's login>/`, by login."""
    stores: dict[int, list[Any]] = {}
    for folder in folders:
        stores.setdefault(folder.store.id, []).append(folder)
    out = []
    for group in stores.values():
        first = group[0]
        if first.store.public:
            prefix = PUBLIC_FOLDERS + DELIMITER
        elif first.owner:
            prefix = OTHER_USERS + DELIMITER + first.owner + DELIMITER
        else:
            continue  # a store nobody owns that is not the public one: no name to give it
        out.append((prefix, group))
    return sorted(out, key=lambda entry: entry[0])


def sort_names(names: Any) -> list[str]:
    """INBOX first, then the rest in order."""
    return sorted(names, key=lambda n: (n != "INBOX", n))


def pattern_regex(reference: str, pattern: str) -> re.Pattern[str]:
    full = reference + pattern
    if full[:5].upper() == "INBOX" and (len(full) == 5 or full[5] in (DELIMITER, "*", "%")):
        full = "INBOX" + full[5:]
    parts = []
    for ch in full:
        if ch == "*":
            parts.append(".*")
        elif ch == "%":
            parts.append(f"[^{re.escape(DELIMITER)}]*")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts) + r"\Z", re.DOTALL)


async def resolve(conn: Any, name: str) -> Mailbox | None:
    """The mailbox `name` from the tree this connection last read, reading the tree
    only when there is none or `name` is not in it (it may have been created since).

    Meant for commands that only need a target folder (APPEND, COPY, MOVE): a client
    appending a thousand messages should not cost a thousand folder listings. The
    connection's own CREATE, DELETE, RENAME and (UN)SUBSCRIBE drop the tree
    (`forget`), and so does any failure of a command that used it."""
    tree = conn.mailbox_tree
    mailbox = tree.get(name) if tree is not None else None
    if mailbox is None:
        tree = conn.mailbox_tree = await MailboxTree.load(conn)
        mailbox = tree.get(name)
    return mailbox


async def target_folder(conn: Any, name: str) -> Any:
    """The folder APPEND, COPY or MOVE puts messages into (through `resolve`); when
    `name` is no selectable mailbox, `NO [TRYCREATE]` (RFC 3501 §6.3.11, §6.4.7), so
    that the client may create it and try again."""
    mailbox = await resolve(conn, name)
    if mailbox is None or not mailbox.selectable:
        raise No("Mailbox does not exist.", "TRYCREATE")
    return mailbox.folder


def forget(conn: Any) -> None:
    """Drop the connection's cached tree and shared listing; the next `resolve` or
    `load` reads them again."""
    conn.mailbox_tree = None
    conn.shared_listing = None
