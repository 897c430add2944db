"""A mapping bounded by the total size of its values; the least recently used go first.

The IMAP gateway's process-wide caches (rendered listing items, mailbox indexes)
keep what clients ask for again, within a fixed memory budget.
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
        while self.bytes > self.max_bytes:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.bytes -= dropped
