"""Resolved uid sets (shared.uidset) as SQL conditions."""
from __future__ import annotations

from sqlalchemy import bindparam, false, or_
from sqlalchemy.sql.elements import ColumnElement

# Past this many distinct ranges a condition would get too deep for SQLite's
# expression parser; callers then resolve the set against the existing uids.
MAX_SQL_RANGES = 200


def uid_in(column: ColumnElement, uids: list[int]) -> ColumnElement[bool]:
    """`column IN (...)` with the values rendered inline.

    Inline rendering sidesteps SQLite's bound-parameter limit for big lists
    and keeps the statement cacheable by shape.
    """
    if not uids:
        return false()
    return column.in_(bindparam(None, value=list(uids),
                                expanding=True, literal_execute=True))


def sql_condition(column: ColumnElement, resolved: list[tuple[int, int]]) -> ColumnElement[bool] | None:
    """A condition for merged ranges, or None when there are too many ranges."""
    if not resolved:
        return false()
    singles = [a for a, b in resolved if a == b]
    spans = [(a, b) for a, b in resolved if a != b]
    if len(spans) > MAX_SQL_RANGES:
        return None
    terms: list[ColumnElement[bool]] = [column.between(a, b) for a, b in spans]
    if singles:
        terms.append(uid_in(column, singles))
    return terms[0] if len(terms) == 1 else or_(*terms)


__all__ = ["sql_condition", "uid_in", "MAX_SQL_RANGES"]
