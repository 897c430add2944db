"""Folder rights: the RFC 4314 letters, what each kind of work needs, and rights strings.

The store decides every right; gateways read a folder's `rights` (the caller's letters)
only to answer their clients truthfully (IMAP read-only SELECT, CalDAV privileges).

    l  lookup: the folder shows in listings (IMAP LIST, a CalDAV home)
    r  read: select the folder, list and read its items
    s  keep \\Seen
    w  change flags and keywords other than \\Seen and \\Deleted
    i  insert: append, copy or move items into the folder
    p  post: send mail to the folder's submission address
    k  create subfolders (and move folders under it)
    x  delete or rename the folder
    t  set or clear \\Deleted (delete items)
    e  expunge; with t, move items out
    a  administer: read and change the folder's ACL
"""
from __future__ import annotations

from collections.abc import Iterable

ALL = "lrswipkxtea"
NONE = ""

LOOKUP, READ, SEEN, WRITE, INSERT, POST = "l", "r", "s", "w", "i", "p"
CREATE, DELETE_FOLDER, DELETE, EXPUNGE, ADMIN = "k", "x", "t", "e", "a"

# Named sets for sharing dialogs and the admin CLI (the old read/write/owner levels).
READ_ONLY = "lrs"
READ_WRITE = "lrswipkxte"
PRESETS = {"read": READ_ONLY, "write": READ_WRITE, "all": ALL}

# RFC 4314 §2.1.1: the obsolete RFC 2086 rights stand for these.
_OBSOLETE = {"c": "k", "d": "xte"}

# The identifier that stands for every authenticated user, and the mark of a group name.
ANYONE = "anyone"
GROUP_MARK = "$"

# Moving items out (RFC 6851 MOVE; expunging them from the source).
MOVE_OUT = DELETE + EXPUNGE


def normalize(rights: str) -> str:
    """`rights` in canonical order; the obsolete c and d expanded. ValueError for an unknown letter."""
    letters = set()
    for ch in rights:
        if ch in ALL:
            letters.add(ch)
        elif ch in _OBSOLETE:
            letters.update(_OBSOLETE[ch])
        else:
            raise ValueError(f"unknown right {ch!r}")
    return "".join(ch for ch in ALL if ch in letters)


def modify(current: str, change: str) -> str:
    """RFC 4314 SETACL: "+abc" adds to `current`, "-abc" removes from it, "abc" replaces it."""
    if change.startswith("+"):
        return normalize(current + normalize(change[1:]))
    if change.startswith("-"):
        gone = set(normalize(change[1:]))
        return "".join(ch for ch in normalize(current) if ch not in gone)
    return normalize(change)


def union(parts: Iterable[str]) -> str:
    letters = set("".join(parts))
    return "".join(ch for ch in ALL if ch in letters)


def has(rights: str | None, needed: str) -> bool:
    """Whether `rights` hold every letter of `needed`."""
    return rights is not None and all(ch in rights for ch in needed)


def for_flags(flags: Iterable[str]) -> str:
    """The letters needed to set or clear these flags: s for \\Seen, t for \\Deleted, w for others."""
    need = set()
    for flag in flags:
        low = flag.lower()
        need.add(SEEN if low == "\\seen" else DELETE if low == "\\deleted" else WRITE)
    return "".join(ch for ch in ALL if ch in need)


def group_identifier(name: str) -> str:
    return GROUP_MARK + name


def read_only(rights: str | None) -> bool:
    """Whether a folder opened with these rights takes no changes at all (IMAP EXAMINE-like).

    RFC 4314 §4: SELECT is read-write when any of s, w, i, t, e is held."""
    return not any(ch in (rights or "") for ch in "swite")
