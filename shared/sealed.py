"""The sealed format of blobs encrypted at rest (`attachment_encryption_key_file`).

Envelope encryption: every blob gets a random 256-bit data key, stored in the blob's
header wrapped (AES-256-GCM) by a key derived from the company's master key, and
named there by the master key's id, so several master keys can be read at once
while `groupware blobs rekey` rewraps the headers under a new one; the data itself
is never rewritten.

The data is sealed with AES-256-GCM in chunks of `CHUNK` bytes, the layout of
Tink's streaming AEAD: a chunk's nonce is the blob's random prefix, the chunk's
index and a last-chunk flag, and its associated data names the blob's key, the
index and the flag too. So a ranged read decrypts only the chunks it touches, and
reordered, dropped, truncated, altered chunks and blobs swapped under each other's
names all fail authentication: `BlobDamaged`, never garbage bytes.

    header  MAGIC(4) version(1) key id(8) wrap nonce(12) wrapped data key(48) nonce prefix(7)
    chunks  ciphertext + tag(16) each, the last one shorter (an empty blob has one empty chunk)

A blob's name (its key in the blob store, also its file name) is sealed in, so the
store chooses it before it seals. The store server seals and opens blobs
(server.blobs.encrypted); a gateway on the store's host that holds the keys opens
the sealed files the store names for it (shared.localstream).
"""
from __future__ import annotations

import base64
import binascii
import errno
import logging
import os
import stat
import struct
from collections.abc import Sequence
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.config import ConfigError
from shared.errors import BlobDamaged
from shared.seekable import SeekableReader

log = logging.getLogger("groupware.blobs")

MAGIC = b"GWBE"
VERSION = 1
CHUNK = 64 * 1024
TAG = 16
KEY_BYTES = 32
_KEY_ID = 8
_WRAP_NONCE = 12
_WRAPPED = KEY_BYTES + TAG
_PREFIX = 7
HEADER = len(MAGIC) + 1 + _KEY_ID + _WRAP_NONCE + _WRAPPED + _PREFIX
_SEALED_CHUNK = CHUNK + TAG
_NOWAIT = getattr(os, "RWF_NOWAIT", 0)


def _derive(master: bytes, purpose: bytes, length: int = KEY_BYTES) -> bytes:
    return HKDF(hashes.SHA256(), length, salt=None, info=b"groupware blobs " + purpose).derive(master)


class MasterKey:
    """A company master key: 32 random bytes, used only through keys derived from it."""

    def __init__(self, secret: bytes, source: str = "") -> None:
        if len(secret) != KEY_BYTES:
            raise ValueError(f"a master key is {KEY_BYTES} bytes, not {len(secret)}")
        self.id = _derive(secret, b"key id", _KEY_ID)
        self._wrapping = AESGCM(_derive(secret, b"key wrap"))
        self.source = source

    def wrap(self, data_key: bytes, name: str) -> tuple[bytes, bytes]:
        nonce = os.urandom(_WRAP_NONCE)
        return nonce, self._wrapping.encrypt(nonce, data_key, self._wrap_aad(name))

    def unwrap(self, nonce: bytes, wrapped: bytes, name: str) -> bytes:
        return self._wrapping.decrypt(nonce, wrapped, self._wrap_aad(name))

    def _wrap_aad(self, name: str) -> bytes:
        return MAGIC + bytes([VERSION]) + self.id + name.encode("ascii")


def parse_key_file(path: str, option: str) -> MasterKey:
    """The master key in `path`: 32 raw bytes, or them as hex or base64 text.

    A key file that every user can read is refused: the key is the whole protection."""
    try:
        st = os.stat(path)
        with open(path, "rb") as fp:
            content = fp.read(4096)
    except OSError as exc:
        raise ConfigError(option, f"cannot read {path}: {exc.strerror}") from None
    if st.st_mode & stat.S_IRWXO:
        raise ConfigError(option, f"{path} is readable by other users (mode {stat.S_IMODE(st.st_mode):04o}); "
                                  "chmod 600 it (or 640, for a group of the store's user)")
    secret = content if len(content) == KEY_BYTES else _decode_text_key(content.strip())
    if secret is None:
        raise ConfigError(option, f"{path} holds no {KEY_BYTES}-byte key (raw, hex or base64); "
                                  "make one with `groupware blobs genkey FILE`")
    return MasterKey(secret, path)


def _decode_text_key(text: bytes) -> bytes | None:
    for decode in (binascii.unhexlify, lambda t: base64.b64decode(t, validate=True)):
        try:
            secret = decode(text)
        except (ValueError, binascii.Error):
            continue
        if len(secret) == KEY_BYTES:
            return secret
    return None


def write_key_file(path: str) -> MasterKey:
    """A new random master key, as base64 text, in a new file only its owner can read."""
    secret = os.urandom(KEY_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fp:
        fp.write(base64.b64encode(secret).decode("ascii") + "\n")
        fp.flush()
        os.fsync(fp.fileno())
    return MasterKey(secret, path)


class Keyring:
    """The key new blobs are sealed with, and every key blobs may be read with."""

    def __init__(self, current: MasterKey, others: Sequence[MasterKey] = ()) -> None:
        self.current = current
        self.by_id = {key.id: key for key in (*others, current)}

    @classmethod
    def from_config(cls, cfg: Any) -> "Keyring | None":
        path = cfg.get("attachment_encryption_key_file")
        if not path:
            return None
        current = parse_key_file(path, "attachment_encryption_key_file")
        others = [parse_key_file(p, "attachment_encryption_old_key_files")
                  for p in cfg.get_list("attachment_encryption_old_key_files")]
        return cls(current, others)


# -- the sealed format --------------------------------------------------------------

def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", index, last)


def _chunk_aad(name: str, index: int, last: bool) -> bytes:
    return MAGIC + name.encode("ascii") + struct.pack(">QB", index, last)


def sealed_size(size: int) -> int:
    chunks = max(1, -(-size // CHUNK))
    return HEADER + size + chunks * TAG


def plain_size(sealed: int) -> int | None:
    """The plaintext size of a sealed blob of `sealed` bytes; None for a size no blob has."""
    body = sealed - HEADER
    if body < TAG:
        return None
    chunks = -(-body // _SEALED_CHUNK)
    size = body - chunks * TAG
    return size if size >= 0 and sealed_size(size) == sealed else None


class Header:
    def __init__(self, raw: bytes) -> None:
        if len(raw) != HEADER or raw[:4] != MAGIC or raw[4] != VERSION:
            raise ValueError("not an encrypted blob header")
        self.raw = raw
        at = 5
        self.key_id = raw[at:at + _KEY_ID]
        at += _KEY_ID
        self.wrap_nonce = raw[at:at + _WRAP_NONCE]
        at += _WRAP_NONCE
        self.wrapped = raw[at:at + _WRAPPED]
        self.prefix = raw[at + _WRAPPED:]

    @staticmethod
    def build(master: MasterKey, data_key: bytes, prefix: bytes, name: str) -> bytes:
        nonce, wrapped = master.wrap(data_key, name)
        return MAGIC + bytes([VERSION]) + master.id + nonce + wrapped + prefix


class Sealer:
    """Seals one blob's chunks in order."""

    def __init__(self, master: MasterKey, name: str) -> None:
        data_key = os.urandom(KEY_BYTES)
        self.prefix = os.urandom(_PREFIX)
        self.header = Header.build(master, data_key, self.prefix, name)
        self.aead = AESGCM(data_key)
        self.name = name
        self.index = 0

    def chunk(self, data: bytes, last: bool) -> bytes:
        sealed = self.aead.encrypt(_nonce(self.prefix, self.index, last), data,
                                   _chunk_aad(self.name, self.index, last))
        self.index += 1
        return sealed


def seal(master: MasterKey, name: str, data: bytes) -> bytes:
    sealer = Sealer(master, name)
    view = memoryview(data)
    count = max(1, -(-len(view) // CHUNK))
    parts = [sealer.header]
    for i in range(count):
        parts.append(sealer.chunk(view[i * CHUNK:(i + 1) * CHUNK], i == count - 1))
    return b"".join(parts)


class OpenedKey:
    """A blob's unwrapped data key, for reading its chunks."""

    def __init__(self, keyring: Keyring, header: Header, name: str) -> None:
        master = keyring.by_id.get(header.key_id)
        if master is None:
            raise BlobDamaged(f"blob {name} is sealed with master key {header.key_id.hex()}, which is not configured")
        try:
            self.aead = AESGCM(master.unwrap(header.wrap_nonce, header.wrapped, name))
        except InvalidTag:
            raise BlobDamaged(f"blob {name}: its data key does not unwrap (altered, or stored under another name)") from None
        self.prefix = header.prefix
        self.name = name

    def open_chunk_into(self, index: int, last: bool, sealed: Any, out: memoryview) -> None:
        """Decrypt one sealed chunk into `out`, which is exactly as long as its plaintext."""
        try:
            self.aead.decrypt_into(_nonce(self.prefix, index, last), sealed, _chunk_aad(self.name, index, last), out)
        except InvalidTag:
            raise BlobDamaged(f"blob {self.name}: chunk {index} fails authentication "
                              "(altered, truncated, reordered or swapped)") from None


class DecryptingReader(SeekableReader):
    """Seekable plaintext view of a sealed blob; a read decrypts only the chunks it covers,
    all of them from one read of the sealed bytes into one buffer (the last one stays
    decrypted for the next small read). A damaged chunk is logged and raised as
    BlobDamaged.

    Has no fileno(), so readers never take its sealed bytes for the plaintext; `pread`
    reads at an offset, and, from a sealed file, can take only what the page cache holds.

    Not thread-safe: one read at a time."""

    def __init__(self, sealed: BinaryIO, opened: OpenedKey, size: int) -> None:
        self._sealed = sealed
        try:
            self._fd: int | None = sealed.fileno()
        except (AttributeError, OSError):
            self._fd = None
        self._opened = opened
        self._size = size
        self._chunks = max(1, -(-size // CHUNK))
        self._pos = 0
        self._cached: tuple[int, memoryview] | None = None  # (index, plaintext) of a chunk read last

    def pread(self, count: int, offset: int, blocking: bool = True) -> bytes:
        """Up to `count` plain bytes from `offset` (fewer only at the end). Not `blocking`:
        what the page cache holds of the sealed file, maybe b"", never waiting on the disk
        (a sealed blob that is no file gives b"": read it blocking)."""
        count = max(0, min(count, self._size - offset))
        if not count:
            return b""
        index, inner = divmod(offset, CHUNK)
        last = (offset + count - 1) // CHUNK
        cached = self._cached
        head = cached[1][inner:inner + count] if cached is not None and cached[0] == index else None
        if head is not None and (len(head) == count or index == last):
            return bytes(head)
        try:
            if head is None:
                return bytes(self._decrypt(index, last, blocking)[inner:inner + count])
            return b"".join((head, self._decrypt(index + 1, last, blocking)[:count - len(head)]))
        except BlobDamaged as exc:
            log.error("blob damaged: %s", exc.message)
            raise

    def _decrypt(self, first: int, last: int, blocking: bool) -> memoryview:
        """Chunks `first` to `last`, decrypted into one buffer (when not `blocking`, only
        those the page cache holds in full: maybe none)."""
        start = HEADER + first * _SEALED_CHUNK
        final = last == self._chunks - 1
        want = (last - first) * _SEALED_CHUNK + (self._size - last * CHUNK if final else CHUNK) + TAG
        sealed = memoryview(bytearray(want))
        if self._fd is not None:
            got = _pread_into(self._fd, sealed, start, blocking)
        elif not blocking:
            return memoryview(b"")
        else:
            self._sealed.seek(start)
            got = _read_into(self._sealed, sealed)
        if got < want:
            if blocking:
                raise BlobDamaged(f"blob {self._opened.name}: chunk {first + got // _SEALED_CHUNK} is cut short")
            # A read from the cache that stopped short: the whole chunks it has.
            last, final = first + got // _SEALED_CHUNK - 1, False
            if last < first:
                return memoryview(b"")
        plain = memoryview(bytearray((last - first) * CHUNK + (self._size - last * CHUNK if final else CHUNK)))
        for index in range(first, last + 1):
            at = (index - first) * CHUNK
            end = min(at + CHUNK, len(plain))
            at_sealed = (index - first) * _SEALED_CHUNK
            self._opened.open_chunk_into(index, index == self._chunks - 1,
                                         sealed[at_sealed:at_sealed + end - at + TAG], plain[at:end])
        self._cached = (last, plain[(last - first) * CHUNK:])
        return plain

    def readinto(self, buf: Any) -> int:
        data = self.pread(len(memoryview(buf)), self._pos)
        memoryview(buf).cast("B")[:len(data)] = data
        self._pos += len(data)
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = max(0, self._size - self._pos)
        data = self.pread(size, self._pos)
        self._pos += len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def close(self) -> None:
        if not self.closed:
            self._sealed.close()
        super().close()


def _pread_into(fd: int, buf: memoryview, offset: int, blocking: bool) -> int:
    """Bytes read into `buf` from `offset` of `fd`; not `blocking`: only what the page
    cache holds (0 when it holds nothing there, or the file system cannot tell)."""
    if not blocking and not _NOWAIT:
        return 0
    done = 0
    while done < len(buf):
        try:
            got = os.preadv(fd, [buf[done:]], offset + done, 0 if blocking else _NOWAIT)
        except OSError as exc:
            if not blocking and exc.errno in (errno.EAGAIN, errno.EOPNOTSUPP, errno.EINVAL):
                break
            raise
        if not got:
            break
        done += got
        if not blocking:
            break
    return done


def _read_into(fp: BinaryIO, buf: memoryview) -> int:
    done = 0
    while done < len(buf):
        got = fp.readinto(buf[done:])  # type: ignore[attr-defined]
        if not got:
            break
        done += got
    return done


def read_exactly(fp: BinaryIO, count: int) -> bytes:
    parts = []
    while count > 0:
        data = fp.read(count)
        if not data:
            break
        parts.append(data)
        count -= len(data)
    return b"".join(parts)


def open_sealed_file(path: str, keyring: Keyring) -> DecryptingReader:
    """The plaintext of the sealed blob file `path` (named by its blob key)."""
    fp = open(path, "rb", buffering=0)  # read at offsets: no buffer of its own
    try:
        name = os.path.basename(path)
        size = plain_size(os.fstat(fp.fileno()).st_size)
        if size is None:
            raise BlobDamaged(f"blob {name}: its length fits no encrypted blob (truncated?)")
        return DecryptingReader(fp, OpenedKey(keyring, read_header(fp, name), name), size)
    except BaseException:
        fp.close()
        raise


def read_header(sealed: BinaryIO, name: str) -> Header:
    raw = read_exactly(sealed, HEADER)
    try:
        return Header(raw)
    except ValueError:
        raise BlobDamaged(f"blob {name}: no valid encryption header") from None
