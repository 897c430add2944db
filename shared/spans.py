"""Reading a byte range across blobs laid back to back (one stream of many messages).

The store server reads its streams with it, and so does the adapter when the
store hands it the blob files' paths (a store on the same host).

`read` runs in a thread pool: it may wait on the disk, and it opens the blobs a
little ahead of where it reads (`OPEN_AHEAD_*`), so a batch of small messages
costs one pool call per few MB, not one per message.

`read_cached` runs on the reactor thread and never waits on the disk: it reads
only from blobs already open as files, with `RWF_NOWAIT`, which takes what the
page cache holds and refuses the rest. Most downloads are served from the cache,
and a hop to the pool and back costs more than copying the bytes; whatever the
cache lacks is left to `read`. Blobs whose readers have a `pread` are read so
too: sealed blob files (encrypted at rest) decrypt what the cache held, and S3
objects give what their GETs (sent when `read` opened them ahead) have brought.
Database blobs are always read in the pool.
"""
from __future__ import annotations

import bisect
import errno
import io
import itertools
import os
from collections.abc import Callable
from typing import Any, BinaryIO

# Blobs opened ahead of the read position, in one pool call.
OPEN_AHEAD_FILES = 32
OPEN_AHEAD_BYTES = 2 * 1024 * 1024
_NOWAIT = getattr(os, "RWF_NOWAIT", None)


def _fileno(fp: Any) -> int | None:
    try:
        return fp.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None


class Layout:
    """Blobs laid back to back: [(key, size)] and their running end offsets,
    worked out once for every ranged read of the same stream."""

    def __init__(self, segments: list[tuple[str, int]]) -> None:
        self.segments = segments
        self.ends = list(itertools.accumulate(size for _, size in segments))

    @property
    def size(self) -> int:
        return self.ends[-1] if self.ends else 0

    def locate(self, offset: int) -> tuple[int, int]:
        """(segment index, offset inside it) of the stream's byte `offset`."""
        index = bisect.bisect_right(self.ends, offset)
        return index, offset - (self.ends[index - 1] if index else 0)


class SpanReader:
    """Bytes `start` to `start + length` of a Layout's blobs.

    Not thread-safe: the caller runs one read at a time, `read` in the pool or
    `read_cached` on the reactor, and calls `close` when done."""

    def __init__(self, open_blob: Callable[[str], BinaryIO], layout: Layout, start: int, length: int) -> None:
        """`open_blob` opens a segment's key (a blob key, a path)."""
        self.open_blob = open_blob
        self.segments = layout.segments
        self.index, self.offset = layout.locate(start)  # the segment being read, and where in it
        self.remaining = length
        self.open: dict[int, BinaryIO] = {}  # segment index -> its opened blob
        self.fds: dict[int, int] = {}  # segment index -> OS file descriptor, for files
        # segment index -> pread(count, offset, blocking) of a reader that reads at offsets
        self.preads: dict[int, Callable[[int, int, bool], bytes]] = {}
        self.cache_reads = _NOWAIT is not None
        self._buffer: memoryview | None = None  # cached reads land here, then are copied out

    # -- in the pool
    def read(self, want: int) -> bytes:
        """Up to `want` bytes (fewer only at the end), opening blobs ahead; may block."""
        want = min(want, self.remaining)
        parts = []
        # Topped up at every call, so that blobs whose opening takes a while (an S3
        # object's first GET) are always on their way before the read reaches them.
        self._open_ahead()
        while want > 0 and self.index < len(self.segments):
            if self.index not in self.open:
                self._open_ahead()
            data = self._read_here(want, blocking=True)
            parts.append(data)
            want -= len(data)
        data = b"".join(parts)
        self.remaining -= len(data)
        return data

    def _open_ahead(self) -> None:
        """Open the next blobs, up to OPEN_AHEAD_* from the position, never past the range."""
        ahead, j = 0, self.index
        limit = min(OPEN_AHEAD_BYTES, self.remaining)
        while j < len(self.segments) and len(self.open) < OPEN_AHEAD_FILES and \
                (ahead < limit or j == self.index):
            key, size = self.segments[j]
            if j not in self.open and size > 0:
                fp = self.open[j] = self.open_blob(key)
                fd = _fileno(fp)
                if fd is not None:
                    self.fds[j] = fd
                elif hasattr(fp, "pread"):
                    self.preads[j] = fp.pread
            ahead += size - (self.offset if j == self.index else 0)
            j += 1

    def close(self) -> None:
        files, self.open, self.fds, self.preads = self.open, {}, {}, {}
        for fp in files.values():
            fp.close()

    # -- on the reactor
    def read_cached(self, want: int) -> bytes:
        """Up to `want` bytes that the page cache holds of blobs already open as
        files; b"" when the next bytes need `read`. Never waits on the disk."""
        parts = self.read_cached_pieces(want)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def read_cached_pieces(self, want: int) -> list[bytes]:
        """As `read_cached`, one piece per blob instead of joined ([] for nothing)."""
        parts: list[bytes] = []
        if not self.cache_reads:
            return parts
        want = min(want, self.remaining)
        while want > 0 and (self.index in self.fds or self.index in self.preads):
            data = self._read_here(want, blocking=False)
            if not data:
                break
            parts.append(data)
            want -= len(data)
            self.remaining -= len(data)
        return parts

    # -- both
    def _read_here(self, want: int, blocking: bool) -> bytes:
        """Bytes of the current segment (b"" when a cached read finds nothing)."""
        key, size = self.segments[self.index]
        count = min(want, size - self.offset)
        if count <= 0:
            data = b""
        elif self.index in self.fds:
            data = self._pread(self.fds[self.index], count, blocking)
            if not data and not blocking:
                return b""
        elif self.index in self.preads:
            data = self.preads[self.index](count, self.offset, blocking)
            if not data and not blocking:
                return b""
        else:
            fp = self.open[self.index]
            if self.offset and fp.tell() != self.offset:
                fp.seek(self.offset)
            data = fp.read(count)
        if count > 0 and not data:
            raise EOFError(f"blob {key} ended early")
        self.offset += len(data)
        if self.offset >= size:
            fp = self.open.pop(self.index, None)
            self.fds.pop(self.index, None)
            self.preads.pop(self.index, None)
            if fp is not None:
                fp.close()
            self.index += 1
            self.offset = 0
        return data

    def _pread(self, fd: int, count: int, blocking: bool) -> bytes:
        if blocking:
            return os.pread(fd, count, self.offset)
        if self._buffer is None or len(self._buffer) < count:
            self._buffer = memoryview(bytearray(max(count, 256 * 1024)))
        buf = self._buffer[:count]
        try:
            got = os.preadv(fd, [buf], self.offset, _NOWAIT)
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                return b""
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):
                self.cache_reads = False  # the file system cannot: read in the pool
                return b""
            raise
        return bytes(buf[:got])
