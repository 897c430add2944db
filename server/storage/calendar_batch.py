"""Many calendar objects saved and deleted in one transaction (a whole-calendar import)."""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection, insert, select, update

from shared.errors import PRECONDITION_FAILED, UID_CONFLICT, BadRequest, Conflict

from .base import StorageBase, chunks
from .items import CALENDAR_COLUMNS, CONTACT_COLUMNS
from .schema import items, occurrences

_EMPTY_ROW: dict[str, Any] = {c.name: None for c in items.columns}


class CalendarSave(NamedTuple):
    """One object to create or replace by name: its blob and the columns parsed from it."""
    name: str
    blob_key: str
    size: int
    columns: dict


def _values(columns: dict) -> dict[str, Any]:
    values = {c: columns.get(c) for c in CALENDAR_COLUMNS + CONTACT_COLUMNS}
    values["itemClass"] = values["itemClass"] or "IPM.Appointment"
    values["recurring"] = int(bool(values["recurring"]))
    return values


def _check(saves: Sequence[CalendarSave], delete_names: Sequence[str], conditions: Mapping[str, str]) -> None:
    names: set[str] = set()
    uids: set[str] = set()
    for save in saves:
        if not save.name or "/" in save.name or len(save.name) > 512:
            raise BadRequest("bad resource name")
        if save.name in names:
            raise BadRequest(f"{save.name!r} is saved twice")
        names.add(save.name)
        uid = save.columns.get("icalUid")
        if uid is not None:
            if len(uid) > 512:
                raise BadRequest("UID too long")
            if uid in uids:
                raise Conflict(f"two objects have UID {uid}", UID_CONFLICT)
            uids.add(uid)
    if names.intersection(delete_names):
        raise BadRequest("an object is both saved and deleted")
    if not set(conditions).issubset(delete_names):
        raise BadRequest("a condition for an object not deleted")


class CalendarBatchMixin(StorageBase):
    def save_calendar_items(self, folder_id: int, saves: Sequence[CalendarSave],
                            delete_names: Sequence[str] = (),
                            delete_if_match: Mapping[str, str] | None = None,
                            staged: tuple[str, int] | None = None,
                            save_if_match: Mapping[str, str] | None = None,
                            save_if_none_match: Sequence[str] = ()) -> dict:
        """Create or replace (by name) and delete (by name) calendar objects in one transaction.

        Every change gets the same new modseq; objects not named keep theirs and their ETags.
        A UID may belong to one object of the folder only, counting the objects that stay:
        Conflict (reason uidConflict) otherwise, and nothing is changed. Names to delete
        that are not there are ignored, unless `delete_if_match` (name -> ETag or "*") holds a
        condition for them, which must hold (DELETE with If-Match) or nothing is changed:
        Conflict (reason preconditionFailed). Returns {modseq, saved: [{name, uid, etag,
        created}] in the order given, deleted: [uid]}.

        A save's own condition (PUT with If-Match or If-None-Match) is in `save_if_match`
        (name -> ETag or "*": the object must be there and match) or `save_if_none_match`
        (names that must not be there yet): Conflict (reason preconditionFailed) otherwise.

        With `staged` (import id, user id), the objects staged under that import
        (server.storage.calendar_imports) come first, taken out of staging in the same
        transaction: ImportGone when it is not there, and on any failure it stays staged.
        """
        own_saves, own_deletes, own_conditions = list(saves), list(delete_names), dict(delete_if_match or {})
        save_conditions, must_be_new = dict(save_if_match or {}), set(save_if_none_match)
        if not set(save_conditions).union(must_be_new).issubset(s.name for s in own_saves):
            raise BadRequest("a condition for an object not saved")
        if staged is None:
            _check(own_saves, list(dict.fromkeys(own_deletes)), own_conditions)

        def run(conn: Connection) -> tuple[dict, list[str]]:
            saves, delete_names, conditions = own_saves, own_deletes, own_conditions
            if staged is not None:
                parked = self._take_staged(conn, staged[0], staged[1], folder_id)
                saves = parked.saves + saves
                delete_names = parked.delete_names + delete_names
                conditions = {**parked.delete_if_match, **conditions}
            delete_names = list(dict.fromkeys(delete_names))
            if staged is not None:
                _check(saves, delete_names, conditions)
            values = [_values(s.columns) for s in saves]
            folder = self._lock_folders(conn, [folder_id])[folder_id]
            if not saves and not delete_names:
                return {"modseq": folder.highestmodseq, "saved": [], "deleted": []}, []
            touched = [s.name for s in saves] + delete_names
            existing = {}
            for part in chunks(touched):
                existing.update((r.name, r) for r in conn.execute(
                    select(items.c.uid, items.c.name, items.c.blob_key, items.c.etag, items.c.size)
                    .where(items.c.folder_id == folder_id, items.c.name.in_(part))).all())
            for name, etag in {**conditions, **save_conditions}.items():
                old = existing.get(name)
                if old is None or (etag != "*" and old.etag != etag):
                    raise Conflict(f"precondition: {name} does not match {etag}", PRECONDITION_FAILED)
            if any(name in existing for name in must_be_new):
                raise Conflict("precondition: the object exists", PRECONDITION_FAILED)
            gone = [existing[n] for n in delete_names if n in existing]
            # A UID may stay with another object only if that object is replaced or deleted here.
            touched_names = set(touched)
            wanted_uids = [u for u in (s.columns.get("icalUid") for s in saves) if u is not None]
            for part in chunks(wanted_uids):
                for r in conn.execute(select(items.c.name, items.c.icalUid).where(
                        items.c.folder_id == folder_id, items.c.icalUid.in_(part))).all():
                    if r.name not in touched_names:
                        raise Conflict(f"another item ({r.name}) has UID {r.icalUid}", UID_CONFLICT)
            released = [r.blob_key for r in gone]
            deleted = [r.uid for r in gone]
            # The whole call is counted (and checked) once: a call that frees as much as it
            # adds goes through over quota.
            added_bytes = -sum(int(r.size) for r in gone)
            added_items = -len(gone)
            removed_modseq = (self._remove_rows(conn, folder_id, deleted, charge=False) if deleted
                              else folder.highestmodseq)
            if not saves:
                self._charge(conn, folder_id, added_bytes, added_items)
                return {"modseq": removed_modseq, "saved": [], "deleted": deleted}, released
            new = [i for i, s in enumerate(saves) if s.name not in existing]
            first, modseq, _ = self._bump(conn, folder_id, len(new))
            now = int(time.time())
            out: list[dict[str, Any]] = [{} for _ in saves]
            rows, index_uids, index_rows = [], [], []
            next_uid = first
            for i, (save, vals) in enumerate(zip(saves, values)):
                old = existing.get(save.name)
                if old is None:
                    uid, created = next_uid, True
                    next_uid += 1
                    row = dict(_EMPTY_ROW)
                    row.update(vals, folder_id=folder_id, uid=uid, modseq=modseq, size=int(save.size), flags=0,
                               keywords="", internalDate=now, name=save.name, blob_key=save.blob_key)
                    rows.append(row)
                    added_items += 1
                else:
                    uid, created = old.uid, False
                    added_bytes -= int(old.size)
                    conn.execute(update(items).where(items.c.folder_id == folder_id, items.c.uid == uid)
                                 .values({"modseq": modseq, "blob_key": save.blob_key, "size": int(save.size),
                                          "internalDate": now, **vals}))
                    if old.blob_key != save.blob_key:
                        released.append(old.blob_key)
                    index_uids.append(uid)
                for start, end in dict(save.columns.get("occurrences") or ()).items():
                    index_rows.append({"folder_id": folder_id, "uid": uid, "start": start, "end": end})
                out[i] = {"name": save.name, "uid": uid, "etag": vals["etag"], "created": created}
                added_bytes += int(save.size)
            for part in chunks(rows):
                conn.execute(insert(items), part)
            self._charge(conn, folder_id, added_bytes, added_items)
            for part in chunks(index_uids):
                conn.execute(occurrences.delete().where(occurrences.c.folder_id == folder_id,
                                                        occurrences.c.uid.in_(part)))
            for part in chunks(index_rows):
                conn.execute(insert(occurrences), part)
            return {"modseq": modseq, "saved": out, "deleted": deleted}, released

        result, released = self._write(run)
        result["deleted"] = sorted(result["deleted"])
        self._release_blobs(released)
        return result

    def save_calendar_item(self, folder_id: int, name: str, blob_key: str, size: int, columns: dict,
                           if_match: str | None = None, if_none_match: bool = False) -> dict:
        """Create or replace (same name, same uid) an iCalendar object or a vCard -> {uid, modseq,
        etag, created}: a batch of one, so one object and many are checked and kept alike."""
        result = self.save_calendar_items(folder_id, [CalendarSave(name, blob_key, size, columns)],
                                          save_if_match={name: if_match} if if_match is not None else None,
                                          save_if_none_match=[name] if if_none_match else ())
        saved = result["saved"][0]
        return {"uid": saved["uid"], "modseq": result["modseq"], "etag": saved["etag"], "created": saved["created"]}


__all__ = ["CalendarBatchMixin", "CalendarSave"]
