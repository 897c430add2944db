"""Blob stores: files, database (SQLite and MariaDB), in the clear and encrypted, and S3
(a real S3 API on loopback)."""
from __future__ import annotations

import io
import os

import pytest
from harness import mariadb_url, mysql_options

from server.blobs import (DatabaseBlobStore, EncryptedBlobStore, FileBlobStore, MovingBlobStore, open_backend,
                          open_blob_store)
from server.blobs.database import CHUNK
from server.blobs.s3 import HEAD_WINDOW, S3BlobStore
from shared.sealed import Keyring, MasterKey
from server.storage import Storage
from shared.config import Config
from shared.errors import NotFound, Unavailable


def Cfg(**values: str) -> Config:
    return Config(values)


def s3_store(s3_server, **options: str) -> S3BlobStore:
    return open_backend(Cfg(**s3_server.options(s3_server.new_bucket(), **options)), "/nonexistent")


@pytest.fixture(scope="module", params=["files", "sqlite", "mariadb", "s3", "files-encrypted",
                                        "sqlite-encrypted", "mariadb-encrypted", "s3-encrypted"])
def store(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("blobs-" + request.param)
    kind, _, encrypted = request.param.partition("-")

    def wrapped(backend):
        return EncryptedBlobStore(backend, Keyring(MasterKey(os.urandom(32)))) if encrypted else backend
    if kind == "files":
        yield wrapped(FileBlobStore(str(tmp / "att"), fsync=True))
        return
    if kind == "s3":
        # Parts of the smallest size S3 allows, so that a few megabytes make a multipart upload.
        yield wrapped(s3_store(request.getfixturevalue("s3_server"), attachment_s3_part_size="5M"))
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
        store.open(key).read()  # S3 tells at the first read
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


def test_put_many_and_put_keyed(store):
    datas = [os.urandom(n) for n in (0, 10, CHUNK + 3)]
    keys = store.put_many(datas)
    assert len(set(keys)) == 3
    for key, data in zip(keys, datas):
        assert store.open(key).read() == data
    # A copy from another store keeps its key; a second copy replaces the first whole.
    key = "0123456789abcdef0123456789abcdef"
    store.put_keyed(key, io.BytesIO(b"first attempt, longer than the second"))
    big = os.urandom(6 * CHUNK + 1)
    store.put_keyed(key, io.BytesIO(big))
    assert store.size(key) == len(big)
    assert store.open(key).read() == big
    store.put_keyed(key, io.BytesIO(b"second"))
    assert store.open(key).read() == b"second"
    store.delete(key)


def test_scan_lists_every_blob(store):
    key = store.put_bytes(b"listed")
    found = {entry[0]: entry for entry in store.scan()}
    assert key in found and not found[key][3]


def test_s3_big_blobs_go_up_in_parts_and_reads_are_ranged(s3_server, tmp_path):
    store = s3_store(s3_server, attachment_s3_part_size="5M")
    sent: list[tuple[str, dict]] = []

    def record(params, model, **_):
        sent.append((model.name, dict(params.get("headers", {}))))
    store.client.meta.events.register("before-call.s3", record)
    data = os.urandom(12 * CHUNK + 7)
    path = tmp_path / "upload.tmp"
    path.write_bytes(data)
    key = store.put_file(str(path))
    assert [name for name, _ in sent] == ["CreateMultipartUpload", "UploadPart", "UploadPart", "UploadPart",
                                         "CompleteMultipartUpload"]
    assert not path.exists()
    sent.clear()
    # Reads are signed GETs outside boto3's calls: their requests are listed here.
    request = store._reads.get

    def recorded(target, headers):
        sent.append(("GET", dict(headers)))
        return request(target, headers)
    store._reads.get = recorded
    with store.open(key) as f:
        f.seek(7 * CHUNK)
        assert f.read(100) == data[7 * CHUNK:7 * CHUNK + 100]
    ranges = [headers.get("range") for name, headers in sent if name == "GET"]
    assert ranges == [f"bytes=0-{HEAD_WINDOW - 1}", f"bytes={7 * CHUNK}-{7 * CHUNK + HEAD_WINDOW - 1}"]
    # Nothing else of the object was fetched.
    assert all(name == "GET" for name, _ in sent)


@pytest.mark.parametrize("options", [{}, {"attachment_s3_uripath": "mail box+1/"},
                                     {"attachment_s3_uristyle": "virtual", "attachment_s3_region": "eu-central-1"}])
def test_s3_reads_are_signed_as_botocore_signs(s3_server, options):
    """A read's signature, made outside boto3, is the one botocore makes for the same GET."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest

    store = s3_store(s3_server, **options)
    signer = store._signer
    name = store._name("0f" * 16)
    headers = signer.headers(name, "bytes=0-99")
    request = AWSRequest(method="GET", url=signer.base.rstrip("/") + signer.target(name)[len(signer.path) - 1:],
                         headers={k: v for k, v in headers.items() if k not in ("Authorization", "host")})
    request.context["timestamp"] = headers["x-amz-date"]
    botocore_signer = S3SigV4Auth(store.client._request_signer._credentials, "s3", signer.region)
    canonical = botocore_signer.canonical_request(request)
    expected = botocore_signer.signature(botocore_signer.string_to_sign(request, canonical), request)
    assert headers["Authorization"].endswith("Signature=" + expected)
    assert f"/{signer.region}/s3/aws4_request" in headers["Authorization"]


def test_s3_stream_reads_take_arrived_objects_without_waiting(s3_server):
    from shared.spans import Layout, SpanReader
    store = s3_store(s3_server)
    datas = [os.urandom(n) for n in (10_000, 20_000)]
    segments = list(zip(store.put_many(datas), (10_000, 20_000)))
    whole = b"".join(datas)
    reader = SpanReader(store.open, Layout(segments), 0, len(whole))
    assert reader.read_cached(1000) == b""  # nothing opened yet
    assert reader.read(1000) == whole[:1000]  # opened both: the second one's GET is on its way
    assert reader.open[1].pread(5, 0) == datas[1][:5]  # waits for it
    assert reader.read_cached(1 << 20) == whole[1000:]
    reader.close()


def test_s3_unreachable_or_refusing_is_unavailable(s3_server):
    from s3_server import S3Server

    gone = S3Server()  # a port nobody listens on
    store = open_blob_store(Cfg(**gone.options("any", attachment_s3_attempts="2")), "/nonexistent")
    for call in (lambda: store.put_bytes(b"x"), lambda: store.open("00" * 16).read(), lambda: store.size("00" * 16)):
        with pytest.raises(Unavailable):
            call()
    missing_bucket = open_blob_store(Cfg(**s3_server.options("no-such-bucket")), "/nonexistent")
    with pytest.raises(Unavailable):
        missing_bucket.put_bytes(b"x")


def test_moving_store_reads_what_has_not_moved_yet(tmp_path, s3_server):
    old = FileBlobStore(str(tmp_path / "att"), fsync=False)
    key = old.put_bytes(b"still in the files")
    options = s3_server.options(s3_server.new_bucket(), attachment_storage_previous="files",
                                attachment_path=str(tmp_path / "att"))
    store = open_blob_store(Cfg(**options), str(tmp_path))
    assert isinstance(store, MovingBlobStore)
    assert store.open(key).read() == b"still in the files" and store.size(key) == 18
    new = store.put_bytes(b"new")
    assert isinstance(store.current, S3BlobStore) and store.current.open(new).read() == b"new"
    store.delete(key)
    with pytest.raises(NotFound):
        old.size(key)


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
    with pytest.raises(ValueError, match="attachment_s3_bucketname"):
        open_blob_store(Cfg(attachment_storage="s3"), str(tmp_path))
