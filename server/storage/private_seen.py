"""Per-user \\Seen on folders a user reads but does not own (Dovecot's private index).

A team inbox or a public folder is read by many people; one of them reading a
message must not mark it read for the owner or the others. So for a reader who
is not the owner of the folder's store (everyone, in the public store) the
\\Seen flag is theirs alone: kept here as one uid set per (user, folder), the
items' own \\Seen bit is what the owner sees. Every other flag and keyword is the
folder's, shared by all.

The set is one row per reader and folder, read in one query however many
messages the folder holds (a listing of 100,000 messages costs one more short
row, not one query per message); expunged uids leave the sets in the same
transaction, so a folder's unseen count for a reader is its message count less
the size of the reader's set, without reading the messages.

`seen_reader(user, folder)` says whose view a call reads: None for the owner
(the items' bit), else the user.
"""
from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from shared.flags import SEEN
from shared.uidset import contains, format_ranges, merge, parse_uidset

from .base import StorageBase, chunks
from .schema import folders, items, private_seen, stores

_SEEN_SET = select(private_seen.c.uids).where(private_seen.c.user_id == bindparam("uid_"),
                                              private_seen.c.folder_id == bindparam("fid"))
_STORE_OWNER = (select(stores.c.owner_id)
                .select_from(folders.join(stores, stores.c.id == folders.c.store_id))
                .where(folders.c.id == bindparam("fid")))
_TOUCH_ROWS = (update(items).where(items.c.folder_id == bindparam("fid"), items.c.uid.in_(bindparam("uids", expanding=True)))
               .values(modseq=bindparam("new_modseq")))

Ranges = list[tuple[int, int]]


def parse_ranges(text: str | None) -> Ranges:
    """The stored set (always sorted and merged) as ranges; none for no row."""
    return parse_uidset(text) if text else []  # type: ignore[return-value]


def subtract(ranges: Ranges, gone: Iterable[int]) -> Ranges:
    """`ranges` without the numbers of `gone`."""
    drop = sorted(set(gone))
    if not drop:
        return ranges
    out: Ranges = []
    for a, b in ranges:
        cur = a
        for n in drop[bisect.bisect_left(drop, a):bisect.bisect_right(drop, b)]:
            if n > cur:
                out.append((cur, n - 1))
            cur = n + 1
        if cur <= b:
            out.append((cur, b))
    return out


def size(ranges: Ranges) -> int:
    return sum(b - a + 1 for a, b in ranges)


class PrivateSeenMixin(StorageBase):
    """The reader's own \\Seen on folders of other stores."""

    def seen_reader(self, user_id: int, folder_id: int) -> int | None:
        """`user_id` when that user reads the folder with a \\Seen of their own (not
        the owner of its store); None for the owner. Answered from memory once the
        folder's owner is known (every call a gateway makes asks)."""
        known = self._folder_owners.get(folder_id)
        if known is not None:
            return None if known[1] == user_id else user_id
        owner = self._read(lambda c: c.execute(_STORE_OWNER, {"fid": folder_id}).scalar())
        return None if owner is not None and owner == user_id else user_id

    def _seen_ranges(self, conn: Connection, reader: int, folder_id: int) -> Ranges:
        return parse_ranges(conn.execute(_SEEN_SET, {"uid_": reader, "fid": folder_id}).scalar())

    def _write_seen(self, conn: Connection, reader: int, folder_id: int, ranges: Ranges, existed: bool) -> None:
        text = format_ranges(ranges)
        where = (private_seen.c.user_id == reader, private_seen.c.folder_id == folder_id)
        if not ranges:
            if existed:
                conn.execute(delete(private_seen).where(*where))
        elif existed:
            conn.execute(update(private_seen).where(*where).values(uids=text))
        else:
            conn.execute(insert(private_seen).values(user_id=reader, folder_id=folder_id, uids=text))

    def _overlay_seen(self, conn: Connection, reader: int | None, folder_id: int,
                      uids: Sequence[int], flags: list[int]) -> None:
        """Put the reader's \\Seen into `flags` (rows of `uids`), in place."""
        if reader is None or not uids:
            return
        seen = self._seen_ranges(conn, reader, folder_id)
        for k, uid in enumerate(uids):
            bits = flags[k]
            if bits is not None:
                flags[k] = (bits | SEEN) if contains(seen, uid) else (bits & ~SEEN)

    def _change_seen(self, conn: Connection, reader: int, folder_id: int, rows: Sequence[Any],
                     mode: str, seen: bool) -> tuple[list[int], list[int]]:
        """Apply a flag change's \\Seen part to the reader's set for `rows` (with .uid);
        -> (uids now seen that were not, uids no longer seen)."""
        text = conn.execute(_SEEN_SET, {"uid_": reader, "fid": folder_id}).scalar()
        ranges = parse_ranges(text)
        now = [contains(ranges, r.uid) for r in rows]
        adding = seen and mode != "remove"
        removing = (seen and mode == "remove") or (not seen and mode == "replace")
        added = [r.uid for r, was in zip(rows, now) if adding and not was]
        removed = [r.uid for r, was in zip(rows, now) if removing and was]
        if added or removed:
            ranges = merge([*subtract(ranges, removed), *((u, u) for u in added)])
            self._write_seen(conn, reader, folder_id, ranges, text is not None)
        return added, removed

    def _touch_rows(self, conn: Connection, folder_id: int, uids: list[int], modseq: int) -> None:
        """Give rows whose only change was a reader's \\Seen the call's modseq, so that the
        reader's other sessions hear of it (the others see a modseq move and nothing else)."""
        for part in chunks(uids, 1000):
            conn.execute(_TOUCH_ROWS, {"fid": folder_id, "uids": part, "new_modseq": modseq})

    def _forget_seen(self, conn: Connection, folder_id: int, uids: list[int]) -> None:
        """Expunged uids leave every reader's set (uids are never used again, but the
        unseen count is the message count less the set's size)."""
        rows = conn.execute(select(private_seen.c.user_id, private_seen.c.uids)
                            .where(private_seen.c.folder_id == folder_id)).all()
        for row in rows:
            ranges = parse_ranges(row.uids)
            kept = subtract(ranges, uids)
            if kept != ranges:
                self._write_seen(conn, row.user_id, folder_id, kept, True)

    def _drop_seen(self, conn: Connection, folder_ids: list[int]) -> None:
        """Every reader's set of folders emptied or deleted."""
        conn.execute(delete(private_seen).where(private_seen.c.folder_id.in_(folder_ids)))

    def count_private_unseen(self, reader: int, folder_rows: list[dict]) -> None:
        """Set each listed folder's "unseen" to the reader's: its count less the reader's
        set (folders of other stores, listed with counts). One query for them all."""
        ids = sorted({f["id"] for f in folder_rows})

        def run(conn: Connection) -> dict[int, int]:
            seen: dict[int, int] = {}
            for part in chunks(ids):
                for fid, text in conn.execute(select(private_seen.c.folder_id, private_seen.c.uids)
                                              .where(private_seen.c.user_id == reader,
                                                     private_seen.c.folder_id.in_(part))).all():
                    seen[fid] = size(parse_ranges(text))
            return seen

        seen = self._read(run) if ids else {}
        for f in folder_rows:
            f["unseen"] = max(0, f["count"] - seen.get(f["id"], 0))


__all__ = ["PrivateSeenMixin"]
