"""Folders: the tree and its counters (their rights: acl.py)."""
from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, delete, func, insert, literal, select, update

from shared.errors import LIMIT, BadRequest, Conflict, NotFound

from .base import chunks
from .private_seen import PrivateSeenMixin
from .schema import folder_acl, folders, items, stores, tombstones

# schedule-inbox: a user's scheduling messages (RFC 6638), shown by CalDAV only as the schedule inbox.
# "placeholder": a mail folder deleted while it had subfolders, kept (empty) as the
# name above them (IMAP's \Noselect, RFC 3501 §6.3.4) until it is deleted or made
# a mail folder again.
CONTAINER_CLASSES = ("mail", "calendar", "tasks", "journal", "contacts", "notes", "schedule-inbox", "placeholder")
# The container class changes updateFolder may make: (from, to).
CLASS_CHANGES = frozenset({("mail", "placeholder"), ("placeholder", "mail")})
ROLES = (None, "inbox", "drafts", "sent", "trash", "junk", "archive")


class _Keep:
    """Marks "argument not given" where None is a meaningful value (top level)."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()


# The folders table's name column holds this many characters: no setting goes beyond it.
FOLDER_NAME_COLUMN = 255


class FoldersMixin(PrivateSeenMixin):
    """Folder tree operations."""

    # Levels a folder may lie below the top (`max_folder_depth`): every listing walks the
    # tree, so a client must not make it as deep as it likes.
    max_folder_depth = 32
    # Characters in one level's name (`max_folder_name_length`) and folders in one store
    # (`max_folders`): every listing and LIST answer carries all of them.
    max_folder_name_length = FOLDER_NAME_COLUMN
    max_folders = 5000
    # Folders whose store and owner are remembered (`folder_owner_cache`, about 150 bytes
    # each); when that many are, they are all forgotten and remembered again as asked.
    folder_owner_cache = 100_000

    # -- helpers --------------------------------------------------------
    def _check_name(self, name: str) -> str:
        if not isinstance(name, str) or not name.strip():
            raise BadRequest("folder name is empty")
        if "/" in name:
            raise BadRequest("folder name contains '/'")
        if any(ord(ch) < 32 for ch in name):
            raise BadRequest("bad folder name")
        if len(name) > self.max_folder_name_length:
            raise BadRequest(f"folder names have at most {self.max_folder_name_length} characters", LIMIT)
        return name

    def _insert_folder(self, conn: Connection, store_id: int, parent_id: int | None, name: str,
                       container_class: str, role: str | None) -> int:
        """A new folder row; the caller holds the store's lock (`_lock_store`), so the count holds."""
        count = conn.execute(select(func.count()).select_from(folders).where(folders.c.store_id == store_id)).scalar()
        if count >= self.max_folders:
            raise BadRequest(f"a store holds at most {self.max_folders} folders", LIMIT)
        return conn.execute(insert(folders).values(
            store_id=store_id, parent_id=parent_id, name=name, container_class=container_class,
            role=role, uidvalidity=self._next_uidvalidity(conn), uidnext=1, highestmodseq=1,
            tombstone_floor=0)).inserted_primary_key[0]

    def _lock_store(self, conn: Connection, store_id: int) -> None:
        """Serialise tree changes within one store so sibling-name checks hold."""
        if conn.execute(select(stores.c.id).where(stores.c.id == store_id).with_for_update()).first() is None:
            raise NotFound(f"store {store_id} not found")

    @staticmethod
    def _sibling(conn: Connection, store_id: int, parent_id: int | None, name: str,
                 exclude: int | None = None) -> Any:
        """The folder named exactly `name` under `parent_id` (id, name, container_class), or None."""
        parent_cond = folders.c.parent_id.is_(None) if parent_id is None else folders.c.parent_id == parent_id
        q = select(folders.c.id, folders.c.name, folders.c.container_class).where(
            folders.c.store_id == store_id, parent_cond)
        # Compare in Python: the database collation may be case- or accent-insensitive.
        return next((r for r in conn.execute(q).all() if r.name == name and r.id != exclude), None)

    def _sibling_exists(self, conn: Connection, store_id: int, parent_id: int | None, name: str,
                        exclude: int | None = None) -> bool:
        return self._sibling(conn, store_id, parent_id, name, exclude) is not None

    @staticmethod
    def _tree(conn: Connection, store_id: int) -> dict[int, int | None]:
        return {r.id: r.parent_id for r in conn.execute(
            select(folders.c.id, folders.c.parent_id).where(folders.c.store_id == store_id)).all()}

    @staticmethod
    def _depth(tree: dict[int, int | None], folder_id: int) -> int:
        """1 for a top-level folder; a damaged tree with a cycle stops after every folder."""
        depth, parent = 1, tree.get(folder_id)
        while parent is not None and depth <= len(tree):
            depth, parent = depth + 1, tree.get(parent)
        return depth

    def _check_depth(self, tree: dict[int, int | None], parent_id: int | None, height: int = 1) -> None:
        """Refuse to put a subtree `height` levels high below `parent_id` past the limit."""
        depth = (self._depth(tree, parent_id) if parent_id is not None else 0) + height
        if depth > self.max_folder_depth:
            raise BadRequest(f"folders nest at most {self.max_folder_depth} levels deep", LIMIT)

    @staticmethod
    def _descendants(tree: dict[int, int | None], root: int) -> list[int]:
        children: dict[int | None, list[int]] = {}
        for fid, parent in tree.items():
            children.setdefault(parent, []).append(fid)
        out, todo = [], [root]
        while todo:
            fid = todo.pop()
            out.append(fid)
            todo.extend(children.get(fid, ()))
        return out

    def _delete_folder_rows(self, conn: Connection, folder_ids: list[int]) -> list[str]:
        """Delete folders (all of one store) with their items and tombstones, their items
        leaving the store's usage; returns blob keys to release."""
        keys: list[str] = []
        if folder_ids:
            store_id = self._store_of(conn, folder_ids[0])
        for fid in folder_ids:
            self._folder_owners.pop(fid, None)
        for part in chunks(list(folder_ids)):
            keys.extend(conn.execute(select(items.c.blob_key).where(items.c.folder_id.in_(part))
                                     .distinct()).scalars().all())
            freed, removed = conn.execute(select(func.coalesce(func.sum(items.c.size), 0), func.count())
                                          .where(items.c.folder_id.in_(part))).one()
            self._charge_store(conn, store_id, -int(freed), -int(removed))
            conn.execute(delete(items).where(items.c.folder_id.in_(part)))
            conn.execute(delete(tombstones).where(tombstones.c.folder_id.in_(part)))
            self._drop_seen(conn, part)
            conn.execute(delete(folder_acl).where(folder_acl.c.folder_id.in_(part)))
            # Detach first: one DELETE then needs no cascade order (MySQL caps cascade depth).
            conn.execute(update(folders).where(folders.c.id.in_(part)).values(parent_id=None))
        for part in chunks(list(folder_ids)):
            conn.execute(delete(folders).where(folders.c.id.in_(part)))
        return keys

    # -- reading --------------------------------------------------------
    def list_folders(self, store_id: int, counts: bool = True) -> list[dict]:
        """All folders of a store with count/unseen/size (0 unless `counts`), in one query."""
        in_store = select(folders.c.id).where(folders.c.store_id == store_id)
        return self._read(lambda c: self._folder_rows(
            c, folders.c.store_id == store_id, items.c.folder_id.in_(in_store), counts))

    def get_folder(self, folder_id: int) -> dict:
        return self._read(lambda c: self._get_folder(c, folder_id))

    # -- writing --------------------------------------------------------
    def create_folder(self, store_id: int, parent_id: int | None, name: str,
                      container_class: str = "mail", role: str | None = None) -> dict:
        self._check_name(name)
        if container_class not in CONTAINER_CLASSES:
            raise BadRequest(f"unknown container class {container_class!r}")
        if role not in ROLES:
            raise BadRequest(f"unknown role {role!r}")

        def run(conn: Connection) -> int:
            self._lock_store(conn, store_id)
            if parent_id is not None:
                parent = conn.execute(select(folders.c.store_id).where(folders.c.id == parent_id)).first()
                if parent is None:
                    raise NotFound(f"folder {parent_id} not found")
                if parent.store_id != store_id:
                    raise BadRequest("parent folder is in another store")
            if self._sibling_exists(conn, store_id, parent_id, name):
                raise Conflict(f"folder {name!r} exists")
            if parent_id is not None:
                self._check_depth(self._tree(conn, store_id), parent_id)
            return self._insert_folder(conn, store_id, parent_id, name, container_class, role)

        fid = self._write(run)
        return self.get_folder(fid)

    def update_folder(self, folder_id: int, name: str | None = None, parent_id: Any = KEEP,
                      display_name: str | None = None, color: str | None = None,
                      description: str | None = None, container_class: str | None = None) -> dict:
        """Rename, move (parent_id=None: top level) or restyle a folder; or turn a mail
        folder into a placeholder, deleting its items in the same transaction, or a
        placeholder into an (empty) mail folder."""
        if name is not None:
            self._check_name(name)
        released: list[str] = []

        def run(conn: Connection) -> None:
            row = conn.execute(select(folders).where(folders.c.id == folder_id)).first()
            if row is None:
                raise NotFound(f"folder {folder_id} not found")
            self._lock_store(conn, row.store_id)
            values: dict[str, Any] = {}
            new_parent = row.parent_id if parent_id is KEEP else parent_id
            new_name = row.name if name is None else name
            if new_parent != row.parent_id:
                if new_parent is not None:
                    tree = self._tree(conn, row.store_id)
                    if new_parent not in tree:
                        target = conn.execute(select(folders.c.id).where(folders.c.id == new_parent)).first()
                        if target is None:
                            raise NotFound(f"folder {new_parent} not found")
                        raise BadRequest("cannot move a folder to another store")
                    moved = self._descendants(tree, folder_id)
                    if new_parent in moved:
                        raise BadRequest("cannot move a folder under itself")
                    base = self._depth(tree, folder_id)
                    self._check_depth(tree, new_parent, 1 + max(self._depth(tree, f) for f in moved) - base)
                values["parent_id"] = new_parent
            if new_name != row.name:
                values["name"] = new_name
            if values and self._sibling_exists(conn, row.store_id, new_parent, new_name, exclude=folder_id):
                raise Conflict(f"folder {new_name!r} exists")
            for key, val in (("display_name", display_name), ("color", color), ("description", description)):
                if val is not None:
                    values[key] = val
            if container_class is not None and container_class != row.container_class:
                if (row.container_class, container_class) not in CLASS_CHANGES or row.role == "inbox":
                    raise BadRequest(f"a {row.container_class} folder cannot become {container_class}")
                values["container_class"] = container_class
                if container_class == "placeholder":
                    released[:] = self._delete_all_items(conn, folder_id)[1]
            if values:
                conn.execute(update(folders).where(folders.c.id == folder_id).values(**values))

        self._write(run)
        self._release_blobs(released)
        return self.get_folder(folder_id)

    def delete_folder(self, folder_id: int) -> None:
        """Delete a folder, its subfolders and items; the inbox cannot be deleted."""
        def run(conn: Connection) -> list[str]:
            row = conn.execute(select(folders.c.store_id, folders.c.role)
                               .where(folders.c.id == folder_id)).first()
            if row is None:
                raise NotFound(f"folder {folder_id} not found")
            if row.role == "inbox":
                raise BadRequest("the inbox cannot be deleted")
            self._lock_store(conn, row.store_id)
            ids = self._descendants(self._tree(conn, row.store_id), folder_id)
            self._lock_folders(conn, ids)
            return self._delete_folder_rows(conn, ids)

        self._release_blobs(self._write(run))

    def empty_folder(self, folder_id: int) -> int:
        """Delete every item of the folder (leaving tombstones); returns the new highestmodseq."""
        modseq, keys = self._write(lambda conn: self._delete_all_items(conn, folder_id))
        self._release_blobs(keys)
        return modseq

    def _delete_all_items(self, conn: Connection, folder_id: int) -> tuple[int, list[str]]:
        """(new highest modseq, blob keys to release once committed) of deleting every
        item of the folder, leaving tombstones."""
        folder = self._lock_folders(conn, [folder_id])[folder_id]
        if conn.execute(select(items.c.uid).where(items.c.folder_id == folder_id).limit(1)).first() is None:
            return folder.highestmodseq, []
        _, modseq, _ = self._bump(conn, folder_id)
        keys = conn.execute(select(items.c.blob_key).where(items.c.folder_id == folder_id)
                            .distinct()).scalars().all()
        freed, removed = conn.execute(select(func.coalesce(func.sum(items.c.size), 0), func.count())
                                      .where(items.c.folder_id == folder_id)).one()
        self._charge(conn, folder_id, -int(freed), -int(removed))
        conn.execute(insert(tombstones).from_select(
            ["folder_id", "uid", "modseq", "deleted_at"],
            select(items.c.folder_id, items.c.uid, literal(modseq), literal(int(time.time())))
            .where(items.c.folder_id == folder_id)))
        conn.execute(delete(items).where(items.c.folder_id == folder_id))
        self._drop_seen(conn, [folder_id])
        return modseq, list(keys)


__all__ = ["FoldersMixin", "KEEP", "CONTAINER_CLASSES", "ROLES"]
