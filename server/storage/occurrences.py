"""The occurrence index of recurring calendar objects."""
from __future__ import annotations

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.sql.elements import ColumnElement

from .base import StorageBase
from .schema import items, occurrences


def occurs_condition(start: int, end: int) -> ColumnElement[bool]:
    """Items with an occurrence overlapping [start, end): single objects by their own range,
    indexed series by their occurrences, other series by the whole series' range."""
    # RFC 4791 §9.9: an object without length (DTSTART = DTEND) overlaps a range it starts in.
    in_range = and_(items.c.dtstart < end,
                    or_(items.c.dtend.is_(None), items.c.dtend > start, items.c.dtstart >= start))
    occ = occurrences.c
    indexed_hit = exists().where(occ.folder_id == items.c.folder_id, occ.uid == items.c.uid,
                                 occ.start < end, or_(occ.end > start, occ.start >= start))
    return and_(in_range, or_(items.c.recurring == 0, items.c.occurrencesUntil.is_(None),
                              items.c.occurrencesUntil < end, indexed_hit))


class OccurrencesMixin(StorageBase):
    def occurrences_of(self, folder_id: int, uid: int) -> list[tuple[int, int]]:
        return self._read(lambda c: [tuple(r) for r in c.execute(
            select(occurrences.c.start, occurrences.c.end).where(
                occurrences.c.folder_id == folder_id, occurrences.c.uid == uid).order_by(occurrences.c.start))])
