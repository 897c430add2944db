"""Restriction nodes answered by looking at the rows rather than in SQL (restriction.SCAN_KINDS).

A query with such nodes first selects the rows that could match at all (the
restriction with every scan node read as "maybe", `restriction.superset`), once.
Each scan node is then decided for those rows only, from a column (header
columns with non-ASCII needles, the Date header for SENT*, the address search
text, or the cached ENVELOPE of messages stored without it) or by reading the source from the blob store in chunks
(other headers, BODY, TEXT), and turned into a uid list the real SQL condition uses.
The nodes that read sources are decided together, each candidate's source read once
for all of them (a search with ten BODY keys costs one pass, not ten), under the
calling thread's work budget (shared/budget.py).
"""
from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from contextlib import closing
from typing import Any

from sqlalchemy import Connection, select, true
from sqlalchemy.sql.elements import ColumnElement

from server.mime.address_search import holds
from server.mime.search import fold, header_block_matches, read_header_block, sent_matches, texts_found
from shared.budget import check as check_budget

from .restriction import ADDRESS_FIELDS, ENVELOPE_STRETCH, HEADER_COLUMNS, address_text_sql
from .schema import items
from .uidset import uid_in


class ScanEvaluator:
    """Decides scan nodes for the candidate rows of one query (inside its transaction)."""

    def __init__(self, conn: Connection, blobs: Any, candidates: ColumnElement[bool],
                 nodes: Iterable[tuple[str, tuple[str, str]]] = ()) -> None:
        self.conn = conn
        self.blobs = blobs
        self.candidates = candidates
        self._rows: list[Any] | None = None
        # The query's nodes that read sources, and the uids each matches once decided.
        self._source_nodes = list(dict.fromkeys(n for n in nodes if _reads_source(*n)))
        self._decided: dict[tuple[str, tuple[str, str]], list[int]] | None = None

    def rows(self) -> list[Any]:
        if self._rows is None:
            cols = [items.c.uid, items.c.blob_key, items.c.date, *(items.c[c] for c in HEADER_COLUMNS.values())]
            self._rows = self.conn.execute(select(*cols).where(self.candidates).order_by(items.c.uid)).all()
        return self._rows

    def __call__(self, kind: str, node: tuple[str, str]) -> ColumnElement[bool]:
        if kind == "address":
            return uid_in(items.c.uid, self._address_matches(*node))
        if _reads_source(kind, node):
            return uid_in(items.c.uid, self._source_matches(kind, node))
        return uid_in(items.c.uid, [row.uid for row in self.rows() if self._matches(row, kind, node)])

    def _matches(self, row: Any, kind: str, node: tuple[str, str]) -> bool:
        first, second = node
        if kind == "sent":
            return sent_matches(row.date, first, datetime.date.fromisoformat(second))
        value = row._mapping[items.c[HEADER_COLUMNS[first.lower()]]]
        return value is not None and fold(second) in fold(value)

    def _source_matches(self, kind: str, node: tuple[str, str]) -> list[int]:
        if self._decided is None or (kind, node) not in self._decided:
            if (kind, node) not in self._source_nodes:
                self._source_nodes.append((kind, node))
            self._decide_source_nodes()
        assert self._decided is not None
        return self._decided[(kind, node)]

    def _decide_source_nodes(self) -> None:
        """Every source-reading node for every candidate, each source read at most once per
        kind of look (header block, BODY, TEXT)."""
        nodes = self._source_nodes
        headers = [n for n in nodes if n[0] == "header"]
        groups = [(body_only, [n for n in nodes if n[0] == "text" and (n[1][0] == "body") is body_only])
                  for body_only in (True, False)]
        decided: dict[tuple[str, tuple[str, str]], list[int]] = {n: [] for n in nodes}
        for row in self.rows():
            check_budget()
            if headers:
                block = self._read(row, read_header_block)
                for node in headers:
                    if header_block_matches(block, *node[1]):
                        decided[node].append(row.uid)
            for body_only, group in groups:
                if group:
                    found = self._read(row, lambda fp: texts_found(fp, {n[1][1] for n in group}, body_only))
                    for node in group:
                        if node[1][1] in found:
                            decided[node].append(row.uid)
        self._decided = decided

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
            check_budget()
            if row.text is not None:
                found = any(folded in fold(line) for line in row.text.split("\n")[1:])
            elif not needle:  # only that the field is there
                found = self._read(row, lambda fp: header_block_matches(read_header_block(fp), name, ""))
            else:
                found = holds(_addresses(row.envelope, name), needle)
            if found:
                out.append(row.uid)
        return out

    def _read(self, row: Any, test: Any) -> bool:
        with closing(self.blobs.open(row.blob_key)) as fp:
            return test(fp)


def _reads_source(kind: str, node: tuple[str, str]) -> bool:
    """Whether a scan node is decided by reading message sources (not from a column)."""
    return kind == "text" or (kind == "header" and node[0].lower() not in HEADER_COLUMNS)


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
