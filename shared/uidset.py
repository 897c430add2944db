"""Uid sets ("1:5,9,12:*"): the one representation of many numbers named at once.

A set is a sequence of (low, high) ranges as written, None standing for "*" (the
highest uid, or for IMAP the highest message number). It is resolved against that
maximum only when it is known, and always works on ranges: "1:*" over 100,000
messages costs one tuple, not a list.

Every side uses this module: the adapter to write sets for the contract, the
server to read them, and the IMAP grammar, which parses its own syntax into the
same ranges and adds message sequence numbers on top (gateways/imap/grammar/sequence.py).
"""
from __future__ import annotations

import bisect
from collections.abc import Iterable

from shared.errors import BadRequest

# None stands for "*". Either end may be the larger one ("5:2").
Range = tuple[int | None, int | None]
_MAX_UID = 2**63 - 1


def _number(text: str) -> int | None:
    if text == "*":
        return None
    if not (text.isascii() and text.isdigit()):  # "²" is a digit to str.isdigit, not to int()
        raise BadRequest(f"bad uid {text[:40]!r}")
    if len(text) > len(str(_MAX_UID)):
        raise BadRequest(f"uid out of range: {text[:40]}...")
    value = int(text)
    if value <= 0 or value > _MAX_UID:
        raise BadRequest(f"uid out of range: {text}")
    return value


def parse_uidset(text: str) -> list[Range]:
    """Parse the contract's text "1:5,9,12:*" into (low, high) pairs; None means "*"."""
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("empty uid set")
    ranges: list[Range] = []
    for item in text.strip().split(","):
        lo, sep, hi = item.partition(":")
        a = _number(lo)
        b = _number(hi) if sep else a
        ranges.append((a, b))
    return ranges


def merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort inclusive ranges and merge the overlapping or adjacent ones."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


def resolve(ranges: Iterable[Range], maximum: int) -> list[tuple[int, int]]:
    """Sorted, merged, inclusive ranges with "*" replaced by `maximum`.

    RFC 3501 §6.4.8: "n:*" with n above the maximum still names the maximum, so
    the pair is normalised rather than dropped; nothing survives when the maximum
    is 0 and the range is made of "*" only. Numbers above `maximum` are kept: as
    uids they simply match nothing.
    """
    out: list[tuple[int, int]] = []
    for a, b in ranges:
        lo = maximum if a is None else a
        hi = maximum if b is None else b
        if lo > hi:
            lo, hi = hi, lo
        if hi <= 0:
            continue  # "*" in an empty folder
        out.append((max(lo, 1), hi))
    return merge(out)


def has_star(ranges: Iterable[Range]) -> bool:
    return any(a is None or b is None for a, b in ranges)


def contains(resolved: list[tuple[int, int]], number: int) -> bool:
    """Membership in sorted, merged ranges by bisection."""
    i = bisect.bisect_right(resolved, (number, float("inf"))) - 1
    return i >= 0 and resolved[i][0] <= number <= resolved[i][1]


def runs(numbers: Iterable[int]) -> list[tuple[int, int]]:
    """Consecutive numbers joined into ranges in the order given, without sorting."""
    out: list[tuple[int, int]] = []
    for n in numbers:
        if out and n == out[-1][1] + 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def format_ranges(ranges: Iterable[tuple[int, int]]) -> str:
    """Compact text for resolved ranges: [(1, 3), (5, 5)] -> "1:3,5"."""
    return ",".join(str(lo) if lo == hi else f"{lo}:{hi}" for lo, hi in ranges)


def format_uidset(uids: Iterable[int] | str) -> str:
    """Compress uids into the shortest "1:3,7,9:10" form; a set given as text is checked and kept."""
    if isinstance(uids, str):
        parse_uidset(uids)
        return uids.strip()
    ranges = merge((n, n) for n in {int(u) for u in uids})
    if ranges and ranges[0][0] < 1:
        raise BadRequest("uids start at 1")
    return format_ranges(ranges)


def uid_list(text: str | None, max_uid: int | None = None) -> list[int]:
    """Every uid a set names, in order (none for empty text); "*" needs `max_uid`."""
    if not text or not text.strip():
        return []
    ranges = parse_uidset(text)
    if max_uid is None and has_star(ranges):
        raise BadRequest("uid set with * needs the highest uid")
    return [uid for lo, hi in resolve(ranges, max_uid or 0) for uid in range(lo, hi + 1)]


class UidSet:
    """A set as written, possibly containing "*", resolved lazily and remembered for
    the last maximum, so repeated membership tests do not sort again."""

    __slots__ = ("ranges", "_resolved")

    def __init__(self, ranges: Iterable[Range]) -> None:
        self.ranges: tuple[Range, ...] = tuple(ranges)
        if not self.ranges:
            raise ValueError("empty uid set")
        self._resolved: tuple[int, list[tuple[int, int]]] | None = None

    @classmethod
    def of(cls, numbers: Iterable[int]) -> "UidSet":
        """A set naming exactly these numbers (any order, duplicates allowed)."""
        return cls(merge((n, n) for n in numbers))

    @classmethod
    def from_ranges(cls, ranges: Iterable[tuple[int, int]]) -> "UidSet":
        return cls(merge(ranges))

    @property
    def has_star(self) -> bool:
        return has_star(self.ranges)

    def resolve(self, maximum: int) -> list[tuple[int, int]]:
        """`resolve` of this set; callers must not modify the list, it is shared."""
        if self._resolved is None or self._resolved[0] != maximum:
            self._resolved = (maximum, resolve(self.ranges, maximum))
        return self._resolved[1]

    def contains(self, number: int, maximum: int) -> bool:
        return contains(self.resolve(maximum), number)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UidSet) and self.ranges == other.ranges

    def __hash__(self) -> int:
        return hash(self.ranges)

    def __str__(self) -> str:
        return ",".join(_range_text(a, b) for a, b in self.ranges)


def _end(n: int | None) -> str:
    return "*" if n is None else str(n)


def _range_text(a: int | None, b: int | None) -> str:
    return _end(a) if a == b else f"{_end(a)}:{_end(b)}"
