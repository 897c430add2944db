"""IMAP-style uid sets ("1:5,9,12:*"): the contract's way to name many items at once.

Both ends use this module: the adapter to write sets, the server to read them.
"""
from __future__ import annotations

from collections.abc import Iterable

from shared.errors import BadRequest

# None stands for "*", the highest uid in the folder.
Range = tuple[int | None, int | None]
_MAX_UID = 2**63 - 1


def _number(text: str) -> int | None:
    if text == "*":
        return None
    if not text.isdigit():
        raise BadRequest(f"bad uid {text!r}")
    value = int(text)
    if value <= 0 or value > _MAX_UID:
        raise BadRequest(f"uid out of range: {text}")
    return value


def parse_uidset(text: str) -> list[Range]:
    """Parse "1:5,9,12:*" into (low, high) pairs; None means "*"."""
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("empty uid set")
    ranges: list[Range] = []
    for item in text.strip().split(","):
        lo, sep, hi = item.partition(":")
        a = _number(lo)
        b = _number(hi) if sep else a
        ranges.append((a, b))
    return ranges


def resolve(ranges: Iterable[Range], max_uid: int) -> list[tuple[int, int]]:
    """Replace "*" by max_uid, order each pair and merge overlaps.

    RFC 3501: "n:*" with n above the highest uid still names the highest uid,
    so the pair is normalised rather than dropped.
    """
    out: list[tuple[int, int]] = []
    for a, b in ranges:
        a = max_uid if a is None else a
        b = max_uid if b is None else b
        if a <= 0 and b <= 0:
            continue  # "*" in an empty folder
        lo, hi = (a, b) if a <= b else (b, a)
        out.append((max(lo, 1), hi))
    out.sort()
    merged: list[tuple[int, int]] = []
    for lo, hi in out:
        if merged and lo <= merged[-1][1] + 1:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


def has_star(ranges: Iterable[Range]) -> bool:
    return any(a is None or b is None for a, b in ranges)


def contains(resolved: list[tuple[int, int]], uid: int) -> bool:
    """Membership test on merged ranges (binary search)."""
    lo, hi = 0, len(resolved)
    while lo < hi:
        mid = (lo + hi) // 2
        a, b = resolved[mid]
        if uid < a:
            hi = mid
        elif uid > b:
            lo = mid + 1
        else:
            return True
    return False


def format_uidset(uids: Iterable[int] | str) -> str:
    """Compress uids into the shortest "1:3,7,9:10" form; a set given as text is checked and kept."""
    if isinstance(uids, str):
        parse_uidset(uids)
        return uids.strip()
    values = sorted(set(int(u) for u in uids))
    if values and values[0] < 1:
        raise BadRequest("uids start at 1")
    parts: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        parts.append(str(values[i]) if i == j else f"{values[i]}:{values[j]}")
        i = j + 1
    return ",".join(parts)


def uid_list(text: str | None, max_uid: int | None = None) -> list[int]:
    """Every uid a set names, in order (none for empty text); "*" needs `max_uid`."""
    if not text or not text.strip():
        return []
    ranges = parse_uidset(text)
    if max_uid is None and has_star(ranges):
        raise BadRequest("uid set with * needs the highest uid")
    return [uid for lo, hi in resolve(ranges, max_uid or 0) for uid in range(lo, hi + 1)]
