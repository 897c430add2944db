"""Blob stores for message bodies and calendar objects, chosen by `attachment_storage`."""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, BinaryIO, Protocol

from shared.config import ConfigError

from .database import DatabaseBlobStore
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
    """The configured blob store; the database kind shares the store database."""
    kind = cfg.get_choice("attachment_storage")
    if kind == "files":
        path = cfg.get("attachment_path") or os.path.join(data_dir, "attachments")
        return instrument_blobs(FileBlobStore(path, fsync=cfg.get_bool("attachment_files_fsync")), "files")
    if kind in ("database", "db"):
        if engine is None:
            from server.storage.engine import database_url, make_engine
            engine = make_engine(database_url(cfg, data_dir))
        return instrument_blobs(DatabaseBlobStore(engine), "database")
    raise ConfigError("attachment_storage", f"expected files or database, got {kind!r}")


__all__ = ["BlobStore", "FileBlobStore", "DatabaseBlobStore", "open_blob_store"]
