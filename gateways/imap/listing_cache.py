"""Rendered listing items of messages, kept across FETCH commands and connections.

INTERNALDATE, RFC822.SIZE, ENVELOPE, BODYSTRUCTURE and BODY never change for a
(folder, UIDVALIDITY, UID), so once rendered they can be answered again without
asking the store or parsing its JSON: a client paging through a mailbox asks
for the same envelopes over and over (Dovecot keeps them in its cache file for
the same reason). An APPEND through this process fills in the sizes of what it
stored, so reading back a message just filed needs only the store call that opens
its source. The cache is one per gateway process, bounded in bytes
(`imap_listing_cache`, set when the gateway starts), and drops what was used
least recently.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared.lru import SizedLRU

LISTING_CACHE_BYTES = 32 * 1024 * 1024
ENTRY_OVERHEAD = 200  # a dict and its key, roughly


class ListingCache(SizedLRU):
    def __init__(self, max_bytes: int = LISTING_CACHE_BYTES) -> None:
        super().__init__(max_bytes)

    def get(self, key: tuple[int, int, int]) -> dict[str, Any] | None:
        """The items known for (folder id, uidvalidity, uid), or None."""
        return super().get(key)

    def put(self, key: tuple[int, int, int], items: dict[str, Any]) -> None:  # type: ignore[override]
        """Remember `items` (rendered item bytes, and the size as an int) for `key`."""
        super().put(key, items, ENTRY_OVERHEAD + sum(len(v) for v in items.values() if isinstance(v, bytes)))

    def learn_sizes(self, folder_id: int, uid_validity: int, sizes: dict[int, int]) -> None:
        """RFC822.SIZE of messages this gateway just stored: the store keeps a message's
        octets as they were sent, so a FETCH of a message appended here (a client reading
        back what it filed) reads its source without first asking for its size."""
        for uid, size in sizes.items():
            key = (folder_id, uid_validity, uid)
            self.put(key, {**(self.get(key) or {}), "RFC822.SIZE": size})

    def forget(self, folder_id: int, uid_validity: int, uids: Iterable[int]) -> None:
        """Expunged messages: their UIDs are never used again, so their items would only
        wait for the least recently used end while the live ones are pushed out."""
        for uid in uids:
            self.pop((folder_id, uid_validity, uid))


CACHE = ListingCache()
