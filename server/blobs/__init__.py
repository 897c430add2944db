"""Blob stores for message bodies and calendar objects, chosen by `attachment_storage`."""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, BinaryIO, Protocol

from shared.config import ConfigError

from .database import DatabaseBlobStore
from shared.sealed import Keyring

from .encrypted import EncryptedBlobStore
from .files import FileBlobStore


class BlobStore(Protocol):
    def put_file(self, path: str) -> str: ...
    def put_bytes(self, data: bytes) -> str: ...
    def put_many(self, datas: Sequence[bytes]) -> list[str]: ...
    def open(self, key: str) -> BinaryIO: ...
    def size(self, key: str) -> int: ...
    def delete(self, key: str) -> None: ...


def instrument_blobs(store: Any, backend: str) -> Any:
    from shared.metrics import instrument_blobs as instrument
    return instrument(store, backend)


def open_blob_store(cfg: Any, data_dir: str, engine: Any = None) -> BlobStore:
    """The configured blob store, encrypted when `attachment_encryption_key_file` is set;
    the database kind shares the store database."""
    keyring = Keyring.from_config(cfg)
    store = open_backend(cfg, data_dir, engine)
    kind = "database" if isinstance(store, DatabaseBlobStore) else "files"
    if keyring is not None:
        store = EncryptedBlobStore(store, keyring)
    return instrument_blobs(store, kind)


def open_backend(cfg: Any, data_dir: str, engine: Any = None) -> Any:
    """Where the configured blob store keeps its bytes (sealed ones, with encryption)."""
    kind = cfg.get_choice("attachment_storage")
    if kind == "files":
        path = cfg.get("attachment_path") or os.path.join(data_dir, "attachments")
        return FileBlobStore(path, fsync=cfg.get_bool("attachment_files_fsync"))
    if kind in ("database", "db"):
        if engine is None:
            from server.storage.engine import database_url, make_engine
            engine = make_engine(database_url(cfg, data_dir))
        return DatabaseBlobStore(engine)
    raise ConfigError("attachment_storage", f"expected files or database, got {kind!r}")


def backend_of(store: Any) -> Any:
    """The store that holds the bytes: `store` itself, or what an encrypted store wraps."""
    return getattr(store, "backend", store)


__all__ = ["BlobStore", "FileBlobStore", "DatabaseBlobStore", "EncryptedBlobStore", "open_blob_store",
           "backend_of"]
