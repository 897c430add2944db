"""Whole-calendar imports staged over several saveCalendarItems calls.

Each staging call writes its objects' blobs and parks their rows here (the parsed query
columns with them); the call that commits takes them out again in the transaction that
stores them (`CalendarBatchMixin.save_calendar_items(staged=...)`). An import belongs to a
user and a folder; whichever store process or instance on the database gets the next call
finds it. It goes when it is committed, when an object of it is refused, when the session
that last staged to it logs off, and when nobody has staged to it for a while (the sweep).
"""
from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from shared.errors import TooLarge, Unavailable

from .base import StorageBase, chunks
from .items import CALENDAR_COLUMNS
from .schema import calendar_import_objects as objects
from .schema import calendar_imports as imports


class ImportGone(Unavailable):
    """The staged import is not there (committed, dropped, or never made): the client
    sends the whole import again."""

    def __init__(self) -> None:
        super().__init__("the calendar import is gone (committed, refused or abandoned); send it again")


def _encode_columns(columns: Mapping[str, Any]) -> str:
    wanted = {c: columns.get(c) for c in CALENDAR_COLUMNS}
    if columns.get("occurrences"):
        wanted["occurrences"] = [list(pair) for pair in dict(columns["occurrences"]).items()]
    return json.dumps(wanted, separators=(",", ":"))


class StagedObjects:
    """The objects of an import taken out of staging, in the order they were staged."""

    def __init__(self) -> None:
        self.saves: list[Any] = []  # CalendarSave
        self.delete_names: list[str] = []
        self.delete_if_match: dict[str, str] = {}

    def blob_keys(self) -> list[str]:
        return [save.blob_key for save in self.saves]


class CalendarImportsMixin(StorageBase):
    def staged_calendar_objects(self, user_id: int) -> int:
        """How many objects the user has staged over all their imports."""
        return int(self._read(lambda conn: conn.execute(
            select(func.coalesce(func.sum(imports.c.objects), 0)).where(imports.c.user_id == user_id)).scalar()))

    def calendar_import_exists(self, import_id: str, user_id: int, folder_id: int) -> bool:
        return self._read(lambda conn: self._import_row(conn, import_id, user_id, folder_id, lock=False)) is not None

    @staticmethod
    def _import_row(conn: Connection, import_id: str, user_id: int, folder_id: int, lock: bool = True) -> Any:
        query = select(imports.c.id, imports.c.objects).where(
            imports.c.id == import_id, imports.c.user_id == user_id, imports.c.folder_id == folder_id)
        return conn.execute(query.with_for_update() if lock else query).first()

    def stage_calendar_objects(self, user_id: int, folder_id: int, import_id: str | None, session: str,
                               saves: Sequence[Any], delete_names: Sequence[str],
                               delete_if_match: Mapping[str, str], limit: int, now: int) -> str:
        """Park objects (their blobs written) under import `import_id` of the user and folder,
        or under a new import (`import_id` None); returns the import's id. ImportGone when
        there is no such import, TooLarge when the user's staged objects would pass `limit`;
        then nothing is parked and the caller still owns the blobs."""
        count = len(saves) + len(delete_names)
        rows = [{"name": save.name, "blob_key": save.blob_key, "size": int(save.size),
                 "columns": _encode_columns(save.columns), "if_match": None} for save in saves]
        rows += [{"name": name, "blob_key": None, "size": 0, "columns": None,
                  "if_match": delete_if_match.get(name)} for name in delete_names]

        def write(conn: Connection) -> str:
            # One user's staging calls queue on the user's row, so the bound holds exactly
            # however many processes take them.
            self._lock_user(conn, user_id)
            if import_id is not None and self._import_row(conn, import_id, user_id, folder_id) is None:
                raise ImportGone()
            staged = conn.execute(select(func.coalesce(func.sum(imports.c.objects), 0))
                                  .where(imports.c.user_id == user_id)).scalar()
            if int(staged) + count > limit:
                raise TooLarge(f"a calendar import holds at most {limit} objects")
            target = import_id
            if target is None:
                target = secrets.token_hex(16)
                conn.execute(insert(imports).values(id=target, user_id=user_id, folder_id=folder_id,
                                                    session=session, objects=count, touched=now))
            else:
                conn.execute(update(imports).where(imports.c.id == target).values(
                    objects=imports.c.objects + count, session=session, touched=now))
            for part in chunks(rows):
                conn.execute(insert(objects), [{**row, "import_id": target} for row in part])
            return target

        return self._write(write)

    def _take_staged(self, conn: Connection, import_id: str, user_id: int, folder_id: int) -> StagedObjects:
        """Inside a write transaction: the objects of an import, and the import gone
        (with the transaction); ImportGone when there is none."""
        from .calendar_batch import CalendarSave

        if self._import_row(conn, import_id, user_id, folder_id) is None:
            raise ImportGone()
        staged = StagedObjects()
        for row in conn.execute(select(objects.c.name, objects.c.blob_key, objects.c.size, objects.c.columns,
                                       objects.c.if_match)
                                .where(objects.c.import_id == import_id).order_by(objects.c.id)):
            if row.blob_key is None:
                staged.delete_names.append(row.name)
                if row.if_match is not None:
                    staged.delete_if_match[row.name] = row.if_match
            else:
                staged.saves.append(CalendarSave(row.name, row.blob_key, row.size, json.loads(row.columns)))
        conn.execute(delete(objects).where(objects.c.import_id == import_id))
        conn.execute(delete(imports).where(imports.c.id == import_id))
        return staged

    def drop_calendar_import(self, import_id: str) -> int:
        """Drop an import with its staged blobs; how many objects it had staged."""
        return self._drop_imports(imports.c.id == import_id)

    def drop_calendar_imports_of_session(self, session: str) -> int:
        """Drop the imports the session staged to last (it logged off); how many objects went.
        Every logoff asks, so a session without any costs one indexed read, no write."""
        return self._drop_imports(imports.c.session == session)

    def drop_stale_calendar_imports(self, before: int) -> int:
        """Drop the imports nobody staged to since `before` (Unix time); how many objects went."""
        return self._drop_imports(imports.c.touched < before)

    def _drop_imports(self, which: Any) -> int:
        # Looked for first: most logoffs and sweeps find none, and then need no write.
        if self._read(lambda conn: conn.execute(select(imports.c.id).where(which).limit(1)).first()) is None:
            return 0

        def write(conn: Connection) -> tuple[int, list[str]]:
            ids = conn.execute(select(imports.c.id).where(which).with_for_update()).scalars().all()
            if not ids:
                return 0, []
            keys: list[str] = []
            dropped = 0
            for part in chunks(list(ids)):
                for key in conn.execute(select(objects.c.blob_key).where(objects.c.import_id.in_(part))).scalars():
                    dropped += 1
                    if key is not None:
                        keys.append(key)
                conn.execute(delete(objects).where(objects.c.import_id.in_(part)))
                conn.execute(delete(imports).where(imports.c.id.in_(part)))
            return dropped, keys

        dropped, keys = self._write(write)
        # Only the transaction that removed the rows names these blobs: no other process
        # deletes them too, and no item names a blob of staging.
        for key in keys:
            self.blobs.delete(key)
        return dropped


__all__ = ["CalendarImportsMixin", "ImportGone", "StagedObjects"]
