"""\\Recent (RFC 3501 §2.3.2): a message is recent in the first session that hears of it.

The store keeps no such state, and the flag is only advisory (IMAP4rev2 dropped
it), so each gateway process keeps it for itself: `RecentClaims` remembers per
folder (and UIDVALIDITY) the first UID no session of this process has claimed.
A session that selects a folder read-write claims every message up to UIDNEXT,
and later claims the new messages it is told of; those are \\Recent to it alone.
EXAMINE shows what is unclaimed without taking it. Messages a folder held before
the process first dealt with it are old: a restart does not make a whole mailbox
recent again. What the process itself stores into a folder (APPEND, COPY, MOVE)
is recent to the next session that selects it, as is everything that arrives
once a session has it selected. Several gateway processes each keep their own.

A session's recent messages are UID ranges (`RecentRanges`), a few at most: one
from SELECT, one more when another session of the process claimed in between.
"""
from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Sequence

# Folders remembered per process (`imap_recent_folders`, about 150 bytes each); the least
# recently used are forgotten first (their messages become recent again to the next
# session, which the flag allows).
MAX_FOLDERS = 200_000


class RecentClaims:
    """Per gateway process: for each folder the first UID not yet claimed by a session."""

    def __init__(self, max_folders: int = MAX_FOLDERS) -> None:
        self._first: OrderedDict[tuple[int, int], int] = OrderedDict()
        self._max = max_folders

    def claim(self, folder_id: int, uid_validity: int, below: int, take: bool) -> int:
        """The first recent UID for a session that now knows every UID below `below`;
        with `take`, the session takes them (no other session will see them recent).
        A folder seen for the first time has nothing recent below `below`."""
        key = (folder_id, uid_validity)
        first = self._first.get(key, below)
        self._remember(key, max(first, below) if take else first)
        return first

    def arrived(self, folder_id: int, uid_validity: int, uid: int) -> None:
        """Messages from `uid` on were just stored into the folder by this process."""
        key = (folder_id, uid_validity)
        if key not in self._first:
            self._remember(key, uid)

    def unclaimed(self, folder_id: int, uid_validity: int, count: int, uid_next: int) -> int:
        """How many of a folder's `count` messages no session has claimed (STATUS RECENT):
        those from the first unclaimed UID on, assuming none of them was expunged."""
        first = self._first.get((folder_id, uid_validity), uid_next)
        return max(0, min(count, uid_next - first))

    def _remember(self, key: tuple[int, int], first: int) -> None:
        self._first[key] = first
        self._first.move_to_end(key)
        while len(self._first) > self._max:
            self._first.popitem(last=False)


class RecentRanges:
    """The UIDs that are \\Recent to one session, as [low, high) ranges."""

    def __init__(self) -> None:
        self.ranges: list[tuple[int, int]] = []
        self.lowest: int | None = None  # quick "not recent" test for the common case

    def add(self, low: int, high: int) -> None:
        if high <= low:
            return
        if self.ranges and self.ranges[-1][1] >= low:
            self.ranges[-1] = (self.ranges[-1][0], max(high, self.ranges[-1][1]))
        else:
            self.ranges.append((low, high))
        self.lowest = self.ranges[0][0]

    def __contains__(self, uid: int) -> bool:
        if self.lowest is None or uid < self.lowest:
            return False
        return any(low <= uid < high for low, high in self.ranges)

    def index_ranges(self, uids: Sequence[int]) -> list[tuple[int, int]]:
        """Inclusive (first, last) index ranges of the sorted `uids` that are recent."""
        out = []
        for low, high in self.ranges:
            first = bisect.bisect_left(uids, low)
            last = bisect.bisect_left(uids, high) - 1
            if first <= last:
                out.append((first, last))
        return out

    def count(self, uids: Sequence[int]) -> int:
        return sum(last - first + 1 for first, last in self.index_ranges(uids))
