"""The `blobs` table: blobs of the database attachment store as numbered chunk rows.

Only the database blob store (server/blobs/database.py) calls this; it decides the
chunking, this module only reads and writes rows."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from .engine import run_in_transaction
from .schema import blobs

# Rows per INSERT statement when several blobs are written at once.
_ROWS_PER_INSERT = 200


class BlobRows:
    """Chunk rows of blobs, each write one transaction so a half-written blob is never seen."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def insert_chunks(self, key: str, chunks: Iterable[bytes], replace: bool = False) -> None:
        """One blob from its chunks in order, streamed in; an empty blob gets one empty row.
        With `replace`, rows the key had before go in the same transaction."""
        def run(conn: Connection) -> None:
            if replace:
                conn.execute(delete(blobs).where(blobs.c.key == key))
            seq = 0
            for data in chunks:
                conn.execute(insert(blobs).values(key=key, seq=seq, data=data))
                seq += 1
            if seq == 0:
                conn.execute(insert(blobs).values(key=key, seq=0, data=b""))
        run_in_transaction(self.engine, run, write=True)

    def insert_rows(self, rows: Sequence[dict]) -> None:
        """Rows ({key, seq, data}) of several blobs in one transaction."""
        def run(conn: Connection) -> None:
            for i in range(0, len(rows), _ROWS_PER_INSERT):
                conn.execute(insert(blobs), list(rows[i:i + _ROWS_PER_INSERT]))
        run_in_transaction(self.engine, run, write=True)

    def chunk(self, key: str, seq: int) -> bytes | None:
        data = run_in_transaction(self.engine, lambda c: c.execute(
            select(blobs.c.data).where(blobs.c.key == key, blobs.c.seq == seq)).scalar(), write=False)
        return None if data is None else bytes(data)

    def last_chunk(self, key: str) -> tuple[int, bytes] | None:
        """(seq, data) of the blob's last chunk, None when the blob has no rows."""
        def run(conn: Connection) -> tuple[int, bytes] | None:
            last = conn.execute(select(func.max(blobs.c.seq)).where(blobs.c.key == key)).scalar()
            if last is None:
                return None
            data = conn.execute(select(blobs.c.data).where(blobs.c.key == key, blobs.c.seq == last)).scalar()
            return None if data is None else (last, bytes(data))
        return run_in_transaction(self.engine, run, write=False)

    def replace_head(self, key: str, old: bytes, new: bytes) -> bool:
        """The first chunk's leading bytes `old` overwritten by `new` (as long); False when
        the blob is gone or no longer starts with `old`."""
        def run(conn: Connection) -> bool:
            first = conn.execute(select(blobs.c.data).where(blobs.c.key == key, blobs.c.seq == 0)).scalar()
            if first is None or bytes(first[:len(old)]) != old:
                return False
            conn.execute(update(blobs).where(blobs.c.key == key, blobs.c.seq == 0)
                         .values(data=new + bytes(first[len(old):])))
            return True
        return run_in_transaction(self.engine, run, write=True)

    def delete(self, key: str) -> None:
        run_in_transaction(self.engine, lambda c: c.execute(delete(blobs).where(blobs.c.key == key)),
                           write=True)

    def keys(self, batch: int = 1000) -> Iterator[str]:
        """Every blob key in key order, a page at a time on the primary key index, so blobs
        deleted meanwhile do no harm."""
        last = ""
        while True:
            page = run_in_transaction(self.engine, lambda c: c.execute(
                select(blobs.c.key).where(blobs.c.key > last).distinct()
                .order_by(blobs.c.key).limit(batch)).scalars().all(), write=False)
            yield from page
            if len(page) < batch:
                return
            last = page[-1]
