"""Rendered listing items of messages, kept across FETCH commands and connections.

INTERNALDATE, RFC822.SIZE, ENVELOPE, BODYSTRUCTURE and BODY never change for a
(folder, UIDVALIDITY, UID), so once rendered they can be answered again without
asking the store or parsing its JSON: a client paging through a mailbox asks
for the same envelopes over and over (Dovecot keeps them in its cache file for
the same reason). The cache is one per gateway process, bounded in bytes, and
drops what was used least recently.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

LISTING_CACHE_BYTES = 32 * 1024 * 1024
ENTRY_OVERHEAD = 200  # a dict and its key, roughly


class ListingCache:
    def __init__(self, max_bytes: int = LISTING_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[tuple[int, int, int], tuple[dict[str, Any], int]] = OrderedDict()

    def get(self, key: tuple[int, int, int]) -> dict[str, Any] | None:
        """The items known for (folder id, uidvalidity, uid), or None."""
        found = self._entries.get(key)
        if found is None:
            return None
        self._entries.move_to_end(key)
        return found[0]

    def put(self, key: tuple[int, int, int], items: dict[str, Any]) -> None:
        """Remember `items` (rendered item bytes, and the size as an int) for `key`."""
        size = ENTRY_OVERHEAD + sum(len(v) for v in items.values() if isinstance(v, bytes))
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        if size > self.max_bytes:
            return
        self._entries[key] = (items, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.bytes -= dropped


CACHE = ListingCache()
