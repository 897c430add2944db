"""Blobs as files under attachment_path, sharded ab/cd/<key>.

A blob counts as stored once its data and its directory entry are fsynced; only then
may an item name its key, so a file that a crash left short is never read (it is an
orphan, and `blobs gc` removes it)."""
from __future__ import annotations

import os
import secrets
import shutil
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

from shared.errors import NotFound

_CHUNK = 1 << 20
TMP_PREFIX = ".tmp-"
_HEX = frozenset("0123456789abcdef")
# put_many: fsyncs in flight at once (the file system commits them together), and how
# many blobs of one call share a shard directory, so one directory fsync covers them.
_SYNC_THREADS = 16
_BLOBS_PER_SHARD = 1000


def _valid_key(key: str) -> bool:
    return isinstance(key, str) and 8 <= len(key) <= 128 and all(c in _HEX for c in key)


def _is_shard(name: str) -> bool:
    return len(name) == 2 and all(c in _HEX for c in name)


def _subdirs(path: str) -> list[str]:
    try:
        with os.scandir(path) as it:
            return sorted(e.name for e in it if _is_shard(e.name) and e.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return []



def _private_directory(path: str) -> bool:
    """`path` made if missing, readable by the store's user alone (other local users must
    not read mail); `os.makedirs` gives its mode to the last level only, so one level a call.
    True when it was made now."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return False
    except FileNotFoundError:
        os.makedirs(path, 0o700, exist_ok=True)
    return True


class FileBlobStore:
    """One file per blob. Keys are random hex, so nothing else ever writes the same path."""

    def __init__(self, root: str, fsync: bool = True) -> None:
        self.root = os.path.abspath(root)
        self.fsync = fsync
        _private_directory(self.root)
        # Shard directories known to exist: saves a failing mkdir per blob.
        self._dirs: set[str] = set()
        # Single blobs go to one shard directory a thousand at a time, so that a new
        # directory (made and fsynced into its parent) comes once per thousand blobs,
        # not with nearly every one while the store is young.
        self._shard_lock = threading.Lock()
        self._shard = ""
        self._shard_left = 0
        # put_many's writers, kept between calls: starting threads for every call of a
        # busy store (grouped deliveries) cost it more than the writing.
        self._writers = ThreadPoolExecutor(_SYNC_THREADS, thread_name_prefix="blob-writer")

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

    def new_key(self) -> str:
        """A fresh blob name, for a caller that must know it before it writes (a sealed
        blob names its key in its seal); it shares a shard directory like put_bytes'."""
        return self._new_key(self._next_shard())

    @staticmethod
    def _new_key(shard: str) -> str:
        return shard + secrets.token_hex(16 - len(shard) // 2)

    def _target(self, shard: str = "", key: str | None = None) -> tuple[str, str]:
        key = key or self._new_key(shard)
        path = self._path(key)
        directory = os.path.dirname(path)
        if directory not in self._dirs:
            # A new shard's name must be durable in its parent before a blob in it counts as stored.
            for shard_dir in (os.path.dirname(directory), directory):
                if _private_directory(shard_dir):
                    self._sync_dir(os.path.dirname(shard_dir))
            self._dirs.add(directory)
        return key, path

    def _next_shard(self) -> str:
        with self._shard_lock:
            if self._shard_left <= 0:
                self._shard = secrets.token_hex(2)
                self._shard_left = _BLOBS_PER_SHARD
            self._shard_left -= 1
            return self._shard

    def put_bytes(self, data: bytes, key: str | None = None) -> str:
        """A new blob (named `key`, from new_key, when given), durable when this returns: its data and its name fsynced.

        It is written under its final name at once, without a temporary name and a
        rename: no item names the key before this returns, so nobody reads the file
        early, and one left half-written by a crash is an orphan that `blobs gc`
        removes. Without the rename the file's fsync also carries its directory entry
        on journaling file systems, and the directory's fsync then finds little to do.
        """
        key, path = self._target(self._next_shard(), key)
        try:
            self._write_new(path, data)
            self._sync_dir(os.path.dirname(path))
        except BaseException:
            _unlink(path)
            raise
        return key

    def _write_new(self, tmp: str, data: bytes) -> None:
        """`data` into a file that must not exist yet, fsynced when configured."""
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def put_many(self, datas: Sequence[bytes], keys: Sequence[str] | None = None) -> list[str]:
        """Several blobs, durable when this returns, as put_bytes would leave them. They are
        written and fsynced by several threads at once, and share a shard directory per
        thousand, so a calendar import does not wait for each file in turn."""
        written: list[tuple[str, str, str]] = []
        shard = ""
        for i in range(len(datas)):
            if i % _BLOBS_PER_SHARD == 0:
                shard = secrets.token_hex(2)
            key, path = self._target(shard, keys[i] if keys else None)
            written.append((key, path, os.path.join(os.path.dirname(path), TMP_PREFIX + key)))

        def write(job: tuple[str, bytes]) -> None:
            self._write_new(*job)
        try:
            list(self._writers.map(write, [(tmp, data) for (_, _, tmp), data in zip(written, datas)]))
            for _, path, tmp in written:
                os.replace(tmp, path)
            if self.fsync and written:
                directories = sorted({os.path.dirname(path) for _, path, _ in written})
                list(self._writers.map(_fsync_path, directories))
        except BaseException:
            for _, path, tmp in written:
                _unlink(tmp)
                _unlink(path)
            raise
        return [key for key, _, _ in written]

    def put_file(self, path: str, key: str | None = None) -> str:
        """Take over a finished temp file: renamed in when on the same filesystem, else copied;
        durable when this returns. Like put_bytes, it takes its final name at once."""
        key, target = self._target(self._next_shard(), key)
        try:
            try:
                os.rename(path, target)
            except OSError:
                with open(path, "rb") as src, open(target, "xb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
                _unlink(path)
            else:
                # The mtime is the blob's age for `blobs gc`: when it was stored, not spooled.
                try:
                    os.utime(target)
                except OSError:
                    pass
            if self.fsync:
                with open(target, "rb+") as f:
                    os.fsync(f.fileno())
            self._sync_dir(os.path.dirname(target))
        except BaseException:
            _unlink(target)
            raise
        return key

    def put_keyed(self, key: str, source: BinaryIO) -> None:
        """The bytes of `source` under `key` (a blob copied from another store), durable
        when this returns. Written under a temporary name and renamed, so a reader never
        sees it half-written and a copy left by an earlier attempt is replaced whole."""
        path = self._path(key)
        directory = os.path.dirname(path)
        for shard_dir in (os.path.dirname(directory), directory):
            if _private_directory(shard_dir):
                self._sync_dir(os.path.dirname(shard_dir))
        tmp = os.path.join(directory, TMP_PREFIX + key)
        try:
            with open(tmp, "wb") as dst:
                os.chmod(tmp, 0o600)
                shutil.copyfileobj(source, dst, _CHUNK)
                dst.flush()
                if self.fsync:
                    os.fsync(dst.fileno())
            os.replace(tmp, path)
            self._sync_dir(directory)
        except BaseException:
            _unlink(tmp)
            raise

    def path(self, key: str) -> str:
        """Where the blob's file is, for a reader on this host (see openStream's localPaths)."""
        return self._path(key)

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {key} not found") from None

    def replace_head(self, key: str, old: bytes, new: bytes) -> None:
        """Overwrite the blob's first bytes `old` with `new` (as long), in place and
        durably; NotFound when the blob is gone or no longer starts with `old`."""
        try:
            fd = os.open(self._path(key), os.O_RDWR)
        except FileNotFoundError:
            raise NotFound(f"blob {key} not found") from None
        try:
            if os.pread(fd, len(old), 0) != old:
                raise NotFound(f"blob {key} changed meanwhile")
            os.pwrite(fd, new, 0)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def size(self, key: str) -> int:
        try:
            return os.stat(self._path(key)).st_size
        except FileNotFoundError:
            raise NotFound(f"blob {key} not found") from None

    def delete(self, key: str) -> None:
        if _valid_key(key):
            _unlink(self._path(key))

    def scan(self) -> Iterator[tuple[str, float | None, int, bool]]:
        """(key, mtime, size, temp) of every file in the shard directories, one directory at a time.

        temp is True for an unfinished write (`.tmp-<key>`), which no item can reference.
        Other names are not ours and are skipped.
        """
        for top in _subdirs(self.root):
            for sub in _subdirs(os.path.join(self.root, top)):
                directory = os.path.join(self.root, top, sub)
                try:
                    it = os.scandir(directory)
                except FileNotFoundError:
                    continue
                with it:
                    for entry in it:
                        temp = entry.name.startswith(TMP_PREFIX)
                        key = entry.name[len(TMP_PREFIX):] if temp else entry.name
                        if not _valid_key(key) or key[:2] != top or key[2:4] != sub:
                            continue
                        try:
                            st = entry.stat(follow_symlinks=False)
                        except FileNotFoundError:  # renamed or removed meanwhile
                            continue
                        yield key, st.st_mtime, st.st_size, temp

    def delete_temp(self, key: str) -> None:
        """Remove the unfinished write `.tmp-<key>`, if it is still there."""
        if _valid_key(key):
            path = self._path(key)
            _unlink(os.path.join(os.path.dirname(path), TMP_PREFIX + key))


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
