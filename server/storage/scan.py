"""Restriction nodes answered by looking at the rows rather than in SQL (restriction.SCAN_KINDS).

A query with such nodes first selects the rows that could match at all (the
restriction with every scan node read as "maybe", `restriction.superset`), once.
Each scan node is then decided for those rows only, from a column (header
columns with non-ASCII needles, the Date header for SENT*, the address search
text, or the cached ENVELOPE of messages stored without it) or by reading the source from the blob store in chunks
(other headers, BODY, TEXT), and turned into a uid list the real SQL condition uses.
"""
from __future__ import annotations

import datetime
import json
from contextlib import closing
from typing import Any

from sqlalchemy import Connection, select, true
from sqlalchemy.sql.elements import ColumnElement

from server.mime.address_search import holds
from server.mime.search import fold, header_matches, sent_matches, text_matches

from .restriction import ADDRESS_FIELDS, ENVELOPE_STRETCH, HEADER_COLUMNS, address_text_sql
from .schema import items
from .uidset import uid_in


class ScanEvaluator:
    """Decides scan nodes for the candidate rows of one query (inside its transaction)."""

    def __init__(self, conn: Connection, blobs: Any, candidates: ColumnElement[bool]) -> None:
        self.conn = conn
        self.blobs = blobs
        self.candidates = candidates
        self._rows: list[Any] | None = None

    def rows(self) -> list[Any]:
        if self._rows is None:
            cols = [items.c.uid, items.c.blob_key, items.c.date, *(items.c[c] for c in HEADER_COLUMNS.values())]
            self._rows = self.conn.execute(select(*cols).where(self.candidates).order_by(items.c.uid)).all()
        return self._rows

    def __call__(self, kind: str, node: tuple[str, str]) -> ColumnElement[bool]:
        if kind == "address":
            return uid_in(items.c.uid, self._address_matches(*node))
        return uid_in(items.c.uid, [row.uid for row in self.rows() if self._matches(row, kind, node)])

    def _matches(self, row: Any, kind: str, node: tuple[str, str]) -> bool:
        first, second = node
        if kind == "sent":
            return sent_matches(row.date, first, datetime.date.fromisoformat(second))
        if kind == "header":
            col = HEADER_COLUMNS.get(first.lower())
            if col is not None:
                value = row._mapping[items.c[col]]
                return value is not None and fold(second) in fold(value)
            return self._read(row, lambda fp: header_matches(fp, first, second))
        return self._read(row, lambda fp: text_matches(fp, second, body_only=first == "body"))

    def _address_matches(self, name: str, needle: str) -> list[int]:
        """The uids an address search matches among the candidates SQL leaves to it:
        rows without search text, and with it for needles beyond ASCII."""
        col = items.c[ADDRESS_FIELDS[name]]
        rows = self.conn.execute(
            select(items.c.uid, items.c.blob_key, items.c.envelope, col.label("text"))
            .where(col.is_(None) if address_text_sql(name, needle) is not None else true(), self.candidates)
            .order_by(items.c.uid))
        folded = fold(needle)
        out = []
        for row in rows:
            if row.text is not None:
                found = any(folded in fold(line) for line in row.text.split("\n")[1:])
            elif not needle:  # only that the field is there
                found = self._read(row, lambda fp: header_matches(fp, name, ""))
            else:
                found = holds(_addresses(row.envelope, name), needle)
            if found:
                out.append(row.uid)
        return out

    def _read(self, row: Any, test: Any) -> bool:
        with closing(self.blobs.open(row.blob_key)) as fp:
            return test(fp)


def _addresses(envelope: str | None, field: str) -> list | None:
    """An address field of the cached ENVELOPE: only its stretch is parsed."""
    if not envelope:
        return None
    start, end = ENVELOPE_STRETCH[field]
    i = envelope.find(start)
    j = envelope.find(end, i)
    try:
        addresses = json.loads(envelope[i + len(start):j]) if 0 <= i < j else \
            json.loads(envelope).get(field)
    except (ValueError, AttributeError):
        return None
    return addresses if isinstance(addresses, list) else None
