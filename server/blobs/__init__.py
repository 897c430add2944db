"""Blob stores for message bodies and calendar objects, chosen by `attachment_storage`."""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, BinaryIO, Protocol

from shared.config import ConfigError

from shared.sealed import Keyring

from .database import DatabaseBlobStore
from .encrypted import EncryptedBlobStore
from .files import FileBlobStore
from .moving import MovingBlobStore

KINDS = ("files", "database", "s3")


class BlobStore(Protocol):
    def put_file(self, path: str) -> str: ...
    def put_bytes(self, data: bytes) -> str: ...
    def put_many(self, datas: Sequence[bytes]) -> list[str]: ...
    # The bytes of a blob copied from another store, under its key there.
    def put_keyed(self, key: str, source: BinaryIO) -> None: ...
    # NotFound for a missing blob, from open() or at the latest from the first read.
    def open(self, key: str) -> BinaryIO: ...
    def size(self, key: str) -> int: ...
    def delete(self, key: str) -> None: ...


def instrument_blobs(store: Any, backend: str) -> Any:
    from shared.metrics import instrument_blobs as instrument
    return instrument(store, backend)


def store_kind(kind: str) -> str:
    """The canonical name of an `attachment_storage` value ("db" is "database")."""
    return "database" if kind == "db" else kind


def open_store_of_kind(cfg: Any, kind: str, data_dir: str, engine: Any = None) -> Any:
    """Where blobs of one kind of store keep their bytes, configured by its `attachment_*`
    options (sealed ones, with encryption)."""
    kind = store_kind(kind)
    if kind == "files":
        path = cfg.get("attachment_path") or os.path.join(data_dir, "attachments")
        return FileBlobStore(path, fsync=cfg.get_bool("attachment_files_fsync"))
    if kind == "database":
        if engine is None:
            from server.storage.engine import database_url, make_engine
            engine = make_engine(database_url(cfg, data_dir))
        return DatabaseBlobStore(engine)
    if kind == "s3":
        from .s3 import S3BlobStore
        return S3BlobStore(s3_settings(cfg))
    raise ConfigError("attachment_storage", f"expected files, database or s3, got {kind!r}")


def s3_settings(cfg: Any) -> Any:
    from .s3 import S3Settings

    bucket = cfg.get("attachment_s3_bucketname")
    if not bucket:
        raise ConfigError("attachment_s3_bucketname", "empty: attachment_storage = s3 needs a bucket")
    path = cfg.get("attachment_s3_uripath").strip("/")
    return S3Settings(
        bucket=bucket, hostname=cfg.get("attachment_s3_hostname"),
        protocol=cfg.get_choice("attachment_s3_protocol"),
        prefix=f"{path}/" if path else "",
        uristyle=cfg.get_choice("attachment_s3_uristyle"),
        access_key_id=cfg.get("attachment_s3_accesskeyid"),
        secret_access_key=cfg.get("attachment_s3_secretaccesskey"),
        region=cfg.get("attachment_s3_region"), attempts=cfg.get_int("attachment_s3_attempts"),
        timeout=cfg.get_seconds("attachment_s3_timeout"), part_size=cfg.get_size("attachment_s3_part_size"),
        connections=max(32, cfg.get_int("threads") * 2))


def open_backend(cfg: Any, data_dir: str, engine: Any = None) -> Any:
    """Where the configured blob store keeps its bytes (sealed ones, with encryption)."""
    return open_store_of_kind(cfg, cfg.get_choice("attachment_storage"), data_dir, engine)


def open_blob_store(cfg: Any, data_dir: str, engine: Any = None) -> BlobStore:
    """The configured blob store, encrypted when `attachment_encryption_key_file` is set;
    the database kind shares the store database. While `attachment_storage_previous` names
    another kind, blobs not moved yet are read from there."""
    keyring = Keyring.from_config(cfg)

    def opened(kind: str) -> Any:
        store = open_store_of_kind(cfg, kind, data_dir, engine)
        return EncryptedBlobStore(store, keyring) if keyring is not None else store
    kind = store_kind(cfg.get_choice("attachment_storage"))
    store = instrument_blobs(opened(kind), kind)
    previous = store_kind(cfg.get_choice("attachment_storage_previous"))
    if previous and previous != kind:
        return MovingBlobStore(store, opened(previous))
    return store


def backend_of(store: Any) -> Any:
    """The store that holds the bytes: `store` itself, or what an encrypted store wraps."""
    return getattr(store, "backend", store)


__all__ = ["BlobStore", "FileBlobStore", "DatabaseBlobStore", "EncryptedBlobStore", "MovingBlobStore", "KINDS",
           "open_blob_store", "open_backend", "open_store_of_kind", "store_kind", "backend_of"]
