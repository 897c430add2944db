"""The IMAP naming rule for a store's mail folders, shared by the IMAP gateway and delivery.

A mailbox name is the folder path joined with `/`; the mail folder with the
`inbox` role is `INBOX` whatever the store calls it, and its subfolders are
`INBOX/...` (RFC 3501 §5.1). `INBOX` compares case-insensitively, every other
level exactly. A parent chain that loops names nothing, and nothing deeper than
`MAX_DEPTH` levels is named, so a damaged tree can hide a folder but never hang
a caller.
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
    below a calendar keeps its full path; callers keep the mail folders. Each
    parent chain is walked once, without recursion."""
    by_id = {folder.id: folder for folder in folders}
    resolved: dict[int, tuple[str, int] | None] = {}  # id -> (name, levels) or None
    for folder in by_id.values():
        chain: list[Any] = []
        seen: set[int] = set()
        current = folder
        while current is not None and current.id not in resolved:
            if current.id in seen:  # a cycle: nothing on it or below it has a name
                for member in chain:
                    resolved[member.id] = None
                chain = []
                break
            seen.add(current.id)
            chain.append(current)
            if is_mail(current) and current.role == "inbox":
                current = None  # INBOX is a top level, wherever the store keeps it
            else:
                current = by_id.get(current.parent_id) if current.parent_id is not None else None
        parent = resolved[current.id] if current is not None and current.id in resolved else ("", 0)
        for member in reversed(chain):
            if is_mail(member) and member.role == "inbox":
                value: tuple[str, int] | None = ("INBOX", 1)
            elif parent is None or not member.name or parent[1] >= MAX_DEPTH:
                value = None
            else:
                value = (f"{parent[0]}{DELIMITER}{member.name}" if parent[0] else member.name, parent[1] + 1)
            resolved[member.id] = parent = value
    return {folder_id: value[0] for folder_id, value in resolved.items() if value is not None}


def mailbox_names(folders: Iterable[Any], paths: dict[int, str] | None = None) -> dict[str, Any]:
    """Mail folders by normalized IMAP name. Inbox first, then by id: the first
    folder of a name wins and later twins stay hidden. `paths`: the folders'
    `folder_paths`, when the caller has them already."""
    folders = list(folders)
    if paths is None:
        paths = folder_paths(folders)
    out: dict[str, Any] = {}
    for folder in sorted((f for f in folders if is_mail(f)), key=lambda f: (f.role != "inbox", f.id)):
        name = paths.get(folder.id)
        if name is not None:
            out.setdefault(normalize(name), folder)
    return out
