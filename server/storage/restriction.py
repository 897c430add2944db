"""Restriction trees (the dict form of <gw:restriction>) -> SQLAlchemy conditions on items."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import and_, false, func, literal, not_, or_, true
from sqlalchemy.sql.elements import ColumnElement

from shared.errors import BadRequest
from shared.flags import FLAG_BITS

from .schema import items

INT_COLUMNS = frozenset({"uid", "modseq", "size", "flags", "internalDate", "dtstart", "dtend", "recurring"})
STR_COLUMNS = frozenset({"itemClass", "keywords", "subject", "from", "to", "cc", "messageId", "inReplyTo",
                         "date", "envelope", "bodystructure", "icalUid", "name", "etag", "summary"})
COLUMNS = INT_COLUMNS | STR_COLUMNS
_OPS = {
    "eq": lambda c, v: c.is_(None) if v is None else c == v,
    "ne": lambda c, v: c.is_not(None) if v is None else c != v,
    "lt": lambda c, v: c < v,
    "le": lambda c, v: c <= v,
    "gt": lambda c, v: c > v,
    "ge": lambda c, v: c >= v,
}
_FLAG_BY_LOWER = {k.lower(): v for k, v in FLAG_BITS.items()}
MAX_DEPTH = 64


def column(name: str, extra: frozenset[str] = frozenset()):
    """The items column for a public column name; BadRequest for anything else."""
    if name not in COLUMNS and name not in extra:
        raise BadRequest(f"unknown column {name!r}")
    return items.c[name]


def _pair(value: Any, n: int, what: str) -> Sequence[Any]:
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise BadRequest(f"bad {what} restriction")
    return value


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"not an integer: {value!r}") from None


def flag_condition(name: str, has: bool) -> ColumnElement[bool]:
    """Has (or has not) a system flag or keyword."""
    if not isinstance(name, str) or not name:
        raise BadRequest("bad flag name")
    if name.startswith("\\"):
        bit = _FLAG_BY_LOWER.get(name.lower())
        if bit is None:
            raise BadRequest(f"unknown system flag {name!r}")
        cond = items.c.flags.op("&")(bit) != 0
    else:
        if any(ch.isspace() for ch in name):
            raise BadRequest("bad keyword")
        # Keywords are stored space-separated; pad so a match is a whole word.
        padded = literal(" ") + items.c.keywords + literal(" ")
        cond = padded.contains(" " + name + " ", autoescape=True)
    return cond if has else not_(cond)


def compile_restriction(r: Any, uids: Callable[[str], ColumnElement[bool]], depth: int = 0
                        ) -> ColumnElement[bool]:
    """Compile a restriction tree; `uids` turns a uid-set string into a condition."""
    if depth > MAX_DEPTH:
        raise BadRequest("restriction nested too deeply")
    if not isinstance(r, dict) or len(r) != 1:
        raise BadRequest("a restriction node has exactly one key")
    (kind, arg), = r.items()
    if kind in ("and", "or"):
        if not isinstance(arg, (list, tuple)):
            raise BadRequest(f"{kind} takes a list")
        terms = [compile_restriction(x, uids, depth + 1) for x in arg]
        if not terms:
            return true() if kind == "and" else false()
        return and_(*terms) if kind == "and" else or_(*terms)
    if kind == "not":
        return not_(compile_restriction(arg, uids, depth + 1))
    if kind == "cmp":
        name, op, value = _pair(arg, 3, "cmp")
        col = column(name)
        if op not in _OPS:
            raise BadRequest(f"unknown operator {op!r}")
        if value is not None:
            value = _int(value) if name in INT_COLUMNS else str(value)
        if value is None and op not in ("eq", "ne"):
            raise BadRequest("null only compares with eq/ne")
        return _OPS[op](col, value)
    if kind == "uids":
        if not isinstance(arg, str):
            raise BadRequest("uids takes a uid-set string")
        return uids(arg)
    if kind == "flag":
        name, has = _pair(arg, 2, "flag")
        if isinstance(has, str):
            has = has.lower() in ("1", "true", "yes")
        return flag_condition(name, bool(has))
    if kind == "contains":
        name, text = _pair(arg, 2, "contains")
        if name not in STR_COLUMNS:
            raise BadRequest(f"contains needs a text column, not {name!r}")
        return func.lower(items.c[name]).contains(str(text).lower(), autoescape=True)
    if kind == "range":
        start, end = (_int(v) for v in _pair(arg, 2, "range"))
        return and_(items.c.dtstart < end, or_(items.c.dtend.is_(None), items.c.dtend > start))
    raise BadRequest(f"unknown restriction {kind!r}")
