"""Change tracking: modseqs, tombstones and their expiry."""
from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, bindparam, delete, func, select, update

from shared.errors import NotFound

from .base import chunks
from .private_seen import PrivateSeenMixin
from .restriction import column
from .schema import folders, items, tombstones

CHANGE_COLUMNS = ("uid", "modseq", "flags", "keywords")
# Built once: every selected IMAP mailbox asks after every change it hears of.
_CHANGE_STATE = select(folders.c.highestmodseq, folders.c.tombstone_floor).where(folders.c.id == bindparam("fid"))
_CHANGED_ROWS = (select(*[items.c[c] for c in CHANGE_COLUMNS])
                 .where(items.c.folder_id == bindparam("fid"), items.c.modseq > bindparam("since"))
                 .order_by(items.c.uid))
_GONE_ROWS = (select(tombstones.c.uid, tombstones.c.name)
              .where(tombstones.c.folder_id == bindparam("fid"), tombstones.c.modseq > bindparam("since"))
              .order_by(tombstones.c.uid))
_HIGHEST_MODSEQS = select(folders.c.id, folders.c.highestmodseq).where(folders.c.id.in_(bindparam("ids", expanding=True)))


class ChangesMixin(PrivateSeenMixin):
    """What changed in a folder since a modseq (CONDSTORE/QRESYNC, sync-collection)."""

    def get_changes(self, folder_id: int, since: int, reader: int | None = None) -> dict:
        """Rows with modseq > since, uids deleted since, and whether `since` is too old to answer;
        flags with `reader`'s \\Seen when given (private_seen.py)."""
        since = int(since)

        def run(conn: Connection) -> dict:
            params = {"fid": folder_id, "since": since}
            folder = conn.execute(_CHANGE_STATE, params).first()
            if folder is None:
                raise NotFound(f"folder {folder_id} not found")
            rows = conn.execute(_CHANGED_ROWS, params).all()
            changed = {c: [] for c in CHANGE_COLUMNS}
            if rows:
                for c, values in zip(CHANGE_COLUMNS, zip(*rows)):
                    changed[c] = list(values)
                self._overlay_seen(conn, reader, folder_id, changed["uid"], changed["flags"])
            gone = conn.execute(_GONE_ROWS, params).all()
            return {"highestmodseq": folder.highestmodseq, "changed": changed, "deleted": [g.uid for g in gone],
                    "deleted_names": {g.uid: g.name for g in gone if g.name is not None},
                    "expired": since < folder.tombstone_floor}

        return self._read(run)

    def changed_items(self, folder_id: int, since: int, columns: Iterable[str], reader: int | None = None) -> dict:
        """One read for a sync answer: the folder's counters, `columns` (and "blob_key" if
        asked) of the items changed after `since` in uid order, and the items deleted after
        it. Both come from (folder, modseq) indexes, so the cost follows the number of
        changes, not the size of the folder."""
        since = int(since)
        names = list(columns)
        cols = [column(n, frozenset({"blob_key"})) for n in names]

        def run(conn: Connection) -> dict:
            folder = conn.execute(select(folders.c.highestmodseq, folders.c.uidvalidity, folders.c.tombstone_floor)
                                  .where(folders.c.id == folder_id)).first()
            if folder is None:
                raise NotFound(f"folder {folder_id} not found")
            # Sorted here: an ORDER BY uid could have SQLite walk the folder in uid order.
            rows = sorted(conn.execute(select(items.c.uid, *cols)
                                       .where(items.c.folder_id == folder_id, items.c.modseq > since)).all(),
                          key=lambda row: row[0])
            changed = {n: [row[i] for row in rows] for i, n in enumerate(names, 1)}
            if "flags" in changed:
                self._overlay_seen(conn, reader, folder_id, [row[0] for row in rows], changed["flags"])
            gone = conn.execute(select(tombstones.c.uid, tombstones.c.name)
                                .where(tombstones.c.folder_id == folder_id, tombstones.c.modseq > since)
                                .order_by(tombstones.c.uid)).all()
            return {"highestmodseq": folder.highestmodseq, "uidvalidity": folder.uidvalidity,
                    "expired": since < folder.tombstone_floor, "changed": changed,
                    "deleted": [g.uid for g in gone], "deleted_names": {g.uid: g.name for g in gone if g.name is not None}}

        return self._read(run)

    def highest_modseqs(self, folder_ids: Iterable[int]) -> dict[int, int]:
        """{folder_id: highestmodseq} for the folders that exist."""
        ids = sorted(set(int(f) for f in folder_ids))

        def run(conn: Connection) -> dict[int, int]:
            out: dict[int, int] = {}
            for part in chunks(ids):
                out.update(conn.execute(_HIGHEST_MODSEQS, {"ids": part}).all())
            return out

        return self._read(run) if ids else {}

    def purge_tombstones(self, older_than: int) -> int:
        """Drop tombstones recorded before `older_than` (epoch); raise each folder's floor to match.

        A client asking for changes since a modseq below the floor is told the
        answer has expired and must resynchronise in full.
        """
        def run(conn: Connection) -> int:
            floors = conn.execute(select(tombstones.c.folder_id, func.max(tombstones.c.modseq))
                                  .where(tombstones.c.deleted_at < older_than)
                                  .group_by(tombstones.c.folder_id)).all()
            for fid, floor in floors:
                conn.execute(update(folders).where(folders.c.id == fid, folders.c.tombstone_floor < floor)
                             .values(tombstone_floor=floor))
            return conn.execute(delete(tombstones).where(tombstones.c.deleted_at < older_than)).rowcount

        return self._write(run)


__all__ = ["ChangesMixin", "CHANGE_COLUMNS"]
