"""Blobs as 1 MB chunk rows in the store database (the `blobs` table)."""
from __future__ import annotations

import io
import os
import secrets
from collections.abc import Iterator, Sequence
from typing import BinaryIO

from sqlalchemy import Engine, delete, func, insert, select, update

from shared.errors import NotFound

from server.storage.engine import run_in_transaction
from server.storage.schema import blobs

CHUNK = 1 << 20


class DatabaseBlobStore:
    """Chunked rows: writes stream a file in, reads fetch one chunk at a time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def new_key(self) -> str:
        """A fresh blob name, for a caller that must know it before it writes."""
        return secrets.token_hex(16)

    def _store(self, chunks: Iterator[bytes], key: str | None = None) -> str:
        key = key or self.new_key()

        def run(conn) -> None:
            seq = 0
            for data in chunks:
                conn.execute(insert(blobs).values(key=key, seq=seq, data=data))
                seq += 1
            if seq == 0:
                conn.execute(insert(blobs).values(key=key, seq=0, data=b""))

        # One transaction: a half-written blob is never visible.
        run_in_transaction(self.engine, run, write=True)
        return key

    def put_bytes(self, data: bytes, key: str | None = None) -> str:
        view = memoryview(data)
        return self._store((bytes(view[i:i + CHUNK]) for i in range(0, len(view), CHUNK)), key)

    def put_many(self, datas: Sequence[bytes], keys: Sequence[str] | None = None) -> list[str]:
        """Several blobs in one transaction."""
        keys = list(keys) if keys else [self.new_key() for _ in datas]

        def run(conn) -> None:
            rows = []
            for key, data in zip(keys, datas):
                view = memoryview(data)
                rows.extend({"key": key, "seq": seq, "data": bytes(view[i:i + CHUNK])}
                            for seq, i in enumerate(range(0, max(len(view), 1), CHUNK)))
            for i in range(0, len(rows), 200):
                conn.execute(insert(blobs), rows[i:i + 200])

        run_in_transaction(self.engine, run, write=True)
        return keys

    def put_file(self, path: str, key: str | None = None) -> str:
        def read() -> Iterator[bytes]:
            with open(path, "rb") as f:
                while data := f.read(CHUNK):
                    yield data

        key = self._store(read(), key)
        try:
            os.unlink(path)  # ingested: the caller's temp file is ours to drop
        except OSError:
            pass
        return key

    def _chunk(self, key: str, seq: int) -> bytes:
        data = run_in_transaction(self.engine, lambda c: c.execute(
            select(blobs.c.data).where(blobs.c.key == key, blobs.c.seq == seq)).scalar(), write=False)
        if data is None:
            # Every chunk below the size exists while the blob does: it was released meanwhile.
            raise NotFound(f"blob {key} not found")
        return bytes(data)

    def size(self, key: str) -> int:
        count, last = run_in_transaction(self.engine, lambda c: c.execute(
            select(func.count(), func.max(blobs.c.seq)).where(blobs.c.key == key)).one(), write=False)
        if not count:
            raise NotFound(f"blob {key} not found")
        # Every chunk but the last is full.
        return last * CHUNK + len(self._chunk(key, last))

    def replace_head(self, key: str, old: bytes, new: bytes) -> None:
        """Overwrite the blob's first bytes `old` with `new` (as long), in its first
        chunk row; NotFound when the blob is gone or no longer starts with `old`."""
        def run(conn) -> None:
            first = conn.execute(select(blobs.c.data).where(blobs.c.key == key, blobs.c.seq == 0)).scalar()
            if first is None or bytes(first[:len(old)]) != old:
                raise NotFound(f"blob {key} not found or changed meanwhile")
            conn.execute(update(blobs).where(blobs.c.key == key, blobs.c.seq == 0)
                         .values(data=new + bytes(first[len(old):])))

        run_in_transaction(self.engine, run, write=True)

    def open(self, key: str) -> BinaryIO:
        return io.BufferedReader(_ChunkReader(self, key, self.size(key)), buffer_size=CHUNK)

    def delete(self, key: str) -> None:
        run_in_transaction(self.engine, lambda c: c.execute(delete(blobs).where(blobs.c.key == key)),
                           write=True)

    def scan(self, batch: int = 1000) -> Iterator[tuple[str, float | None, int | None, bool]]:
        """(key, None, None, False) for every stored blob, in key order.

        Rows keep no write time, so the mtime is None; the size is left to size().
        Pages by key on the primary key index, so blobs deleted meanwhile do no harm.
        """
        last = ""
        while True:
            keys = run_in_transaction(self.engine, lambda c: c.execute(
                select(blobs.c.key).where(blobs.c.key > last).distinct()
                .order_by(blobs.c.key).limit(batch)).scalars().all(), write=False)
            for key in keys:
                yield key, None, None, False
            if len(keys) < batch:
                return
            last = keys[-1]


class _ChunkReader(io.RawIOBase):
    """Seekable raw stream over the chunk rows of one blob."""

    def __init__(self, store: DatabaseBlobStore, key: str, size: int) -> None:
        self._store = store
        self._key = key
        self._size = size
        self._pos = 0
        self._cached: tuple[int, bytes] | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        pos = base + offset
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

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
