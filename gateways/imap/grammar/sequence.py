"""IMAP sequence sets (RFC 3501 §9 `sequence-set`, RFC 9051 §9): "1:5,9,12:*".

The ranges, their resolving against the highest number and the membership test are
the store's uid sets (shared/uidset.py); the reader parses IMAP's syntax into them.
What is IMAP's own lives here: message sequence numbers, which stop at the number
of messages (`clipped`), and the sets' text as octets on the wire, including the
pairing order UIDPLUS needs.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

from shared import uidset
from shared.uidset import UidSet, merge, runs

__all__ = ["SequenceSet", "SavedResult", "SAVED_RESULT", "format_ranges", "format_numbers"]


class SequenceSet(UidSet):
    """A sequence or UID set as the client sent it, possibly containing `*`."""

    __slots__ = ("_text",)

    def __init__(self, ranges: Iterable[uidset.Range]) -> None:
        super().__init__(ranges)
        self._text: bytes | None = None

    def clipped(self, maximum: int) -> list[tuple[int, int]]:
        """Like `resolve`, without anything above `maximum` (the message count for
        sequence numbers)."""
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

    def __bytes__(self) -> bytes:
        if self._text is None:
            self._text = str(self).encode("ascii")
        return self._text

    def __repr__(self) -> str:
        return f"SequenceSet({str(self)!r})"


class SavedResult(SequenceSet):
    """`$` (RFC 5182 SEARCHRES): the messages the last `SEARCH RETURN (SAVE)` kept. The
    selected mailbox resolves it (`SelectedMailbox.index_ranges`); read as numbers it
    names none."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__([(0, 0)])

    def __str__(self) -> str:
        return "$"


SAVED_RESULT = SavedResult()


def format_ranges(ranges: Iterable[tuple[int, int]]) -> bytes:
    """Compact wire text for resolved ranges: [(1, 3), (5, 5)] -> b"1:3,5"."""
    return uidset.format_ranges(ranges).encode("ascii")


def format_numbers(numbers: Iterable[int], keep_order: bool = False) -> bytes:
    """Compact wire text for numbers: 1,2,3,5 -> b"1:3,5".

    With `keep_order` runs are only joined in the order given, as UIDPLUS COPYUID
    needs: its source and destination sets must pair up element by element
    (RFC 4315 §3), so the two lists are formatted without sorting.
    """
    return format_ranges(runs(numbers) if keep_order else merge((n, n) for n in numbers))
