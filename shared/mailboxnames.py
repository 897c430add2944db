"""The IMAP naming rule for a store's mail folders, shared by the IMAP gateway and delivery.

A mailbox name is the folder path joined with `/`; the mail folder with the
`inbox` role is `INBOX` whatever the store calls it, and its subfolders are
`INBOX/...` (RFC 3501 §5.1). `INBOX` compares case-insensitively, every other
level exactly. A parent chain that loops or runs deeper than `MAX_DEPTH` names
nothing, so a damaged tree can hide a folder but never hang a caller.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

DELIMITER = "/"
MAX_DEPTH = 64


def normalize(name: str) -> str:
    """`inbox/x` and `INBOX/x` name the same mailbox (RFC 3501 §5.1); other names are exact."""
    if name[:5].upper() == "INBOX" and (len(name) == 5 or name[5] == DELIMITER):
        return "INBOX" + name[5:]
    return name


def ancestors(name: str) -> list[str]:
    """The levels above `name`: `a/b/c` -> `a`, `a/b`."""
    parts = name.split(DELIMITER)
    return [DELIMITER.join(parts[:i]) for i in range(1, len(parts))]


def is_mail(folder: Any) -> bool:
    """Folders without a container class (delivery's folder rows) are mail folders."""
    return getattr(folder, "container_class", "mail") == "mail"


def folder_paths(folders: Iterable[Any]) -> dict[int, str]:
    """The name of each folder that has one, by folder id.

    Folders are objects with `id`, `parent_id`, `name`, `role` and optionally
    `container_class`. Every folder of the tree is named so that a mail folder
    below a calendar keeps its full path; callers keep the mail folders."""
    by_id = {folder.id: folder for folder in folders}
    names: dict[int, str | None] = {}

    def name_of(folder: Any, depth: int) -> str | None:
        if folder.id in names:
            return names[folder.id]
        names[folder.id] = None  # a cycle ends here
        if is_mail(folder) and folder.role == "inbox":
            name: str | None = "INBOX"
        elif depth > MAX_DEPTH:
            name = None
        else:
            parent = by_id.get(folder.parent_id) if folder.parent_id is not None else None
            prefix = name_of(parent, depth + 1) if parent is not None else ""
            name = None if prefix is None or not folder.name else (
                f"{prefix}{DELIMITER}{folder.name}" if prefix else folder.name)
        names[folder.id] = name
        return name

    for folder in by_id.values():
        name_of(folder, 0)
    return {folder_id: name for folder_id, name in names.items() if name is not None}


def mailbox_names(folders: Iterable[Any]) -> dict[str, Any]:
    """Mail folders by normalized IMAP name. Inbox first, then by id: the first
    folder of a name wins and later twins stay hidden."""
    folders = list(folders)
    paths = folder_paths(folders)
    out: dict[str, Any] = {}
    for folder in sorted((f for f in folders if is_mail(f)), key=lambda f: (f.role != "inbox", f.id)):
        name = paths.get(folder.id)
        if name is not None:
            out.setdefault(normalize(name), folder)
    return out
