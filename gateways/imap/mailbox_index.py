"""What SELECT needs of a folder, kept per gateway process between sessions.

A `MailboxIndex` is the uid, modseq, flag bits and keywords of every message of a
folder as of one modseq, in arrays (about 20 bytes a message). `IndexCache.load`
hands a session its own copy: the first SELECT of a folder reads the whole listing
from the store; a later one, by any session of the process, asks only for what
changed since the modseq it holds (one `getChanges`, which costs in proportion to
the changes) or nothing at all when the folder's highest modseq has not moved.
Dovecot keeps its index files for the same reason: a client that re-selects a
100,000-message INBOX every few minutes should not have the store list it again.

The cache is bounded in bytes and drops the folder used least recently; a
snapshot the store can no longer bring up to date (its tombstones expired) is
replaced by a full listing.
"""
from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterable
from typing import Any

from twisted.internet import defer

from shared.lru import SizedLRU
from shared.flags import split_flags

NO_KEYWORDS: tuple[str, ...] = ()
_BYTES_PER_MESSAGE = 8 + 8 + 1 + 8  # uid, modseq, flag bits, a keywords slot


def split_flag_names(names: Iterable[str]) -> tuple[int, tuple[str, ...]]:
    """(system flag bits, keywords) of flag names; system flags we don't know are left out."""
    names = list(names)
    try:
        bits, keywords = split_flags(names)
    except ValueError:  # an unknown system flag from the store: keep what is known
        bits, keywords = split_flags(n for n in names if not n.startswith("\\") or n.lower() in (
            "\\seen", "\\answered", "\\flagged", "\\deleted", "\\draft"))
    return bits & 0xFF, tuple(keywords) if keywords else NO_KEYWORDS


class MailboxIndex:
    """uid, modseq, flag bits and keywords of a folder's messages, ascending by uid."""

    __slots__ = ("uids", "modseqs", "bits", "keywords", "modseq")

    def __init__(self, uids: array, modseqs: array, bits: array, keywords: list[tuple[str, ...]],
                 modseq: int) -> None:
        self.uids = uids
        self.modseqs = modseqs
        self.bits = bits
        self.keywords = keywords
        self.modseq = modseq

    @classmethod
    def from_columns(cls, uids: list[int], modseqs: list[int | None], bits: list[int | None],
                     keywords: list[str | None], modseq: int) -> "MailboxIndex":
        """From listing columns (uids ascending); equal keyword sets share one tuple."""
        interned: dict[str, tuple[str, ...]] = {}
        return cls(array("Q", uids), array("Q", (m or 0 for m in modseqs)),
                   array("B", ((b or 0) & 0xFF for b in bits)),
                   [NO_KEYWORDS if not k else interned.get(k) or interned.setdefault(k, tuple(k.split()))
                    for k in keywords], modseq)

    def copy(self) -> "MailboxIndex":
        return MailboxIndex(array("Q", self.uids), array("Q", self.modseqs), array("B", self.bits),
                            list(self.keywords), self.modseq)

    @property
    def nbytes(self) -> int:
        return 200 + len(self.uids) * _BYTES_PER_MESSAGE

    def apply(self, changed: Iterable[Any], deleted: Iterable[int], modseq: int) -> None:
        """Bring the index to `modseq`: items (uid, modseq, flags) changed or new, uids deleted.

        Applying a change twice does no harm, so a snapshot may be taken at a modseq
        lower than what it already holds."""
        uids = self.uids
        late: list[tuple[int, int, int, tuple[str, ...]]] = []
        for item in changed:
            uid, item_modseq = item.uid, item.modseq or 0
            bits, keywords = split_flag_names(item.flags)
            i = bisect.bisect_left(uids, uid)
            if i < len(uids) and uids[i] == uid:
                if item_modseq >= self.modseqs[i]:
                    self.modseqs[i], self.bits[i], self.keywords[i] = item_modseq, bits, keywords
            elif i == len(uids):
                uids.append(uid)
                self.modseqs.append(item_modseq)
                self.bits.append(bits)
                self.keywords.append(keywords)
            else:
                late.append((uid, item_modseq, bits, keywords))
        gone = set(deleted)
        if late or gone:
            self._rebuild(late, gone)
        self.modseq = max(self.modseq, modseq)

    def _rebuild(self, late: list[tuple[int, int, int, tuple[str, ...]]], gone: set[int]) -> None:
        rows = [row for row in zip(self.uids, self.modseqs, self.bits, self.keywords) if row[0] not in gone]
        rows.extend(row for row in late if row[0] not in gone)
        rows.sort(key=lambda row: row[0])
        self.uids = array("Q", (r[0] for r in rows))
        self.modseqs = array("Q", (r[1] for r in rows))
        self.bits = array("B", (r[2] for r in rows))
        self.keywords = [r[3] for r in rows]


async def full_listing(folder: Any) -> tuple[list, list, list, list]:
    """uid, modseq, flags and keywords columns of every message, ascending by uid.

    Two queries at once: the number columns of every row, and the keywords of
    only the rows that have any (most have none, and a text column costs the store
    one element per row)."""
    numbers, keyworded = await defer.gatherResults([
        folder.query(("uid", "modseq", "flags"), sort=[("uid", False)]),
        folder.query(("uid", "keywords"), {"cmp": ("keywords", "ne", "")}),
    ], consumeErrors=True).addErrback(lambda f: f.value.subFailure if isinstance(
        f.value, defer.FirstError) else f)
    table = numbers[1]
    uids = table.get("uid") or []
    n = len(uids)
    by_uid = dict(zip(keyworded[1].get("uid") or [], keyworded[1].get("keywords") or []))
    keywords = [by_uid.get(uid) for uid in uids] if by_uid else [None] * n
    return uids, table.get("modseq") or [0] * n, table.get("flags") or [0] * n, keywords


class IndexCache:
    """MailboxIndex per (folder id, UIDVALIDITY, view), bounded in bytes, least recently used
    dropped. The view is the reader's login on another user's (or the public) store, where
    \\Seen is the reader's own, and None on one's own store."""

    def __init__(self, max_bytes: int) -> None:
        self._entries = SizedLRU(max_bytes)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._entries.bytes

    @property
    def max_bytes(self) -> int:
        return self._entries.max_bytes

    async def load(self, folder: Any) -> MailboxIndex:
        """A private copy of the folder's index, at least as new as `folder.highest_modseq`."""
        own = folder.store.id == folder.session.store_id
        key = (folder.id, folder.uid_validity, None if own else folder.session.user.name)
        cached = self._entries.get(key)
        for _ in range(3):
            if cached is None or cached.modseq >= folder.highest_modseq:
                break
            since = cached.modseq
            changes = await folder.changes(since)
            cached = self._entries.get(key)
            if changes.expired or cached is None:
                cached = None
            elif cached.modseq == since:
                cached.apply(changes.changed, changes.deleted, changes.highest_modseq)
                break
            # Another session moved it on meanwhile: changes read earlier than theirs could
            # bring back a message they saw deleted, so look again from where it is now.
        else:
            cached = None
        if cached is None:
            cached = MailboxIndex.from_columns(*await full_listing(folder), folder.highest_modseq)
        self._entries.put(key, cached, cached.nbytes)
        return cached.copy()
