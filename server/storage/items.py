"""Items: mail messages and calendar/task objects, one per-folder UID space."""
from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.sql.elements import ColumnElement

from server.mime.sort_keys import SORT_COLUMNS
from shared.flags import SEEN
from shared.errors import LIMIT, BadRequest, NotFound
from shared.uidset import contains, has_star, parse_uidset, resolve

from .base import chunks
from .private_seen import PrivateSeenMixin
from .quota import USER
from .restriction import COLUMNS, INT_COLUMNS, column, compile_restriction, scan_nodes, superset
from .scan import ScanEvaluator
from .schema import folders, items, tombstones
from .uidset import sql_condition, uid_in

# Columns a caller may set from the parsed message.
MAIL_COLUMNS = ("subject", "from", "to", "cc", "messageId", "inReplyTo", "date", "envelope", "bodystructure",
                "fromAddresses", "toAddresses", "ccAddresses", "bccAddresses", "preview") + SORT_COLUMNS
CALENDAR_COLUMNS = ("icalUid", "itemClass", "summary", "dtstart", "dtend", "recurring", "etag",
                    "occurrencesUntil")
# A contact (vCard) is saved like a calendar object, with these columns besides.
CONTACT_COLUMNS = ("fn", "email", "tel")
ITEM_COLUMNS = COLUMNS | {"blob_key"}
# What a copy carries over: everything but the key and modseq.
_COPY_COLUMNS = [c.name for c in items.columns if c.name not in ("folder_id", "uid", "modseq")]
_EMPTY_ROW: dict[str, Any] = {c.name: None for c in items.columns}
_INSERT = insert(items)
# The statements of IMAP STORE and EXPUNGE, built once: every client runs them, and
# building and keying a statement costs more than SQLite takes to run it. A uid set of
# one range ("lo".."hi", the common case) reads its rows with the first two.
_IN_FOLDER = items.c.folder_id == bindparam("fid")
_IN_SPAN = items.c.uid.between(bindparam("lo"), bindparam("hi"))
_IN_UIDS = items.c.uid.in_(bindparam("uids", expanding=True))
_FLAG_ROWS_IN_SPAN = (select(items.c.uid, items.c.modseq, items.c.flags, items.c.keywords)
                      .where(_IN_FOLDER, _IN_SPAN).order_by(items.c.uid))
_BLOB_ROWS_IN_SPAN = select(items.c.uid, items.c.blob_key).where(_IN_FOLDER, _IN_SPAN).order_by(items.c.uid)
_SET_FLAGS = update(items).where(_IN_FOLDER, _IN_UIDS).values(
    flags=bindparam("new_flags"), keywords=bindparam("new_keywords"), modseq=bindparam("new_modseq"))
_REMOVED_ROWS = select(items.c.uid, items.c.name, items.c.size).where(_IN_FOLDER, _IN_UIDS)
_DELETE_ROWS = delete(items).where(_IN_FOLDER, _IN_UIDS)
_INSERT_TOMBSTONES = insert(tombstones)
_MODES = ("add", "remove", "replace")


class KeywordLimits(NamedTuple):
    """How many keywords a message may carry and how long one may be (`max_keywords_per_message`,
    `max_keyword_length`): a client must not grow every listing of a folder without bound."""
    per_message: int = 100
    length: int = 100

    def check_count(self, keywords: Iterable[str] | set[str]) -> None:
        if len(keywords) > self.per_message:  # type: ignore[arg-type]
            raise BadRequest(f"more than {self.per_message} keywords on a message", LIMIT)


def new_email_id() -> str:
    """A fresh EMAILID (RFC 8474 objectid: letters, digits, "-" and "_"), unguessable so
    that it says nothing about other messages."""
    return "M" + secrets.token_hex(12)


def normalize_keywords(keywords: Iterable[str] | str | None, limits: KeywordLimits = KeywordLimits()) -> list[str]:
    """Sorted unique keywords; BadRequest for empty or whitespace-holding names, and for more
    or longer ones than `limits` allow (reason LIMIT)."""
    if keywords is None:
        return []
    if isinstance(keywords, str):
        keywords = keywords.split()
    out = set()
    for kw in keywords:
        if not isinstance(kw, str) or not kw or any(ch.isspace() for ch in kw) or kw.startswith("\\"):
            raise BadRequest(f"bad keyword {kw[:100]!r}")
        if len(kw) > limits.length:
            raise BadRequest(f"keyword longer than {limits.length} characters", LIMIT)
        out.add(kw)
    limits.check_count(out)
    return sorted(out)


class NewMessage(NamedTuple):
    """A message to store: its blob, size and the columns parsed from it."""
    blob_key: str
    size: int
    internal_date: int | None = None
    flags: int = 0
    keywords: tuple[str, ...] = ()
    columns: dict | None = None


def _split_keywords(text: str | None) -> list[str]:
    return text.split() if text else []


class _Uid(NamedTuple):
    """A row as `_change_seen` reads it."""
    uid: int


class ItemsMixin(PrivateSeenMixin):
    """Create, list, flag, copy, move and delete items."""

    keyword_limits = KeywordLimits()
    # Restriction nodes one query may answer by reading messages (scan.py); more is refused.
    max_search_scan_keys = 64

    # -- uid sets -------------------------------------------------------
    @staticmethod
    def _span(uidset: str) -> dict[str, int] | None:
        """{"lo", "hi"} of a uid set that is one range without "*", else None."""
        ranges = parse_uidset(uidset)
        if has_star(ranges):
            return None
        merged = resolve(ranges, 0)
        return {"lo": merged[0][0], "hi": merged[0][1]} if len(merged) == 1 else None

    def _uid_condition(self, conn: Connection, folder_id: int, uidset: str) -> ColumnElement[bool]:
        ranges = parse_uidset(uidset)
        max_uid = 0
        if has_star(ranges):
            max_uid = conn.execute(select(func.max(items.c.uid))
                                   .where(items.c.folder_id == folder_id)).scalar() or 0
        merged = resolve(ranges, max_uid)
        cond = sql_condition(items.c.uid, merged)
        if cond is None:
            # Too many ranges for one expression: intersect with the folder's uids here.
            existing = conn.execute(select(items.c.uid).where(items.c.folder_id == folder_id)).scalars()
            cond = uid_in(items.c.uid, [u for u in existing if contains(merged, u)])
        return cond

    def _where(self, conn: Connection, folder_id: int, restriction: dict | None) -> ColumnElement[bool]:
        base = items.c.folder_id == folder_id
        if not restriction:
            return base
        def uids(uidset: str) -> ColumnElement[bool]:
            return self._uid_condition(conn, folder_id, uidset)
        scan = None
        nodes = scan_nodes(restriction)
        if nodes:
            if len(nodes) > self.max_search_scan_keys:
                raise BadRequest(f"a search may have {self.max_search_scan_keys} keys that read "
                                 f"messages (header, body, text, sent date), not {len(nodes)}", LIMIT)
            # Header, body and Date searches look only at rows the rest lets through.
            scan = ScanEvaluator(conn, self.blobs, and_(base, superset(restriction, uids)), nodes)
        return and_(base, compile_restriction(restriction, uids, scan=scan))

    # -- creating -------------------------------------------------------
    def create_message(self, folder_id: int, blob_key: str, size: int, internal_date: int | None,
                       flags: int = 0, keywords: Iterable[str] = (), columns: dict | None = None) -> dict:
        """Add a mail message; returns {uid, modseq, uidvalidity}. Unknown keys in `columns` are ignored."""
        result = self.create_messages(folder_id, [NewMessage(blob_key, size, internal_date, flags,
                                                             tuple(keywords), columns)])
        return {"uid": result["uids"][0], "modseq": result["modseq"], "uidvalidity": result["uidvalidity"]}

    def create_messages(self, folder_id: int, messages: Sequence["NewMessage"], level: str | None = USER,
                        reader: int | None = None) -> dict:
        """Add several messages in one transaction under one new modseq.

        Returns {uids (in the order given), modseq, uidvalidity}. The uids are
        consecutive: the folder counter is taken once for all of them. Counted in the
        store's usage and checked against its quota `level` (server/storage/quota.py).
        With `reader`, a message stored with \\Seen is seen by that reader alone
        (private_seen.py).
        """
        if not messages:
            raise BadRequest("no messages to create")
        rows = [self._message_row(folder_id, m) for m in messages]
        seen = [row["flags"] & SEEN for row in rows] if reader is not None else []
        for row, bit in zip(rows, seen):
            row["flags"] &= ~bit

        def run(conn: Connection) -> dict:
            first, modseq, uidvalidity = self._bump(conn, folder_id, len(rows))
            for offset, row in enumerate(rows):
                row["uid"] = first + offset
                row["modseq"] = modseq
            for part in chunks(rows):
                conn.execute(_INSERT, part)
            self._charge(conn, folder_id, sum(row["size"] for row in rows), len(rows), level)
            mine = [_Uid(row["uid"]) for row, bit in zip(rows, seen) if bit]
            if mine:
                self._change_seen(conn, reader, folder_id, mine, "add", True)  # type: ignore[arg-type]
            return {"uids": [row["uid"] for row in rows], "modseq": modseq, "uidvalidity": uidvalidity}

        return self._write(run)

    def _message_row(self, folder_id: int, m: "NewMessage") -> dict[str, Any]:
        row = dict(_EMPTY_ROW)
        if m.columns:
            for name in MAIL_COLUMNS:
                if name in m.columns:
                    row[name] = m.columns[name]
        row.update(folder_id=folder_id, size=int(m.size), flags=int(m.flags) & 0x1F,
                   keywords=" ".join(normalize_keywords(m.keywords, self.keyword_limits)),
                   internalDate=int(m.internal_date if m.internal_date is not None else time.time()),
                   recurring=0, itemClass="IPM.Note", blob_key=m.blob_key,
                   savedDate=int(time.time()), emailId=new_email_id())
        if row["sentDate"] is None:
            row["sentDate"] = row["internalDate"]  # RFC 5256 §2.2
        return row

    # -- reading --------------------------------------------------------
    def query_items(self, folder_id: int, columns: list[str], restriction: dict | None = None,
                    sort: Iterable[tuple[str, bool]] = (), offset: int = 0, limit: int | None = None,
                    reader: int | None = None) -> tuple[int, dict[str, list]]:
        """A window of rows as {column: [values]} plus the total number of matching rows;
        "flags" with the \\Seen of `reader` (see private_seen.py) when given."""
        names = list(columns)
        overlay = reader is not None and "flags" in names
        if overlay and "uid" not in names:
            names.append("uid")
        cols = [column(n, frozenset({"blob_key"})) for n in names]
        order = []
        for item in sort or ():
            name, descending = item
            c = column(name)
            order.append(c.desc() if descending else c.asc())
            if name == "uid":
                break  # uids are unique: nothing after them orders anything
        else:
            # Stable windows. Said once only: SQLite passes over the covering listing
            # index for "ORDER BY uid, uid".
            order.append(items.c.uid.asc())
        offset = max(0, int(offset or 0))
        if limit is not None and int(limit) < 0:
            raise BadRequest("negative limit")

        def run(conn: Connection) -> tuple[int, dict[str, list]]:
            self._check_folder(conn, folder_id)
            where = self._where(conn, folder_id, restriction)
            q = select(*cols).where(where).order_by(*order)
            if offset:
                q = q.offset(offset)
            if limit is not None:
                q = q.limit(int(limit))
            # The driver's own tuples: item columns are plain ints and strings, and
            # skipping SQLAlchemy's row objects saves a third of a 100,000-row listing.
            rows = conn.execute(q).cursor.fetchall() if cols else []
            if (not offset and (limit is None or len(rows) < int(limit))) and cols:
                total = len(rows)
            else:
                total = conn.execute(select(func.count()).select_from(items).where(where)).scalar_one()
            data = {n: [] for n in names}
            if rows:
                for n, values in zip(names, zip(*rows)):
                    data[n] = list(values)
            if overlay:
                self._overlay_seen(conn, reader, folder_id, data["uid"], data["flags"])
            return int(total), {n: data[n] for n in columns}

        return self._read(run)

    def items_by_name(self, folder_id: int, names: Iterable[str], columns: list[str]) -> dict[str, list]:
        """{column: values} of the items with these resource names, in uid order; names not
        there are absent. Found through the (folder, name) index (the sort is done here: an
        ORDER BY uid would have SQLite walk the whole folder in uid order instead)."""
        wanted = list(dict.fromkeys(names))
        cols = [column(n, frozenset({"blob_key"})) for n in columns]

        def run(conn: Connection) -> dict[str, list]:
            self._check_folder(conn, folder_id)
            rows: list[Any] = []
            for part in chunks(wanted):
                rows += conn.execute(select(items.c.uid, *cols)
                                     .where(items.c.folder_id == folder_id, items.c.name.in_(part))).all()
            rows.sort(key=lambda row: row[0])
            return {n: [row[i] for row in rows] for i, n in enumerate(columns, 1)}

        return self._read(run)

    def _check_folder(self, conn: Connection, folder_id: int) -> None:
        if conn.execute(select(folders.c.id).where(folders.c.id == folder_id)).first() is None:
            raise NotFound(f"folder {folder_id} not found")

    def get_item(self, folder_id: int, uid: int, columns: Iterable[str] | None = None,
                 reader: int | None = None) -> dict:
        """One item's columns plus "blob_key"; NotFound if absent. "flags" as `reader` sees them."""
        names = [n for n in (columns or sorted(COLUMNS)) if n != "blob_key"]
        cols = [column(n) for n in names] + [items.c.blob_key]

        def run(conn: Connection) -> dict:
            row = conn.execute(select(*cols).where(items.c.folder_id == folder_id, items.c.uid == int(uid))).first()
            if row is None:
                raise NotFound(f"item {uid} not found in folder {folder_id}")
            item = dict(zip(names + ["blob_key"], row))
            if "flags" in item:
                flags = [item["flags"]]
                self._overlay_seen(conn, reader, folder_id, [int(uid)], flags)
                item["flags"] = flags[0]
            return item

        return self._read(run)

    def item_blobs(self, folder_id: int, uids: str, limit: int) -> list[tuple[int, str, int]]:
        """(uid, blob_key, size) of up to `limit` items of a uid set, in uid order; uids
        that are gone are simply absent, so a reader can tell which ones it got."""
        def run(conn: Connection) -> list[tuple[int, str, int]]:
            self._check_folder(conn, folder_id)
            cond = self._uid_condition(conn, folder_id, uids)
            rows = conn.execute(select(items.c.uid, items.c.blob_key, items.c.size)
                                .where(items.c.folder_id == folder_id, cond)
                                .order_by(items.c.uid).limit(limit)).all()
            return [(int(uid), key, int(size)) for uid, key, size in rows]
        return self._read(run)

    def find_item_by_name(self, folder_id: int, name: str) -> int | None:
        return self._read(lambda c: c.execute(select(items.c.uid).where(
            items.c.folder_id == folder_id, items.c.name == name)).scalar())

    def find_item_by_ical_uid(self, folder_id: int, ical_uid: str) -> int | None:
        return self._read(lambda c: c.execute(select(items.c.uid).where(
            items.c.folder_id == folder_id, items.c.icalUid == ical_uid).order_by(items.c.uid)).scalar())

    # -- flags ----------------------------------------------------------
    def set_flags(self, folder_id: int, uids: str, mode: str, flags: int, keywords: Iterable[str] = (),
                  unchanged_since: int | None = None, reader: int | None = None) -> dict:
        """Add/remove/replace flags and keywords on a uid set, with one modseq for the whole call.

        Only rows whose value changes get the new modseq; with `unchanged_since`,
        rows modified later are reported in "failed" and left alone (RFC 7162).
        With `reader`, \\Seen is that reader's own (private_seen.py): it goes to
        their set, the rows keep the owner's, and "changed" tells the flags as the
        reader sees them.
        """
        if mode not in _MODES:
            raise BadRequest(f"unknown mode {mode!r}")
        bits = int(flags) & 0x1F
        kws = set(normalize_keywords(keywords, self.keyword_limits))
        seen_given = reader is not None and bool(bits & SEEN)
        if reader is not None:
            bits &= ~SEEN

        def run(conn: Connection) -> dict:
            folder = self._lock_folders(conn, [folder_id])[folder_id]
            span = self._span(uids)
            if span is not None:
                rows = conn.execute(_FLAG_ROWS_IN_SPAN, {"fid": folder_id, **span}).all()
            else:
                cond = self._uid_condition(conn, folder_id, uids)
                rows = conn.execute(select(items.c.uid, items.c.modseq, items.c.flags, items.c.keywords)
                                    .where(items.c.folder_id == folder_id, cond).order_by(items.c.uid)).all()
            failed: list[int] = []
            updates: dict[tuple[int, str], list[int]] = {}
            kept: list[Any] = []
            for r in rows:
                if unchanged_since is not None and r.modseq > unchanged_since:
                    failed.append(r.uid)
                    continue
                kept.append(r)
                old_kws = set(_split_keywords(r.keywords))
                if mode == "add":
                    nf, nk = r.flags | bits, old_kws | kws
                elif mode == "remove":
                    nf, nk = r.flags & ~bits, old_kws - kws
                else:
                    # A reader's replace leaves the owner's \Seen as it is.
                    nf, nk = bits | (r.flags & SEEN if reader is not None else 0), set(kws)
                if nk != old_kws:
                    self.keyword_limits.check_count(nk)
                if nf != r.flags or nk != old_kws:
                    updates.setdefault((nf, " ".join(sorted(nk))), []).append(r.uid)
            seen_only: list[int] = []
            if reader is not None:
                added, removed = self._change_seen(conn, reader, folder_id, kept, mode, seen_given)
                updated = {u for group in updates.values() for u in group}
                seen_only = sorted({*added, *removed} - updated)
            if not updates and not seen_only:
                return {"modseq": folder.highestmodseq, "changed": [], "failed": failed}
            _, modseq, _ = self._bump(conn, folder_id)
            changed = []
            # Rows sharing the new value are updated together: few statements for big sets.
            for (nf, nk), group in updates.items():
                for part in chunks(group, 1000):
                    conn.execute(_SET_FLAGS, {"fid": folder_id, "uids": part, "new_flags": nf,
                                              "new_keywords": nk, "new_modseq": modseq})
                changed.extend((u, modseq, nf, _split_keywords(nk)) for u in group)
            if reader is not None:
                self._touch_rows(conn, folder_id, seen_only, modseq)
                by_uid = {r.uid: r for r in kept}
                changed.extend((u, modseq, by_uid[u].flags, _split_keywords(by_uid[u].keywords)) for u in seen_only)
                changed.sort()
                bits_seen = [c[2] for c in changed]
                self._overlay_seen(conn, reader, folder_id, [c[0] for c in changed], bits_seen)
                changed = [(c[0], c[1], nf, c[3]) for c, nf in zip(changed, bits_seen)]
            changed.sort()
            return {"modseq": modseq, "changed": changed, "failed": failed}

        return self._write(run)

    # -- copy / move / delete ------------------------------------------
    def _source_rows(self, conn: Connection, folder_id: int, uids: str) -> list[Any]:
        cond = self._uid_condition(conn, folder_id, uids)
        return conn.execute(select(items.c.uid, *[items.c[c] for c in _COPY_COLUMNS])
                            .where(items.c.folder_id == folder_id, cond).order_by(items.c.uid)).all()

    def _insert_copies(self, conn: Connection, rows: list[Any], target_id: int, charge: bool = True
                       ) -> tuple[list, int]:
        """Insert copies of `rows` into the target folder, counted in its store's usage and
        checked against its quota unless not `charge` (a move within one store)."""
        first, modseq, _ = self._bump(conn, target_id, len(rows))
        now = int(time.time())
        pairs, batch = [], []
        for i, r in enumerate(rows):
            m = r._mapping
            new = {c: m[c] for c in _COPY_COLUMNS}
            # The copy's occurrences are not indexed; queries expand it instead.
            new.update(folder_id=target_id, uid=first + i, modseq=modseq, occurrencesUntil=None, savedDate=now)
            batch.append(new)
            pairs.append((r.uid, first + i))
        for part in chunks(batch):
            conn.execute(_INSERT, part)
        if charge:
            self._charge(conn, target_id, sum(int(r.size) for r in rows), len(rows))
        return pairs, modseq

    def copy_items(self, folder_id: int, uids: str, target_folder_id: int) -> dict:
        """Copy items; blobs are shared by key. -> {pairs: [(src, dst)], modseq: target highestmodseq}"""
        def run(conn: Connection) -> dict:
            # Lock the source too, so a concurrent delete cannot free a blob being copied.
            locked = self._lock_folders(conn, [folder_id, target_folder_id])
            rows = self._source_rows(conn, folder_id, uids)
            if not rows:
                return {"pairs": [], "modseq": locked[target_folder_id].highestmodseq}
            pairs, modseq = self._insert_copies(conn, rows, target_folder_id)
            return {"pairs": pairs, "modseq": modseq}

        return self._write(run)

    def move_items(self, folder_id: int, uids: str, target_folder_id: int) -> dict:
        """Move items (new uids in the target, tombstones in the source)."""
        if folder_id == target_folder_id:
            raise BadRequest("source and target are the same folder")

        def run(conn: Connection) -> dict:
            locked = self._lock_folders(conn, [folder_id, target_folder_id])
            rows = self._source_rows(conn, folder_id, uids)
            if not rows:
                return {"pairs": [], "modseq": locked[target_folder_id].highestmodseq,
                        "source_modseq": locked[folder_id].highestmodseq}
            # Within one store a move changes no usage: it goes through even over quota.
            charge = self._store_of(conn, folder_id) != self._store_of(conn, target_folder_id)
            source_modseq = self._remove_rows(conn, folder_id, [r.uid for r in rows], charge)
            pairs, modseq = self._insert_copies(conn, rows, target_folder_id, charge)
            return {"pairs": pairs, "modseq": modseq, "source_modseq": source_modseq}

        return self._write(run)

    def _remove_rows(self, conn: Connection, folder_id: int, uid_list: list[int], charge: bool = True) -> int:
        """Delete rows and leave tombstones, under one new modseq; returns it. What they
        took leaves the store's usage, unless not `charge` (the caller counts it)."""
        _, modseq, _ = self._bump(conn, folder_id)
        self._forget_seen(conn, folder_id, uid_list)
        now = int(time.time())
        freed = removed = 0
        for part in chunks(uid_list):
            rows = conn.execute(_REMOVED_ROWS, {"fid": folder_id, "uids": part}).all()
            names = {r.uid: r.name for r in rows}
            freed += sum(int(r.size) for r in rows)
            removed += len(rows)
            conn.execute(_DELETE_ROWS, {"fid": folder_id, "uids": part})
            conn.execute(_INSERT_TOMBSTONES, [{"folder_id": folder_id, "uid": u, "modseq": modseq,
                                               "deleted_at": now, "name": names.get(u)} for u in part])
        if charge:
            self._charge(conn, folder_id, -freed, -removed)
        return modseq

    def delete_items(self, folder_id: int, uids: str) -> dict:
        """Delete items -> {deleted: [uid], modseq}; blobs go once no row references them."""
        def run(conn: Connection) -> tuple[dict, list[str]]:
            folder = self._lock_folders(conn, [folder_id])[folder_id]
            span = self._span(uids)
            if span is not None:
                rows = conn.execute(_BLOB_ROWS_IN_SPAN, {"fid": folder_id, **span}).all()
            else:
                cond = self._uid_condition(conn, folder_id, uids)
                rows = conn.execute(select(items.c.uid, items.c.blob_key)
                                    .where(items.c.folder_id == folder_id, cond).order_by(items.c.uid)).all()
            if not rows:
                return {"deleted": [], "modseq": folder.highestmodseq}, []
            deleted = [r.uid for r in rows]
            modseq = self._remove_rows(conn, folder_id, deleted)
            # Which blobs no row names any more, asked in the same transaction (the folder
            # is locked: no copy can read these rows meanwhile, and they are gone after it).
            return {"deleted": deleted, "modseq": modseq}, self._unreferenced(conn, [r.blob_key for r in rows])

        result, unreferenced = self._write(run)
        self._delete_blobs(unreferenced)
        return result


__all__ = ["ItemsMixin", "MAIL_COLUMNS", "CALENDAR_COLUMNS", "ITEM_COLUMNS", "INT_COLUMNS",
           "normalize_keywords", "KeywordLimits"]
