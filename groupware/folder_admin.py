"""`groupware folder list|create|rename|delete USER ...`: a user's folders by path
(`Archive/2024`, `/` between levels, as IMAP shows them), on the configured database.
As the other admin commands, it works whether or not the server runs; clients see the
change at their next look (IMAP LIST, a CalDAV PROPFIND)."""
from __future__ import annotations

import argparse
from typing import Any

from groupware.output import Output
from shared.errors import GroupwareError
from shared.mailboxnames import DELIMITER


def add_action_parsers(actions: Any, admin: list[argparse.ArgumentParser], whose: str, list_help: str) -> None:
    """The list, create, rename and delete actions on folders named by path (`whose`: "a" for
    a user's folders, "a public" for the public store's), as `groupware folder` and
    `groupware public` take them."""
    actions.add_parser("list", parents=admin, help=list_help)
    create = actions.add_parser("create", parents=admin, help=f"create {whose} folder (and missing ones above it)")
    create.add_argument("path", metavar="FOLDER", help="the new folder's path, e.g. Projects/2025")
    create.add_argument("--class", dest="folder_class", default="mail",
                        choices=("mail", "calendar", "tasks", "journal", "contacts", "notes"),
                        help="what it holds (default: mail)")
    rename = actions.add_parser("rename", parents=admin, help=f"rename {whose} folder, or move it under another")
    rename.add_argument("path", metavar="FOLDER", help="the folder's path now")
    rename.add_argument("new_path", metavar="NEWFOLDER", help="its new path (its parent must exist)")
    delete = actions.add_parser("delete", parents=admin,
                                help=f"delete {whose} folder with its subfolders and everything in them")
    delete.add_argument("path", metavar="FOLDER", help="the folder's path (not a user's Inbox)")


def paths(folders: list[dict]) -> dict[int, str]:
    by_id = {f["id"]: f for f in folders}

    def path(folder: dict) -> str:
        parts = [folder["name"]]
        while folder["parent_id"] is not None and folder["parent_id"] in by_id:
            folder = by_id[folder["parent_id"]]
            parts.append(folder["name"])
        return DELIMITER.join(reversed(parts))
    return {f["id"]: path(f) for f in folders}


def _summary(folder: dict, path: str) -> dict[str, Any]:
    return {"path": path, "id": folder["id"], "class": folder["container_class"], "role": folder["role"],
            "messages": folder.get("count", 0), "unseen": folder.get("unseen", 0), "size": folder.get("size", 0)}


def find(storage: Any, store_id: int, path: str) -> dict | None:
    folders = storage.list_folders(store_id, counts=False)
    named = paths(folders)
    return next((f for f in folders if named[f["id"]] == path.strip(DELIMITER)), None)


def run(storage: Any, args: argparse.Namespace, out: Output) -> int:
    user = storage.get_user(args.name)
    if user is None:
        return out.error("notFound", f"no user {args.name!r}")
    return run_on_store(storage, user["store_id"], StoreLabel({"user": args.name}, f"{args.name}'s", args.name),
                        args, out)


class StoreLabel:
    """How output names a store: its JSON keys, its possessive, and its name in "has no"."""

    def __init__(self, keys: dict[str, Any], possessive: str, name: str) -> None:
        self.keys, self.possessive, self.name = keys, possessive, name


def run_on_store(storage: Any, store_id: int, label: StoreLabel, args: argparse.Namespace, out: Output) -> int:
    """list, create, rename or delete (args.action) in one store: a user's or the public one."""
    try:
        if args.action == "list":
            folders = storage.list_folders(store_id)
            named = paths(folders)
            rows = sorted((_summary(f, named[f["id"]]) for f in folders), key=lambda r: r["path"].lower())
            return out.result({**label.keys, "folders": rows},
                              [f"{r['path']}\t{r['class']}\t{r['role'] or '-'}\t{r['messages']} messages\t"
                               f"{r['unseen']} unseen\t{r['size']} bytes" for r in rows])
        if args.action == "create":
            return _create(storage, store_id, label, args, out)
        folder = find(storage, store_id, args.path)
        if folder is None:
            return out.error("notFound", f"{label.name} has no folder {args.path!r}")
        if args.action == "delete":
            storage.delete_folder(folder["id"])
            return out.result({**label.keys, "deleted": args.path.strip(DELIMITER)},
                              f"deleted {label.possessive} folder {args.path.strip(DELIMITER)} with its subfolders")
        # rename: a new name and, when the new path has another parent, a move there.
        parent_path, _, name = args.new_path.strip(DELIMITER).rpartition(DELIMITER)
        parent = None
        if parent_path:
            parent = find(storage, store_id, parent_path)
            if parent is None:
                return out.error("notFound", f"{label.name} has no folder {parent_path!r}")
        renamed = storage.update_folder(folder["id"], name=name, parent_id=parent["id"] if parent else None)
        new = args.new_path.strip(DELIMITER)
        return out.result({**label.keys, "renamed": args.path.strip(DELIMITER), "folder": _summary(renamed, new)},
                          f"renamed {label.possessive} folder {args.path.strip(DELIMITER)} to {new}")
    except GroupwareError as exc:
        return out.error(exc.code, exc.message)


def _create(storage: Any, store_id: int, label: StoreLabel, args: argparse.Namespace, out: Output) -> int:
    """The folder and any missing folder above it (RFC 3501 §6.3.3 asks IMAP the same)."""
    parts = [p for p in args.path.split(DELIMITER) if p]
    if not parts:
        return out.error("badRequest", "a folder path is needed", 2)
    folders = storage.list_folders(store_id, counts=False)
    named_ids = paths(folders)
    named = {named_ids[f["id"]]: f for f in folders}
    parent_id, made = None, []
    for depth in range(1, len(parts) + 1):
        path = DELIMITER.join(parts[:depth])
        existing = named.get(path)
        last = depth == len(parts)
        if existing is not None and not last:
            parent_id = existing["id"]
            continue
        if existing is not None:
            return out.error("conflict", f"{label.name} already has a folder {path!r}")
        folder = storage.create_folder(store_id, parent_id, parts[depth - 1],
                                       container_class=args.folder_class if last else "mail")
        made.append(path)
        parent_id = folder["id"]
    created = storage.get_folder(parent_id)
    return out.result({**label.keys, "created": made, "folder": _summary(created, DELIMITER.join(parts))},
                      [f"created {label.possessive} folder {path}" for path in made])
