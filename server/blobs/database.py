"""Blobs as 1 MB chunk rows in the store database (the `blobs` table, server/storage/blob_rows.py)."""
from __future__ import annotations

import io
import os
import secrets
from collections.abc import Iterator, Sequence
from typing import BinaryIO

from sqlalchemy import Engine

from server.storage.blob_rows import BlobRows
from shared.errors import NotFound
from shared.seekable import SeekableReader

CHUNK = 1 << 20


def _pieces(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    return (bytes(view[i:i + CHUNK]) for i in range(0, len(view), CHUNK))


def _read_chunks(fp: BinaryIO) -> Iterator[bytes]:
    while data := fp.read(CHUNK):
        yield data


class DatabaseBlobStore:
    """Chunked rows: writes stream a file in, reads fetch one chunk at a time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.rows = BlobRows(engine)

    def new_key(self) -> str:
        """A fresh blob name, for a caller that must know it before it writes."""
        return secrets.token_hex(16)

    def put_bytes(self, data: bytes, key: str | None = None) -> str:
        key = key or self.new_key()
        self.rows.insert_chunks(key, _pieces(data))
        return key

    def put_many(self, datas: Sequence[bytes], keys: Sequence[str] | None = None) -> list[str]:
        """Several blobs in one transaction."""
        keys = list(keys) if keys else [self.new_key() for _ in datas]
        rows = []
        for key, data in zip(keys, datas):
            view = memoryview(data)
            rows.extend({"key": key, "seq": seq, "data": bytes(view[i:i + CHUNK])}
                        for seq, i in enumerate(range(0, max(len(view), 1), CHUNK)))
        self.rows.insert_rows(rows)
        return keys

    def put_file(self, path: str, key: str | None = None) -> str:
        key = key or self.new_key()
        with open(path, "rb") as f:
            self.rows.insert_chunks(key, _read_chunks(f))
        try:
            os.unlink(path)  # ingested: the caller's temp file is ours to drop
        except OSError:
            pass
        return key

    def put_keyed(self, key: str, source: BinaryIO) -> None:
        """The bytes of `source` under `key` (a blob copied from another store), streamed
        in, replacing a copy left by an earlier attempt."""
        self.rows.insert_chunks(key, _read_chunks(source), replace=True)

    def _chunk(self, key: str, seq: int) -> bytes:
        data = self.rows.chunk(key, seq)
        if data is None:
            # Every chunk below the size exists while the blob does: it was released meanwhile.
            raise NotFound(f"blob {key} not found")
        return data

    def size(self, key: str) -> int:
        last = self.rows.last_chunk(key)
        if last is None:
            raise NotFound(f"blob {key} not found")
        # Every chunk but the last is full.
        return last[0] * CHUNK + len(last[1])

    def replace_head(self, key: str, old: bytes, new: bytes) -> None:
        """Overwrite the blob's first bytes `old` with `new` (as long), in its first
        chunk row; NotFound when the blob is gone or no longer starts with `old`."""
        if not self.rows.replace_head(key, old, new):
            raise NotFound(f"blob {key} not found or changed meanwhile")

    def open(self, key: str) -> BinaryIO:
        return io.BufferedReader(_ChunkReader(self, key, self.size(key)), buffer_size=CHUNK)

    def delete(self, key: str) -> None:
        self.rows.delete(key)

    def scan(self, batch: int = 1000) -> Iterator[tuple[str, float | None, int | None, bool]]:
        """(key, None, None, False) for every stored blob, in key order.

        Rows keep no write time, so the mtime is None; the size is left to size()."""
        for key in self.rows.keys(batch):
            yield key, None, None, False


class _ChunkReader(SeekableReader):
    """Seekable raw stream over the chunk rows of one blob."""

    def __init__(self, store: DatabaseBlobStore, key: str, size: int) -> None:
        self._store = store
        self._key = key
        self._size = size
        self._pos = 0
        self._cached: tuple[int, bytes] | None = None

    def readinto(self, buf) -> int:
        if self._pos >= self._size:
            return 0
        seq, inner = divmod(self._pos, CHUNK)
        if self._cached is None or self._cached[0] != seq:
            self._cached = (seq, self._store._chunk(self._key, seq))
        data = self._cached[1][inner:inner + len(buf)]
        n = len(data)
        buf[:n] = data
        self._pos += n
        return n
