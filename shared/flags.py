"""System flags as stored: one bit each; everything else is a keyword."""
from __future__ import annotations

from collections.abc import Iterable

SEEN = 1
ANSWERED = 2
FLAGGED = 4
DELETED = 8
DRAFT = 16

FLAG_BITS: dict[str, int] = {
    "\\Seen": SEEN,
    "\\Answered": ANSWERED,
    "\\Flagged": FLAGGED,
    "\\Deleted": DELETED,
    "\\Draft": DRAFT,
}
_BITS_BY_LOWER = {name.lower(): bit for name, bit in FLAG_BITS.items()}


def split_flags(names: Iterable[str]) -> tuple[int, list[str]]:
    """Split flag names into the system-flag bitmask and sorted unique keywords.

    System flags match case-insensitively (RFC 3501 section 2.3.2); keywords
    keep the spelling the client first used.
    """
    bits = 0
    keywords: set[str] = set()
    for name in names:
        bit = _BITS_BY_LOWER.get(name.lower())
        if bit is not None:
            bits |= bit
        elif name.startswith("\\"):
            raise ValueError(f"unknown system flag {name!r}")
        elif name:
            keywords.add(name)
    return bits, sorted(keywords)


def flag_names(bits: int, keywords: Iterable[str] = ()) -> list[str]:
    """Flag names for a bitmask plus keywords, system flags first."""
    names = [name for name, bit in FLAG_BITS.items() if bits & bit]
    names.extend(keywords)
    return names
