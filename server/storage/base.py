"""Shared plumbing of the Storage mixins: transactions, folder locks, counters, blob release."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from sqlalchemy import Connection, bindparam, case, func, literal, select, update

from shared.errors import NotFound, Unavailable
from shared.flags import SEEN

from .engine import dispose_engine, is_unavailable, make_engine, run_in_transaction
from .schema import calendar_import_objects, folders, items, meta, users

T = TypeVar("T")
log = logging.getLogger(__name__)

FOLDER_COLUMNS = ("id", "store_id", "parent_id", "name", "container_class", "role", "uidvalidity",
                  "uidnext", "highestmodseq", "display_name", "color", "description", "publish_token")


# Built once: create_message runs these on every call.
_BUMP = (update(folders).where(folders.c.id == bindparam("fid"))
         .values(uidnext=folders.c.uidnext + bindparam("n"), highestmodseq=folders.c.highestmodseq + 1))
_BUMP_RETURNING = _BUMP.returning(folders.c.uidnext, folders.c.highestmodseq, folders.c.uidvalidity)
_COUNTERS = select(folders.c.uidnext, folders.c.highestmodseq, folders.c.uidvalidity).where(folders.c.id == bindparam("fid"))
_LOCK_FOLDER = select(folders).where(folders.c.id == bindparam("fid")).with_for_update()
_REFERENCED_KEYS = select(items.c.blob_key).where(items.c.blob_key.in_(bindparam("keys", expanding=True))).distinct()


def chunks(values: list, size: int = 500) -> Iterable[list]:
    for i in range(0, len(values), size):
        yield values[i:i + size]


class StorageBase:
    """Engine, transaction helpers and the folder counters every write goes through."""

    def __init__(self, url: str, blobs: Any) -> None:
        self.url = url
        self.blobs = blobs
        self.engine = make_engine(url)
        # folder id -> (store id, owner user id). A folder never changes store,
        # so the entry stays true until the folder is deleted.
        self._folder_owners: dict[int, tuple[int, int | None]] = {}
        # user id -> (monotonic time it is good until, their groups): see groups.py.
        self._groups_by_user: dict[int, tuple[float, frozenset[str]]] = {}
        # SQLite can hand the counters back from the UPDATE; MariaDB cannot.
        self._update_returning = bool(self.engine.dialect.update_returning)

    def close(self) -> None:
        dispose_engine(self.engine)

    def ping(self) -> None:
        """One round trip to the database (readiness checks); raises when it cannot answer."""
        from sqlalchemy import text
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def database_version(self) -> str:
        """The database engine and its version, e.g. `sqlite 3.40.1`, `mariadb 10.11.6-MariaDB`."""
        from sqlalchemy import text
        name = self.engine.dialect.name
        query = "SELECT sqlite_version()" if name == "sqlite" else "SELECT VERSION()"
        with self.engine.connect() as conn:
            version = conn.execute(text(query)).scalar()
        if name == "mysql" and "mariadb" in str(version).lower():
            name = "mariadb"
        return f"{name} {version}"

    def pool_use(self) -> dict[str, int]:
        """Connections of the engine's pool: in use, idle, and its size."""
        pool = self.engine.pool
        counts = {}
        for state, method in (("in_use", "checkedout"), ("idle", "checkedin"), ("size", "size")):
            value = getattr(pool, method, None)
            if callable(value):
                counts[state] = int(value())
        return counts

    # -- transactions ---------------------------------------------------
    def _read(self, fn: Callable[[Connection], T]) -> T:
        return run_in_transaction(self.engine, fn, write=False)

    @staticmethod
    def _lock_user(conn: Connection, user_id: int) -> None:
        """Serialise one user's writers (their Sieve scripts, vacation records) on the user's
        row; NotFound for an unknown user."""
        if conn.execute(select(users.c.id).where(users.c.id == user_id).with_for_update()).first() is None:
            raise NotFound(f"user {user_id} not found")

    def _write(self, fn: Callable[[Connection], T]) -> T:
        return run_in_transaction(self.engine, fn, write=True)

    # -- folder rows ----------------------------------------------------
    def _lock_folders(self, conn: Connection, folder_ids: Iterable[int]) -> dict[int, Any]:
        """Lock folder rows (in id order, so two writers never deadlock); NotFound if one is missing.

        On SQLite BEGIN IMMEDIATE already serialises writers and FOR UPDATE is not emitted.
        """
        ids = sorted(set(folder_ids))
        if len(ids) == 1:  # most writes: a statement built once
            rows = conn.execute(_LOCK_FOLDER, {"fid": ids[0]}).all()
        else:
            rows = conn.execute(
                select(folders).where(folders.c.id.in_(ids)).order_by(folders.c.id).with_for_update()
            ).all()
        found = {r.id: r for r in rows}
        for fid in ids:
            if fid not in found:
                raise NotFound(f"folder {fid} not found")
        return found

    def _bump(self, conn: Connection, folder_id: int, new_uids: int = 0) -> tuple[int, int, int]:
        """Take `new_uids` uids and one modseq from the folder counters
        -> (first uid, modseq, uidvalidity).

        The UPDATE takes the row lock itself, so concurrent writers queue on it
        and read back their own values.
        """
        params = {"fid": folder_id, "n": new_uids}
        if self._update_returning:
            row = conn.execute(_BUMP_RETURNING, params).first()
            if row is None:
                raise NotFound(f"folder {folder_id} not found")
        else:
            if conn.execute(_BUMP, params).rowcount == 0:
                raise NotFound(f"folder {folder_id} not found")
            row = conn.execute(_COUNTERS, {"fid": folder_id}).one()
        uidnext, modseq, uidvalidity = row
        return uidnext - new_uids, modseq, uidvalidity

    def _next_uidvalidity(self, conn: Connection) -> int:
        conn.execute(update(meta).where(meta.c.name == "uidvalidity").values(value=meta.c.value + 1))
        value = conn.execute(select(meta.c.value).where(meta.c.name == "uidvalidity")).scalar_one()
        # IMAP UIDVALIDITY is a non-zero 32-bit number.
        return (value - 1) % 0xFFFFFFFF + 1

    @staticmethod
    def _stats_subquery(folder_filter: Any):
        """Per-folder count/unseen/size, grouped in one pass over the items."""
        unseen = case((items.c.flags.op("&")(SEEN) == 0, 1), else_=0)
        return (
            select(items.c.folder_id.label("fid"), func.count().label("count"),
                   func.sum(unseen).label("unseen"), func.sum(items.c.size).label("size"))
            .where(folder_filter)
            .group_by(items.c.folder_id)
            .subquery()
        )

    def _folder_rows(self, conn: Connection, where: Any, item_filter: Any, counts: bool = True) -> list[dict]:
        if not counts:
            # count/unseen/size read as 0: no pass over the folders' items.
            result = conn.execute(select(*[folders.c[c] for c in FOLDER_COLUMNS], literal(0).label("count"),
                                         literal(0).label("unseen"), literal(0).label("size"))
                                  .where(where).order_by(folders.c.id))
        else:
            stats = self._stats_subquery(item_filter)
            result = conn.execute(
                select(*[folders.c[c] for c in FOLDER_COLUMNS], stats.c.count, stats.c.unseen, stats.c.size)
                .select_from(folders.outerjoin(stats, stats.c.fid == folders.c.id))
                .where(where).order_by(folders.c.id))
        # The keys once for all rows: a row's own mapping costs more than the row.
        keys = list(result.keys())
        return [self._folder_dict(dict(zip(keys, r))) for r in result.all()]

    @staticmethod
    def _folder_dict(d: dict) -> dict:
        d["count"] = int(d["count"] or 0)
        d["unseen"] = int(d["unseen"] or 0)
        d["size"] = int(d["size"] or 0)
        return d

    def _get_folder(self, conn: Connection, folder_id: int) -> dict:
        rows = self._folder_rows(conn, folders.c.id == folder_id, items.c.folder_id == folder_id)
        if not rows:
            raise NotFound(f"folder {folder_id} not found")
        return rows[0]

    # -- blobs ----------------------------------------------------------
    def unreferenced_blob_keys(self, keys: Iterable[str]) -> set[str]:
        """The keys no item and no staged calendar object references, checked 1000 keys to a SELECT."""
        pending = sorted(set(k for k in keys if k))
        missing: set[str] = set()
        for part in chunks(pending, 1000):
            found = set(self._read(lambda c: c.execute(
                select(items.c.blob_key).where(items.c.blob_key.in_(part)).distinct()
            ).scalars().all()))
            # A calendar import's staged objects name their blobs before any item does.
            found.update(self._read(lambda c: c.execute(
                select(calendar_import_objects.c.blob_key)
                .where(calendar_import_objects.c.blob_key.in_([k for k in part if k not in found])).distinct()
            ).scalars().all()))
            missing.update(k for k in part if k not in found)
        return missing

    def referenced_blob_keys(self) -> set[str]:
        """Every blob key an item references (what a backup of the blob files must hold)."""
        return set(self._read(lambda c: c.execute(
            select(items.c.blob_key).where(items.c.blob_key.is_not(None)).distinct()).scalars().all()))

    def discard_unstored(self, keys: Iterable[str], error: BaseException) -> None:
        """Delete the blobs of a write that failed with `error`, unless its outcome is unknown:
        a database connection lost during the commit may have stored the rows that name them.
        Those blobs stay; `groupware blobs gc` removes them later if no row names them."""
        if isinstance(error, Unavailable) or is_unavailable(error):
            return
        for key in keys:
            self.blobs.delete(key)

    def _release_blobs(self, keys: Iterable[str]) -> None:
        """Delete blobs no item references any more; call only after the commit.

        Copies share a key, so a key is only dropped when its last row is gone.
        """
        pending = sorted(set(k for k in keys if k))
        if not pending or self.blobs is None:
            return
        for part in chunks(pending):
            self._delete_blobs(self._read(lambda c: self._unreferenced(c, part)))

    @staticmethod
    def _unreferenced(conn: Connection, keys: Iterable[str]) -> list[str]:
        """Of these blob keys, those no item row references (as `conn` sees the rows)."""
        pending = sorted(set(k for k in keys if k))
        gone: list[str] = []
        for part in chunks(pending):
            still = set(conn.execute(_REFERENCED_KEYS, {"keys": part}).scalars().all())
            gone += [key for key in part if key not in still]
        return gone

    def _delete_blobs(self, keys: Iterable[str]) -> None:
        """Delete these blobs, whose rows are gone for good (after the commit)."""
        if self.blobs is None:
            return
        for key in keys:
            try:
                self.blobs.delete(key)
            except Exception:  # a leaked blob is harmless; a failed delete must not undo the commit
                log.exception("could not delete blob %s", key)
