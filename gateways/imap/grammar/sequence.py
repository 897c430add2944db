"""IMAP sequence sets (RFC 3501 §9 `sequence-set`, RFC 9051 §9): "1:5,9,12:*".

A set is kept as the ranges the client sent, with None standing for `*`. It is
resolved against the highest message number or UID only when the mailbox is known,
and always works on ranges: `1:*` over 100,000 messages costs one tuple, not a list.
"""
from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator

# (low, high) as sent; None is "*". Either end may be the larger one ("5:2").
RawRange = tuple[int | None, int | None]

MAX_NUMBER = 2**32 - 1  # nz-number is 32 bits (RFC 3501 §9)


class SequenceSet:
    """A sequence set as sent, possibly containing `*`."""

    __slots__ = ("ranges", "_text", "_resolved")

    def __init__(self, ranges: Iterable[RawRange]) -> None:
        self.ranges: tuple[RawRange, ...] = tuple(ranges)
        if not self.ranges:
            raise ValueError("empty sequence set")
        self._text: bytes | None = None
        self._resolved: tuple[int, list[tuple[int, int]]] | None = None

    @classmethod
    def of(cls, numbers: Iterable[int]) -> "SequenceSet":
        """A set naming exactly these numbers (any order, duplicates allowed)."""
        return cls(merge((n, n) for n in numbers))

    @classmethod
    def from_ranges(cls, ranges: Iterable[tuple[int, int]]) -> "SequenceSet":
        return cls(merge(ranges))

    @property
    def has_star(self) -> bool:
        return any(a is None or b is None for a, b in self.ranges)

    def resolve(self, maximum: int) -> list[tuple[int, int]]:
        """Sorted, merged, inclusive (low, high) ranges with `*` replaced by `maximum`.

        RFC 3501 §6.4.8: "n:*" with n above the maximum still names the maximum, so
        ranges are normalised rather than dropped; nothing survives when maximum is 0
        and the range is made of `*` only. Numbers above `maximum` are kept: for UIDs
        they simply match nothing, and the caller decides what that means for
        message sequence numbers. The result is remembered for the last maximum, so
        repeated membership tests do not sort again; callers must not modify it.
        """
        if self._resolved is not None and self._resolved[0] == maximum:
            return self._resolved[1]
        out = []
        for a, b in self.ranges:
            lo = maximum if a is None else a
            hi = maximum if b is None else b
            if lo > hi:
                lo, hi = hi, lo
            if hi <= 0:
                continue
            out.append((max(lo, 1), hi))
        resolved = merge(out)
        self._resolved = (maximum, resolved)
        return resolved

    def clipped(self, maximum: int) -> list[tuple[int, int]]:
        """Like `resolve`, without anything above `maximum`."""
        out = []
        for lo, hi in self.resolve(maximum):
            if lo > maximum:
                break
            out.append((lo, min(hi, maximum)))
        return out

    def iter_ranges(self, maximum: int) -> Iterator[tuple[int, int]]:
        return iter(self.resolve(maximum))

    def iter_numbers(self, maximum: int) -> Iterator[int]:
        """Every number in the set up to `maximum`, ascending (lazily)."""
        for lo, hi in self.clipped(maximum):
            yield from range(lo, hi + 1)

    def count(self, maximum: int) -> int:
        return sum(hi - lo + 1 for lo, hi in self.clipped(maximum))

    def contains(self, number: int, maximum: int) -> bool:
        return contains(self.resolve(maximum), number)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SequenceSet) and self.ranges == other.ranges

    def __hash__(self) -> int:
        return hash(self.ranges)

    def __bytes__(self) -> bytes:
        if self._text is None:
            self._text = b",".join(_range_bytes(a, b) for a, b in self.ranges)
        return self._text

    def __str__(self) -> str:
        return bytes(self).decode("ascii")

    def __repr__(self) -> str:
        return f"SequenceSet({str(self)!r})"


def _end(n: int | None) -> bytes:
    return b"*" if n is None else b"%d" % n


def _range_bytes(a: int | None, b: int | None) -> bytes:
    return _end(a) if a == b else _end(a) + b":" + _end(b)


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


def contains(resolved: list[tuple[int, int]], number: int) -> bool:
    """Membership in sorted, merged ranges by bisection."""
    i = bisect.bisect_right(resolved, (number, MAX_NUMBER * 2**32)) - 1
    return i >= 0 and resolved[i][0] <= number <= resolved[i][1]


def format_ranges(ranges: Iterable[tuple[int, int]]) -> bytes:
    """Compact text for resolved ranges: [(1, 3), (5, 5)] -> b"1:3,5"."""
    return b",".join(b"%d" % lo if lo == hi else b"%d:%d" % (lo, hi) for lo, hi in ranges)


def format_numbers(numbers: Iterable[int], keep_order: bool = False) -> bytes:
    """Compact text for numbers: 1,2,3,5 -> b"1:3,5".

    With `keep_order` runs are only joined in the order given, as UIDPLUS COPYUID
    needs: its source and destination sets must pair up element by element
    (RFC 4315 §3), so the two lists are formatted without sorting.
    """
    if not keep_order:
        return format_ranges(merge((n, n) for n in numbers))
    parts: list[bytes] = []
    start = prev = None
    for n in numbers:
        if prev is not None and n == prev + 1:
            prev = n
            continue
        if start is not None:
            parts.append(b"%d" % start if start == prev else b"%d:%d" % (start, prev))
        start = prev = n
    if start is not None:
        parts.append(b"%d" % start if start == prev else b"%d:%d" % (start, prev))
    return b",".join(parts)
