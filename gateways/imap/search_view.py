"""SEARCH answered from the selected mailbox's own view, without asking the store.

`SelectedMailbox` already holds every message's flags, keywords and modseq, so a
search made only of flag, keyword, sequence-set, UID, MODSEQ and ALL keys (and
their NOT, OR and parenthesised combinations) needs nothing else: `UID SEARCH
UNSEEN` on 100,000 messages is a few byte translations here instead of a table
query over every row. Any other key (dates, sizes, headers, text) goes to the
store as one restriction (`search.Restriction`).

A set of messages is an int with bit i set for the message at index i, so AND, OR
and NOT are one operation each. Matching follows the store's: system flags by bit,
keywords as whole words, ASCII case-insensitively; \\Recent from the session's own
claims (recent.py).
"""
from __future__ import annotations

import re
from typing import Any

from gateways.imap.grammar import commands as c
from shared.flags import FLAG_BITS

_BIT_BY_LOWER = {name.lower(): bit for name, bit in FLAG_BITS.items()}
# Flag byte -> b"1" where a bit is set, b"0" elsewhere: one table per system flag.
_HAS_BIT = {bit: bytes(0x31 if b & bit else 0x30 for b in range(256)) for bit in FLAG_BITS.values()}
_ONE = re.compile("1")


def answerable(key: Any) -> bool:
    """Whether the view alone can answer the search key tree `key`."""
    return all(_answerable_leaf(k) for k in c.leaf_keys(key))


def _answerable_leaf(key: Any) -> bool:
    if isinstance(key, c.SearchFlag):
        flag = key.flag
        if flag.startswith("\\"):
            return flag == "\\Recent" or flag.lower() in _BIT_BY_LOWER
        # What the store would refuse (an empty or spaced keyword) it should refuse itself.
        return bool(flag) and not any(ch.isspace() for ch in flag)
    return isinstance(key, (c.SearchAll, c.SearchSequence, c.SearchModseq))


def matching_indexes(box: Any, key: Any) -> list[int]:
    """Indexes of the messages of `box` matching `key` (`answerable`), ascending;
    messages already gone from the store (EXPUNGE not yet sent) never match."""
    n = box.exists
    if not n:
        return []
    mask = _Matcher(box).of(key)
    for i in box.expunge_pending_indexes():
        mask &= ~(1 << i)
    if not mask:
        return []
    digits = bin(mask)[:1:-1]  # bit i is character i
    return [m.start() for m in _ONE.finditer(digits)]


class _Matcher:
    def __init__(self, box: Any) -> None:
        self.box = box
        self.n = box.exists
        self.full = (1 << self.n) - 1

    def _mask(self, ones: bytes) -> int:
        """b"0"/b"1" per index -> the set as an int."""
        return int(ones[::-1], 2)

    def of(self, key: Any) -> int:
        if isinstance(key, c.SearchAnd):
            mask = self.full
            for k in key.keys:
                mask &= self.of(k)
                if not mask:
                    break
            return mask
        if isinstance(key, c.SearchOr):
            return self.of(key.left) | self.of(key.right)
        if isinstance(key, c.SearchNot):
            return self.full ^ self.of(key.key)
        if isinstance(key, c.SearchAll):
            return self.full
        if isinstance(key, c.SearchFlag):
            mask = self._flag(key.flag)
            return mask if key.present else self.full ^ mask
        if isinstance(key, c.SearchSequence):
            mask = 0
            for first, last in self.box.index_ranges(key.sequence, uid=key.uid):
                mask |= ((1 << (last - first + 1)) - 1) << first
            return mask
        if isinstance(key, c.SearchModseq):
            least = key.modseq
            return self._mask(bytes(0x31 if m >= least else 0x30 for m in self.box.all_modseqs()))
        raise TypeError(f"search key {key!r} needs the store")

    def _flag(self, flag: str) -> int:
        if flag == "\\Recent":
            mask = 0
            for first, last in self.box.recent.index_ranges(self.box.uids):
                mask |= ((1 << (last - first + 1)) - 1) << first
            return mask
        bit = _BIT_BY_LOWER.get(flag.lower()) if flag.startswith("\\") else None
        if bit is not None:
            return self._mask(self.box.flag_bytes().translate(_HAS_BIT[bit]))
        wanted = flag.lower()
        keywords = self.box.all_keywords()
        hits = {kw: any(k.lower() == wanted for k in kw) for kw in set(keywords)}
        if not any(hits.values()):
            return 0
        return self._mask(bytes(0x31 if hits[kw] else 0x30 for kw in keywords))
