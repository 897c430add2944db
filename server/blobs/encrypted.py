"""Blobs encrypted at rest, around any blob store (`attachment_encryption_key_file`),
in the format of shared.sealed.

Blob keys stay the backend's random names, chosen by the backend (`new_key`) before
the data is sealed, so that the seal can name them; they say nothing of the content.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag

from shared.errors import BlobDamaged
from shared.sealed import (CHUNK, Header, Keyring, MasterKey, OpenedKey, DecryptingReader, Sealer,
                           plain_size, read_exactly, read_header, seal)

log = logging.getLogger("groupware.blobs")

# put_file seals files up to this size in memory: one file written, none renamed.
SEAL_IN_MEMORY = 1 << 20


class EncryptedBlobStore:
    """A blob store that seals what it stores in `backend` and opens what it reads.

    The backend must let the caller name a blob (`new_key` and the `key`/`keys`
    arguments of its puts) and, for `rekey`, replace a blob's first bytes
    (`replace_head`). It has no `path()`, which would hand sealed files to readers
    that take them for messages: `sealed_path()` names them, to readers that hold the
    keys (shared.sealed.open_sealed_file)."""

    def __init__(self, backend: Any, keyring: Keyring) -> None:
        self.backend = backend
        self.keyring = keyring
        if hasattr(backend, "path"):
            # For a reader on this host that holds the keys (openStream's sealedPaths).
            self.sealed_path = backend.path

    def put_bytes(self, data: bytes) -> str:
        return self._put_sealed(data)

    def _put_sealed(self, data: bytes) -> str:
        # put_file's small files come here too, not through put_bytes, which the
        # metrics count (shared.metrics.instrument_blobs).
        key = self.backend.new_key()
        return self.backend.put_bytes(seal(self.keyring.current, key, data), key=key)

    def put_many(self, datas: Sequence[bytes]) -> list[str]:
        keys = [self.backend.new_key() for _ in datas]
        sealed = [seal(self.keyring.current, key, data) for key, data in zip(keys, datas)]
        return self.backend.put_many(sealed, keys=keys)

    def put_file(self, path: str) -> str:
        """Seal a finished temp file and hand it to the backend: a small one in memory,
        a big one into a new file beside it, chunk by chunk. The plaintext file is removed."""
        if os.path.getsize(path) <= SEAL_IN_MEMORY:
            with open(path, "rb") as src:
                key = self._put_sealed(src.read())
            _unlink(path)
            return key
        key = self.backend.new_key()
        sealed_path = path + ".sealed"
        try:
            with open(path, "rb") as src, open(sealed_path, "xb") as dst:
                os.fchmod(dst.fileno(), 0o600)
                for piece in self._sealed_pieces(key, src):
                    dst.write(piece)
            stored = self.backend.put_file(sealed_path, key=key)
        except BaseException:
            _unlink(sealed_path)
            raise
        _unlink(path)
        return stored

    def put_keyed(self, key: str, source: BinaryIO) -> None:
        """The plain bytes of `source` sealed under `key` (a blob copied from a store in
        the clear), streamed: one chunk in memory at a time."""
        self.backend.put_keyed(key, _PiecesReader(self._sealed_pieces(key, source)))

    def _sealed_pieces(self, key: str, src: BinaryIO) -> Iterator[bytes]:
        """The header, then each sealed chunk of what `src` holds."""
        sealer = Sealer(self.keyring.current, key)
        yield sealer.header
        data = read_exactly(src, CHUNK)
        while True:
            following = read_exactly(src, CHUNK) if len(data) == CHUNK else b""
            yield sealer.chunk(data, not following)
            if not following:
                return
            data = following

    def open(self, key: str) -> BinaryIO:
        sealed = self.backend.open(key)
        try:
            # The opened blob knows its length: no second look-up (a query, for rows).
            size = self._plain_size(sealed.seek(0, os.SEEK_END), key)
            sealed.seek(0)
            header = read_header(sealed, key)
            try:
                opened = OpenedKey(self.keyring, header, key)
            except BlobDamaged:
                # `blobs rekey` may have replaced the header while we read it: once more.
                sealed.seek(0)
                opened = OpenedKey(self.keyring, read_header(sealed, key), key)
        except BlobDamaged as exc:
            sealed.close()
            log.error("blob damaged: %s", exc.message)
            raise
        except BaseException:
            sealed.close()
            raise
        return DecryptingReader(sealed, opened, size)  # type: ignore[return-value]

    def size(self, key: str) -> int:
        try:
            return self._plain_size(self.backend.size(key), key)
        except BlobDamaged as exc:
            log.error("blob damaged: %s", exc.message)
            raise

    @staticmethod
    def _plain_size(sealed: int, key: str) -> int:
        size = plain_size(sealed)
        if size is None:
            raise BlobDamaged(f"blob {key}: its length fits no encrypted blob (truncated?)")
        return size

    def delete(self, key: str) -> None:
        self.backend.delete(key)

    def scan(self, *args: Any, **kwargs: Any) -> Iterator[tuple[str, float | None, int | None, bool]]:
        """The backend's listing with the plain sizes, as size() tells them (None for a
        length no sealed blob has: size() reports the damage)."""
        for key, mtime, size, temp in self.backend.scan(*args, **kwargs):
            yield key, mtime, plain_size(size) if size is not None and not temp else size, temp

    def delete_temp(self, key: str) -> None:
        self.backend.delete_temp(key)

    def rewrap(self, key: str, target: MasterKey) -> bool:
        """Rewrap the blob's data key under `target`; False when it already was.
        Only the header changes; the chunks stay as they are."""
        with self.backend.open(key) as sealed:
            header = read_header(sealed, key)
        if header.key_id == target.id:
            return False
        opened_master = self.keyring.by_id.get(header.key_id)
        if opened_master is None:
            raise BlobDamaged(f"blob {key} is sealed with master key {header.key_id.hex()}, which is not configured")
        try:
            data_key = opened_master.unwrap(header.wrap_nonce, header.wrapped, key)
        except InvalidTag:
            raise BlobDamaged(f"blob {key}: its data key does not unwrap") from None
        self.backend.replace_head(key, header.raw, Header.build(target, data_key, header.prefix, key))
        return True


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class _PiecesReader:
    """read(n) over an iterator of byte strings (for a backend's put_keyed)."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._buffer = bytearray()

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buffer) < n:
            piece = next(self._pieces, None)
            if piece is None:
                break
            self._buffer += piece
        size = len(self._buffer) if n < 0 else min(n, len(self._buffer))
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data
