"""`groupware backup DEST` and `groupware restore SRC` for the embedded default: SQLite
and blob files (or blobs in the database) under the data directory.

The database is copied with SQLite's online backup API, which reads a consistent
snapshot while the server goes on writing. Blob files are written once under random
names before the row that names them commits, and never changed, so the backup copies
them in two passes: every file there is before the snapshot (the bulk, while writes
go on), then the files that rows of the snapshot name and the first pass missed.
Files no row of the snapshot names are not kept. A file named by the snapshot that is
gone by the second pass belonged to a message stored and deleted while the backup
ran; the backup says so and fails, and running it again gives a complete one. An
interrupted backup (no manifest yet) is carried on by the same command.

MariaDB or MySQL is backed up with its own tools (README, "Backup and restore").
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import time
from typing import Any

from server.blobs import FileBlobStore, backend_of, open_blob_store
from server.storage import Storage
from server.storage.engine import sqlite_path
from shared.config import Config

from .progress import Progress

MANIFEST = "manifest.json"
DATABASE = "store.db"
BLOBS = "attachments"
FORMAT = 1
PAGES_PER_STEP = 1024


class BackupError(Exception):
    pass


def _embedded(cfg: Config) -> None:
    if cfg.get("database_engine").lower() != "sqlite":
        raise BackupError("database_engine is not sqlite: back up MariaDB/MySQL with mariadb-dump "
                          "--single-transaction or mariabackup, and the blob directory (see the README)")


def _blob_path(root: str, key: str) -> str:
    return os.path.join(root, key[:2], key[2:4], key)


def _copy(src: str, dst: str) -> bool:
    """Copy one blob file; False when it is gone. A copy already there from an interrupted
    run is kept when its size matches (blob files never change once written)."""
    try:
        size = os.stat(src).st_size
    except FileNotFoundError:
        return False
    try:
        if os.stat(dst).st_size == size:
            return True
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(dst), mode=0o700, exist_ok=True)
    try:
        shutil.copyfile(src, dst + ".partial")
    except FileNotFoundError:
        return False
    os.replace(dst + ".partial", dst)
    return True


def _snapshot(source: str, target: str, progress_label: str) -> None:
    """SQLite's online backup of `source` into the new file `target`."""
    src = sqlite3.connect(source, timeout=60)
    dst = sqlite3.connect(target)
    try:
        with Progress(progress_label, None, unit="page") as progress:
            def step(status: int, remaining: int, total: int) -> None:
                progress.set_total(total)
                progress.update(max(0, total - remaining - progress.done))
            src.backup(dst, pages=PAGES_PER_STEP, progress=step)
    finally:
        dst.close()
        src.close()


def backup(cfg: Config, dest: str) -> dict[str, Any]:
    _embedded(cfg)
    database = sqlite_path(cfg, cfg.data_dir)
    if not os.path.exists(database):
        raise BackupError(f"no database at {database}")
    if os.path.exists(os.path.join(dest, MANIFEST)) or os.path.exists(os.path.join(dest, DATABASE)):
        raise BackupError(f"{dest} holds a backup already; give a new directory")
    # A DEST without its manifest is an interrupted backup: carried on, its files reused.
    os.makedirs(dest, mode=0o700, exist_ok=True)
    partial = os.path.join(dest, DATABASE + ".partial")
    # Blob files are copied as stored: sealed ones stay sealed in the backup.
    store = backend_of(open_blob_store(cfg, cfg.data_dir))
    files = isinstance(store, FileBlobStore)
    copied: set[str] = set()
    blob_root = os.path.join(dest, BLOBS)
    if files:
        # Pass 1: everything there now, while the server goes on.
        with Progress("backup blobs", None, unit="file") as progress:
            for key, _mtime, _size, temp in store.scan():
                if not temp and _copy(store.path(key), _blob_path(blob_root, key)):
                    copied.add(key)
                    progress.update()
    _snapshot(database, partial, "backup database")
    missing: list[str] = []
    kept = 0
    if files:
        snapshot = Storage("sqlite:///" + os.path.abspath(partial))
        try:
            wanted = snapshot.referenced_blob_keys()
        finally:
            snapshot.close()
        # Pass 2: what the snapshot names and pass 1 did not see.
        with Progress("backup blobs written meanwhile", len(wanted - copied), unit="file") as progress:
            for key in sorted(wanted - copied):
                if _copy(store.path(key), _blob_path(blob_root, key)):
                    copied.add(key)
                else:
                    missing.append(key)
                progress.update()
        for key in copied - wanted:
            os.unlink(_blob_path(blob_root, key))
        kept = len(copied & wanted)
    os.replace(partial, os.path.join(dest, DATABASE))
    manifest = {"format": FORMAT, "created": int(time.time()), "database": DATABASE,
                "blobs": BLOBS if files else None, "blob_files": kept, "missing_blobs": len(missing)}
    with open(os.path.join(dest, MANIFEST), "w", encoding="utf-8") as fp:
        json.dump(manifest, fp, indent=1)
    if missing:
        raise BackupError(f"{len(missing)} blob files named by the snapshot were deleted while the "
                          "backup ran (messages stored and removed meanwhile); run the backup again")
    return manifest


def _server_running(cfg: Config) -> bool:
    path = cfg.get("server_socket")
    if not path or not os.path.exists(path):
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def restore(cfg: Config, src: str, force: bool = False) -> dict[str, Any]:
    """Put a backup in place of the configured database and blob directory. The server
    must be stopped; an existing database is kept beside as `<name>.before-restore`."""
    _embedded(cfg)
    try:
        with open(os.path.join(src, MANIFEST), encoding="utf-8") as fp:
            manifest = json.load(fp)
    except FileNotFoundError:
        raise BackupError(f"{src} is not a backup (no {MANIFEST})") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{src}: unknown backup format {manifest.get('format')!r}")
    if _server_running(cfg):
        raise BackupError("the store server is running on server_socket; stop it before a restore")
    database = sqlite_path(cfg, cfg.data_dir)
    store = backend_of(open_blob_store(cfg, cfg.data_dir))
    if manifest.get("blobs") and not isinstance(store, FileBlobStore):
        raise BackupError("the backup holds blob files but attachment_storage is not files")
    if os.path.exists(database):
        if not force:
            raise BackupError(f"{database} exists; --force replaces it (it is kept as "
                              f"{os.path.basename(database)}.before-restore)")
        os.replace(database, database + ".before-restore")
        for suffix in ("-wal", "-shm"):
            if os.path.exists(database + suffix):
                os.replace(database + suffix, database + ".before-restore" + suffix)
    os.makedirs(os.path.dirname(database), exist_ok=True)
    partial = database + ".partial"
    _snapshot(os.path.join(src, manifest["database"]), partial, "restore database")
    restored = 0
    if manifest.get("blobs"):
        source_root = os.path.join(src, manifest["blobs"])
        with Progress("restore blobs", manifest.get("blob_files"), unit="file") as progress:
            for parent, _dirs, names in os.walk(source_root):
                for name in names:
                    if "." in name:
                        continue  # a copy an interrupted backup left unfinished
                    target = _blob_path(store.root, name)
                    if not os.path.exists(target):
                        _copy(os.path.join(parent, name), target)
                    restored += 1
                    progress.update()
    os.replace(partial, database)
    return {"database": database, "blob_files": restored}
