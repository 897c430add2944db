"""The blob store while blobs move from one kind of store to another.

New blobs go to the new store; a blob not found there is read from the previous
one, where it waits for `groupware blobs migrate` to copy it over (under the same
key, so no item row changes). A release removes a blob from both."""
from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO

from shared.errors import NotFound

log = logging.getLogger(__name__)


class MovingBlobStore:
    def __init__(self, current: Any, previous: Any) -> None:
        self.current = current
        self.previous = previous

    def put_bytes(self, data: bytes) -> str:
        return self.current.put_bytes(data)

    def put_many(self, datas: Sequence[bytes]) -> list[str]:
        return self.current.put_many(datas)

    def put_file(self, path: str) -> str:
        return self.current.put_file(path)

    def put_keyed(self, key: str, source: BinaryIO) -> None:
        self.current.put_keyed(key, source)

    def open(self, key: str) -> BinaryIO:
        # Asked first: a store may tell a missing blob only at the first read.
        try:
            self.current.size(key)
        except NotFound:
            return self.previous.open(key)
        return self.current.open(key)

    def size(self, key: str) -> int:
        try:
            return self.current.size(key)
        except NotFound:
            return self.previous.size(key)

    def delete(self, key: str) -> None:
        self.current.delete(key)
        self.previous.delete(key)

    def scan(self) -> Iterator[tuple[str, float | None, int | None, bool]]:
        """The new store's blobs: `blobs gc` collects there, once the move is done."""
        return self.current.scan()

    def delete_temp(self, key: str) -> None:
        self.current.delete_temp(key)
