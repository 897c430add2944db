"""Blobs as files under attachment_path, sharded ab/cd/<key>, written atomically."""
from __future__ import annotations

import os
import secrets
import shutil
from typing import BinaryIO

from shared.errors import NotFound

_CHUNK = 1 << 20


def _valid_key(key: str) -> bool:
    return isinstance(key, str) and 8 <= len(key) <= 128 and all(c in "0123456789abcdef" for c in key)


class FileBlobStore:
    """One file per blob. Keys are random hex, so nothing else ever writes the same path."""

    def __init__(self, root: str, fsync: bool = True) -> None:
        self.root = os.path.abspath(root)
        self.fsync = fsync
        os.makedirs(self.root, exist_ok=True)
        # Shard directories known to exist: saves a failing mkdir per blob.
        self._dirs: set[str] = set()

    def _path(self, key: str) -> str:
        if not _valid_key(key):
            raise NotFound(f"bad blob key {key!r}")
        return os.path.join(self.root, key[:2], key[2:4], key)

    def _sync_dir(self, path: str) -> None:
        if not self.fsync:
            return
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _target(self) -> tuple[str, str]:
        key = secrets.token_hex(16)
        path = self._path(key)
        directory = os.path.dirname(path)
        if directory not in self._dirs:
            os.makedirs(directory, exist_ok=True)
            self._dirs.add(directory)
        return key, path

    def _commit(self, tmp: str, path: str) -> None:
        # Rename is atomic within one directory; the directory fsync makes the name durable.
        os.replace(tmp, path)
        self._sync_dir(os.path.dirname(path))

    def put_bytes(self, data: bytes) -> str:
        key, path = self._target()
        # The key is 128 random bits, so its temp name is unique without mkstemp's retries.
        tmp = os.path.join(os.path.dirname(path), ".tmp-" + key)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            self._commit(tmp, path)
        except BaseException:
            _unlink(tmp)
            raise
        return key

    def put_file(self, path: str) -> str:
        """Take over a finished temp file: renamed in when on the same filesystem, else copied."""
        key, target = self._target()
        tmp = os.path.join(os.path.dirname(target), ".tmp-" + key)
        try:
            try:
                os.rename(path, tmp)
            except OSError:
                with open(path, "rb") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
                _unlink(path)
            if self.fsync:
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())
            self._commit(tmp, target)
        except BaseException:
            _unlink(tmp)
            raise
        return key

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {key} not found") from None

    def size(self, key: str) -> int:
        try:
            return os.stat(self._path(key)).st_size
        except FileNotFoundError:
            raise NotFound(f"blob {key} not found") from None

    def delete(self, key: str) -> None:
        if _valid_key(key):
            _unlink(self._path(key))


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
