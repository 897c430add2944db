"""Blob stores: files and database (SQLite and MariaDB), in the clear and encrypted."""
from __future__ import annotations

import io
import os

import pytest
from harness import mariadb_url, mysql_options

from server.blobs import DatabaseBlobStore, EncryptedBlobStore, FileBlobStore, open_blob_store
from server.blobs.database import CHUNK
from shared.sealed import Keyring, MasterKey
from server.storage import Storage
from shared.config import Config
from shared.errors import NotFound


def Cfg(**values: str) -> Config:
    return Config(values)


@pytest.fixture(scope="module", params=["files", "sqlite", "mariadb", "files-encrypted",
                                        "sqlite-encrypted", "mariadb-encrypted"])
def store(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("blobs-" + request.param)
    kind, _, encrypted = request.param.partition("-")

    def wrapped(backend):
        return EncryptedBlobStore(backend, Keyring(MasterKey(os.urandom(32)))) if encrypted else backend
    if kind == "files":
        yield wrapped(FileBlobStore(str(tmp / "att"), fsync=True))
        return
    if kind == "sqlite":
        url = "sqlite:///" + str(tmp / "store.db")
    else:
        url = mariadb_url(request.getfixturevalue("mariadb_database"))
    st = Storage(url, None)
    st.migrate()
    yield wrapped(DatabaseBlobStore(st.engine))
    st.close()


SIZES = [0, 1, 1000, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17]


@pytest.mark.parametrize("size", SIZES)
def test_put_bytes_roundtrip(store, size):
    data = os.urandom(size)
    key = store.put_bytes(data)
    assert store.size(key) == size
    with store.open(key) as f:
        assert f.read() == data
    store.delete(key)
    with pytest.raises(NotFound):
        store.size(key)
    with pytest.raises(NotFound):
        store.open(key)
    store.delete(key)  # twice is fine


def test_put_file_takes_over_the_file(store, tmp_path):
    data = os.urandom(2 * CHUNK + 5)
    path = tmp_path / "upload.tmp"
    path.write_bytes(data)
    key = store.put_file(str(path))
    assert not path.exists()
    assert store.size(key) == len(data)
    with store.open(key) as f:
        assert f.read() == data


def test_open_is_seekable_and_reads_in_pieces(store):
    data = bytes(range(256)) * (CHUNK // 128 + 3)
    key = store.put_bytes(data)
    with store.open(key) as f:
        assert f.seekable()
        f.seek(CHUNK - 3)
        assert f.read(10) == data[CHUNK - 3:CHUNK + 7]
        assert f.tell() == CHUNK + 7
        f.seek(-5, io.SEEK_END)
        assert f.read() == data[-5:]
        f.seek(0)
        pieces = []
        while piece := f.read(65536):
            pieces.append(piece)
        assert b"".join(pieces) == data
        f.seek(len(data) + 10)
        assert f.read(5) == b""


def test_a_blob_released_while_it_is_read_is_never_read_short(store):
    """A save or delete may release a blob a reader has open: an open file keeps its bytes,
    a database blob whose chunks are gone is NotFound, and neither hands out a short read."""
    data = os.urandom(2 * CHUNK + 5)
    key = store.put_bytes(data)
    with store.open(key) as f:
        head = f.read(CHUNK)
        store.delete(key)
        try:
            rest = f.read()
        except NotFound:
            return
    assert head + rest == data


def test_keys_are_unique(store):
    keys = {store.put_bytes(b"same") for _ in range(20)}
    assert len(keys) == 20


def test_files_layout_and_no_leftovers(tmp_path):
    fs = FileBlobStore(str(tmp_path / "att"), fsync=False)
    key = fs.put_bytes(b"hello")
    assert (tmp_path / "att" / key[:2] / key[2:4] / key).read_bytes() == b"hello"
    leftovers = [n for _, _, files in os.walk(tmp_path / "att") for n in files if n.startswith(".tmp")]
    assert leftovers == []
    for bad in ("../../etc/passwd", "ZZZZZZZZZZ", ""):
        with pytest.raises(NotFound):
            fs.open(bad)
        fs.delete(bad)


def test_file_blobs_are_the_store_users_alone(tmp_path):
    store = FileBlobStore(str(tmp_path / "att"), fsync=False)
    key = store.put_bytes(b"Subject: private\r\n\r\nmail\r\n")
    path = store._path(key)
    for place in (store.root, os.path.dirname(os.path.dirname(path)), os.path.dirname(path), path):
        assert os.stat(place).st_mode & 0o077 == 0, (place, oct(os.stat(place).st_mode))


def test_files_put_file_across_filesystems(tmp_path, monkeypatch):
    fs = FileBlobStore(str(tmp_path / "att"))
    src = tmp_path / "in.tmp"
    src.write_bytes(b"x" * 100)

    def no_rename(a, b):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "rename", no_rename)
    key = fs.put_file(str(src))
    assert fs.open(key).read() == b"x" * 100 and not src.exists()


def test_open_blob_store_from_config(tmp_path, mariadb_database):
    files = open_blob_store(Cfg(), str(tmp_path))
    assert isinstance(files, FileBlobStore) and files.root == str(tmp_path / "attachments")
    assert files.fsync is True
    custom = open_blob_store(Cfg(attachment_path=str(tmp_path / "x"), attachment_files_fsync="no"), "/nope")
    assert custom.root == str(tmp_path / "x") and custom.fsync is False
    st = Storage("sqlite:///" + str(tmp_path / "store.db"), None)
    st.migrate()
    db = open_blob_store(Cfg(attachment_storage="database"), str(tmp_path), st.engine)
    assert isinstance(db, DatabaseBlobStore)
    assert db.open(db.put_bytes(b"abc")).read() == b"abc"
    st.close()
    # Without an engine the store database is opened from the same options.
    Storage(mariadb_url(mariadb_database), None).migrate()
    own = open_blob_store(Cfg(attachment_storage="database", **mysql_options(mariadb_database)), str(tmp_path))
    assert own.size(own.put_bytes(b"12345")) == 5
    with pytest.raises(ValueError):
        open_blob_store(Cfg(attachment_storage="s4"), str(tmp_path))
