"""The position bookkeeping of a blob reader that reads at any offset (ranged reads of
database rows, S3 objects and sealed chunks): subclasses set `_size` and read from `_pos`."""
from __future__ import annotations

import io


class SeekableReader(io.RawIOBase):
    _pos = 0
    _size = 0

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
