"""A mapping bounded by the total size of its values; the least recently used go first.

The processes' caches (the IMAP gateway's rendered listing items and mailbox indexes,
delivery's Sieve scripts and recipients) keep what clients ask for again within a
memory budget that an option sets (README, "Caches").
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


class SizedLRU:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Any:
        """The value under `key` (now the most recently used), or None."""
        found = self._entries.get(key)
        if found is None:
            return None
        self._entries.move_to_end(key)
        return found[0]

    def put(self, key: Hashable, value: Any, size: int) -> None:
        """Keep `value`, counted as `size` bytes, dropping the least recently used to make
        room; a value bigger than the whole budget is not kept (and replaces nothing)."""
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        if size > self.max_bytes:
            return
        self._entries[key] = (value, size)
        self.bytes += size
        self._shrink()

    def pop(self, key: Hashable) -> Any:
        """Forget `key`; its value, or None."""
        found = self._entries.pop(key, None)
        if found is None:
            return None
        self.bytes -= found[1]
        return found[0]

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0

    def resize(self, max_bytes: int) -> None:
        """A new budget, dropping the least recently used until what is kept fits."""
        self.max_bytes = max_bytes
        self._shrink()

    def _shrink(self) -> None:
        while self.bytes > self.max_bytes:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.bytes -= dropped
