"""Restriction trees (the dict form of <gw:restriction>) -> SQLAlchemy conditions on items."""
from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import and_, false, func, literal, not_, or_, true
from sqlalchemy.sql.elements import ColumnElement

from server.mime.address_search import needle_pieces
from shared.errors import BadRequest
from shared.flags import FLAG_BITS

from .occurrences import occurs_condition
from .schema import items

INT_COLUMNS = frozenset({"uid", "modseq", "size", "flags", "internalDate", "dtstart", "dtend", "recurring",
                         "occurrencesUntil", "savedDate", "sentDate", "subjectReply"})
STR_COLUMNS = frozenset({"itemClass", "keywords", "subject", "from", "to", "cc", "messageId", "inReplyTo",
                         "date", "envelope", "bodystructure", "icalUid", "name", "etag", "summary",
                         "fn", "email", "tel", "emailId", "preview",
                         "sortSubject", "sortFrom", "sortTo", "sortCc", "displayFrom", "displayTo",
                         "threadMessageId", "threadParents"})
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
# Kinds the store answers by parsing text or reading sources rather than in SQL
# (IMAP SEARCH HEADER, FROM/TO/CC/BCC, BODY/TEXT, SENT*): see scan.py.
SCAN_KINDS = frozenset({"header", "address", "text", "sent"})
# Header names whose decoded value is a column of its own.
HEADER_COLUMNS = {"subject": "subject", "from": "from", "to": "to", "cc": "cc"}
# Address fields an address search looks at: the column with their search text
# (server/mime/address_search.py; NULL for messages stored before it was kept,
# which are searched through their cached ENVELOPE).
ADDRESS_FIELDS = {"from": "fromAddresses", "to": "toAddresses", "cc": "ccAddresses", "bcc": "bccAddresses"}
_SENT_RELATIONS = frozenset({"before", "on", "since"})


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


def scan_argument(kind: str, arg: Any) -> tuple[str, str]:
    """The checked argument of a scan kind: header (name, substring), address
    ("from" | "to" | "cc" | "bcc", substring), text ("body" | "text", substring) or
    sent ("before" | "on" | "since", "YYYY-MM-DD")."""
    first, second = (str(v) for v in _pair(arg, 2, kind))
    if kind == "address":
        if first.lower() not in ADDRESS_FIELDS:
            raise BadRequest("address restriction searches from, to, cc or bcc")
        return first.lower(), second
    if kind == "header":
        if not first or any(ch.isspace() or ch == ":" or not ch.isprintable() for ch in first):
            raise BadRequest("bad header name")
        return first, second
    if kind == "text":
        if first.lower() not in ("body", "text"):
            raise BadRequest("text restriction searches body or text")
        return first.lower(), second
    if first.lower() not in _SENT_RELATIONS:
        raise BadRequest("sent restriction is before, on or since")
    try:
        datetime.date.fromisoformat(second)
    except ValueError:
        raise BadRequest("sent restriction needs a YYYY-MM-DD date") from None
    return first.lower(), second


def header_sql(name: str, needle: str) -> ColumnElement[bool] | None:
    """SQL for a header search on a column holding that header's decoded value, where
    SQL folds case as IMAP does (ASCII needles); None when the header needs a scan."""
    col = HEADER_COLUMNS.get(name.lower())
    if col is None or not needle.isascii():
        return None
    if not needle:
        return items.c[col].is_not(None)
    # False, not NULL, where the header is missing: NOT SUBJECT x must match such messages.
    return and_(items.c[col].is_not(None), func.lower(items.c[col]).contains(needle.lower(), autoescape=True))


def address_text_sql(name: str, needle: str) -> ColumnElement[bool] | None:
    """SQL for an address search on rows that keep the field's search text (lines of
    printable text, so a printable needle never spans two); None for needles SQL
    cannot fold as IMAP does (beyond ASCII)."""
    col = items.c[ADDRESS_FIELDS[name]]
    if not needle:
        return col != ""
    if not needle.isascii() or not needle.isprintable():
        return None
    return func.lower(col).contains(needle.lower(), autoescape=True)


def address_sql(name: str, needle: str) -> ColumnElement[bool] | None:
    """SQL for a whole address search, where no row needs a scan: the field's
    presence (empty needle) for fields with a decoded column; None otherwise."""
    if needle or name not in HEADER_COLUMNS:
        return None
    col = items.c[ADDRESS_FIELDS[name]]
    return or_(col != "", and_(col.is_(None), items.c[HEADER_COLUMNS[name]].is_not(None)))


def address_condition(name: str, needle: str, wider: bool) -> ColumnElement[bool]:
    """The rows an address search may match (`wider`) or surely matches: SQL on the
    search text, the ENVELOPE pre-filter for rows without one."""
    col = items.c[ADDRESS_FIELDS[name]]
    text = address_text_sql(name, needle)
    if not wider:
        return false() if text is None else and_(col.is_not(None), text)
    kept = col.is_not(None) if text is None else and_(col.is_not(None), text)
    return or_(kept, and_(col.is_(None), address_candidates(name, needle)))


# Each address field's stretch of the cached ENVELOPE JSON (written in this key order,
# without blanks: server/mime/structure.py): from its key to the next one.
ENVELOPE_STRETCH = {"from": ('"from":', ',"sender":'), "to": ('"to":', ',"cc":'),
                     "cc": ('"cc":', ',"bcc":'), "bcc": ('"bcc":', ',"inReplyTo":')}


def _in_stretch(name: str, text: str) -> ColumnElement[bool]:
    start, end = ENVELOPE_STRETCH[name]
    escaped = text.replace("/", "//").replace("%", "/%").replace("_", "/_")
    envelope = func.lower(items.c.envelope)
    # The plain substring test first: it is cheap and turns most rows away.
    return and_(envelope.like(f"%{escaped}%", escape="/"),
                envelope.like(f"%{start}%{escaped}%{end}%", escape="/"))


def address_candidates(name: str, needle: str) -> ColumnElement[bool]:
    """Rows an address search may match. Each piece of the needle between the
    characters the normal form adds or drops is a display name's, local part's or
    domain's: it is in the field's stretch of the cached ENVELOPE, or in the decoded
    column (a name in encoded words; the first of repeated fields only), or, for BCC,
    which has no such column, the stretch holds encoded words."""
    pieces = [p for p in needle_pieces(needle) if p.isascii()]
    if not pieces:
        return true()
    column = HEADER_COLUMNS.get(name)
    if column is None:
        return or_(and_(*(_in_stretch(name, p) for p in pieces)), _in_stretch(name, "=?"))
    decoded = func.lower(items.c[column])
    return and_(*(or_(_in_stretch(name, p), decoded.contains(p, autoescape=True)) for p in pieces))


def needs_scan(r: Any, depth: int = 0) -> bool:
    """Whether a tree holds a node only a scan can answer."""
    if depth > MAX_DEPTH or not isinstance(r, dict) or len(r) != 1:
        return False  # compile_restriction reports the error
    (kind, arg), = r.items()
    if kind in ("and", "or") and isinstance(arg, (list, tuple)):
        return any(needs_scan(x, depth + 1) for x in arg)
    if kind == "not":
        return needs_scan(arg, depth + 1)
    if kind == "header" and isinstance(arg, (list, tuple)) and len(arg) == 2:
        return header_sql(str(arg[0]), str(arg[1])) is None
    if kind == "address" and isinstance(arg, (list, tuple)) and len(arg) == 2:
        return address_sql(str(arg[0]), str(arg[1])) is None
    return kind in SCAN_KINDS


def scan_nodes(r: Any, depth: int = 0) -> list[tuple[str, tuple[str, str]]]:
    """The (kind, checked argument) of every node of a tree only a scan can answer, in
    tree order, repeats included."""
    if depth > MAX_DEPTH or not isinstance(r, dict) or len(r) != 1:
        return []  # compile_restriction reports the error
    (kind, arg), = r.items()
    if kind in ("and", "or") and isinstance(arg, (list, tuple)):
        return [node for x in arg for node in scan_nodes(x, depth + 1)]
    if kind == "not":
        return scan_nodes(arg, depth + 1)
    if kind in SCAN_KINDS and needs_scan(r):
        return [(kind, scan_argument(kind, arg))]
    return []


def superset(r: Any, uids: Callable[[str], ColumnElement[bool]], depth: int = 0,
             wider: bool = True) -> ColumnElement[bool]:
    """A SQL condition true for every row the tree matches (`wider`), or only for rows
    it matches (not `wider`), with scan nodes as "maybe": the rows a scan must look at."""
    if depth > MAX_DEPTH or not isinstance(r, dict) or len(r) != 1:
        raise BadRequest("bad restriction")
    (kind, arg), = r.items()
    if kind in ("and", "or") and isinstance(arg, (list, tuple)):
        terms = [superset(x, uids, depth + 1, wider) for x in arg]
        if not terms:
            return true() if kind == "and" else false()
        return and_(*terms) if kind == "and" else or_(*terms)
    if kind == "not":
        return not_(superset(arg, uids, depth + 1, not wider))
    if kind in SCAN_KINDS and needs_scan(r):
        first, needle = scan_argument(kind, arg)
        if kind == "address":
            return address_condition(first, needle, wider)
        return true() if wider else false()
    return compile_restriction(r, uids, depth)


def _same_column_values(terms: Any) -> tuple[str, list[Any]] | None:
    """(column, values) when every term is an equality with a non-null value on one column."""
    if len(terms) < 2:
        return None
    name, values = None, []
    for term in terms:
        if not isinstance(term, dict) or len(term) != 1 or "cmp" not in term:
            return None
        arg = term["cmp"]
        if not isinstance(arg, (list, tuple)) or len(arg) != 3 or arg[1] != "eq" or arg[2] is None:
            return None
        if name is None:
            name = arg[0]
        elif arg[0] != name:
            return None
        values.append(arg[2])
    return (name, values) if isinstance(name, str) else None


def compile_restriction(r: Any, uids: Callable[[str], ColumnElement[bool]], depth: int = 0,
                        scan: Callable[[str, tuple[str, str]], ColumnElement[bool]] | None = None
                        ) -> ColumnElement[bool]:
    """Compile a restriction tree; `uids` turns a uid-set string into a condition, `scan`
    answers the scan kinds (as a condition naming the rows that match)."""
    if depth > MAX_DEPTH:
        raise BadRequest("restriction nested too deeply")
    if not isinstance(r, dict) or len(r) != 1:
        raise BadRequest("a restriction node has exactly one key")
    (kind, arg), = r.items()
    if kind in ("and", "or"):
        if not isinstance(arg, (list, tuple)):
            raise BadRequest(f"{kind} takes a list")
        listed = _same_column_values(arg) if kind == "or" else None
        if listed is not None:
            # name = a OR name = b ...: one IN, which the (folder, column) indexes answer
            # (SQLite scans the whole folder for a long OR).
            name, values = listed
            return column(name).in_([_int(v) if name in INT_COLUMNS else str(v) for v in values])
        terms = [compile_restriction(x, uids, depth + 1, scan) for x in arg]
        if not terms:
            return true() if kind == "and" else false()
        return and_(*terms) if kind == "and" else or_(*terms)
    if kind == "not":
        return not_(compile_restriction(arg, uids, depth + 1, scan))
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
        # As occurs: an object without length starting in the range is in it (RFC 4791 §9.9).
        return and_(items.c.dtstart < end,
                    or_(items.c.dtend.is_(None), items.c.dtend > start, items.c.dtstart >= start))
    if kind == "occurs":
        # Like range, but recurring series are matched by their indexed occurrences.
        start, end = (_int(v) for v in _pair(arg, 2, "occurs"))
        return occurs_condition(start, end)
    if kind in SCAN_KINDS:
        node = scan_argument(kind, arg)
        direct = header_sql(*node) if kind == "header" else address_sql(*node) if kind == "address" else None
        if direct is not None:
            return direct
        if scan is None:
            raise BadRequest(f"{kind} restrictions work on folder queries only")
        if kind == "address" and address_text_sql(*node) is not None:
            # The scan decides only rows without search text.
            return or_(address_condition(*node, wider=False), scan(kind, node))
        return scan(kind, node)
    raise BadRequest(f"unknown restriction {kind!r}")
