"""Encrypted blobs: the sealed format catches every kind of damage, master keys from
files, rotation with `groupware blobs rekey`, and the configuration that turns it on."""
from __future__ import annotations

import base64
import os
import subprocess

import pytest
from sqlalchemy import delete
from harness import mariadb_url, run_groupware

from server.blobs import DatabaseBlobStore, EncryptedBlobStore, FileBlobStore, backend_of, open_backend, open_blob_store
from server.blobs.encrypted import SEAL_IN_MEMORY
from shared.sealed import (CHUNK, HEADER, TAG, Keyring, MasterKey, open_sealed_file, parse_key_file, plain_size,
                           sealed_size)
from server.blobs.rekey import rekey
from server.storage import Storage
from server.storage.schema import blobs
from shared.config import Config, ConfigError
from shared.errors import BlobDamaged, NotFound


def keyring(*others: MasterKey) -> Keyring:
    return Keyring(MasterKey(os.urandom(32)), others)


@pytest.fixture(params=["files", "sqlite", "mariadb", "s3"])
def backend(request, tmp_path):
    if request.param == "files":
        yield FileBlobStore(str(tmp_path / "att"), fsync=False)
        return
    if request.param == "s3":
        s3_server = request.getfixturevalue("s3_server")
        yield s3_backend(s3_server)
        return
    url = "sqlite:///" + str(tmp_path / "store.db")
    if request.param == "mariadb":
        url = mariadb_url(request.getfixturevalue("mariadb_database"))
    st = Storage(url, None)
    st.migrate()
    with st.engine.begin() as conn:  # the module's MariaDB database: each test starts empty
        conn.execute(delete(blobs))
    yield DatabaseBlobStore(st.engine)
    st.close()


def s3_backend(s3_server, **options: str):
    """An S3 store on a bucket of its own (each test starts empty)."""
    return open_backend(Config(s3_server.options(s3_server.new_bucket(), **options)), "/nonexistent")


def raw(backend, key: str) -> bytes:
    with backend.open(key) as fp:
        return fp.read()


def overwrite(backend, key: str, data: bytes) -> None:
    """Replace a blob's stored bytes under the same name, as someone with the disk could."""
    if isinstance(backend, FileBlobStore):
        with open(backend.path(key), "wb") as fp:
            fp.write(data)
        return
    backend.delete(key)
    backend.put_bytes(data, key=key)


def read_all(store, key: str) -> bytes:
    with store.open(key) as fp:
        return fp.read()


DATA = bytes(range(256)) * (3 * CHUNK // 256) + b"tail"  # four chunks, the last short


def test_sealed_blobs_hold_no_plaintext_and_sizes_map_both_ways(backend):
    store = EncryptedBlobStore(backend, keyring())
    text = b"Subject: quarterly figures\r\n\r\nBEGIN:VCALENDAR secret body\r\n" * 5000
    key = store.put_bytes(text)
    sealed = raw(backend, key)
    assert b"quarterly" not in sealed and b"BEGIN:VCALENDAR" not in sealed
    assert len(sealed) == sealed_size(len(text)) and store.size(key) == len(text)
    for size in (0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 3):
        assert plain_size(sealed_size(size)) == size
    assert plain_size(HEADER + TAG - 1) is None


def test_a_ranged_read_decrypts_only_the_chunks_it_covers(backend):
    store = EncryptedBlobStore(backend, keyring())
    key = store.put_bytes(DATA)
    sealed = bytearray(raw(backend, key))
    # Damage the first chunk: a read of the third one still works, a read of the first does not.
    sealed[HEADER + 5] ^= 1
    overwrite(backend, key, bytes(sealed))
    with store.open(key) as fp:
        fp.seek(2 * CHUNK + 10)
        assert fp.read(100) == DATA[2 * CHUNK + 10:2 * CHUNK + 110]
        fp.seek(0)
        with pytest.raises(BlobDamaged):
            fp.read(10)


@pytest.mark.parametrize("damage", ["flip data", "flip tag", "flip header", "truncate mid-chunk",
                                    "drop last chunk", "swap chunks", "empty"])
def test_damage_is_an_error_never_garbage(backend, damage, caplog):
    store = EncryptedBlobStore(backend, keyring())
    key = store.put_bytes(DATA)
    sealed = bytearray(raw(backend, key))
    chunk = CHUNK + TAG
    if damage == "flip data":
        sealed[HEADER + chunk + 100] ^= 0x40
    elif damage == "flip tag":
        sealed[-1] ^= 1
    elif damage == "flip header":
        sealed[30] ^= 1  # inside the wrapped data key
    elif damage == "truncate mid-chunk":
        del sealed[-3:]
    elif damage == "drop last chunk":
        sealed = sealed[:HEADER + 3 * chunk]
    elif damage == "swap chunks":
        first, second = sealed[HEADER:HEADER + chunk], sealed[HEADER + chunk:HEADER + 2 * chunk]
        sealed[HEADER:HEADER + 2 * chunk] = second + first
    else:
        sealed = bytearray()
    overwrite(backend, key, bytes(sealed))
    with pytest.raises(BlobDamaged):
        read_all(store, key)
    assert "blob damaged" in caplog.text and key in caplog.text


def test_blobs_swapped_under_each_others_names_are_refused(backend):
    store = EncryptedBlobStore(backend, keyring())
    first, second = store.put_bytes(b"for alice" * 100), store.put_bytes(b"for bob" * 100)
    first_raw, second_raw = raw(backend, first), raw(backend, second)
    overwrite(backend, first, second_raw)
    overwrite(backend, second, first_raw)
    for key in (first, second):
        with pytest.raises(BlobDamaged):
            read_all(store, key)


def test_another_master_key_reads_nothing(backend):
    key = EncryptedBlobStore(backend, keyring()).put_bytes(b"private")
    with pytest.raises(BlobDamaged, match="not configured"):
        read_all(EncryptedBlobStore(backend, keyring()), key)


def test_put_file_seals_the_upload_and_removes_it(backend, tmp_path):
    store = EncryptedBlobStore(backend, keyring())
    upload = tmp_path / "upload.tmp"
    for size in (0, CHUNK, 2 * CHUNK + 7, SEAL_IN_MEMORY + 1):
        data = os.urandom(size)
        upload.write_bytes(data)
        key = store.put_file(str(upload))
        assert not upload.exists() and not (tmp_path / "upload.tmp.sealed").exists()
        assert read_all(store, key) == data and store.size(key) == size


def test_rekey_rewraps_headers_only_and_resumes(backend):
    old, new = MasterKey(os.urandom(32)), MasterKey(os.urandom(32))
    before = EncryptedBlobStore(backend, Keyring(old))
    keys = [before.put_bytes(os.urandom(n)) for n in (0, 10, CHUNK + 1, 3 * CHUNK)]
    plain = {key: read_all(before, key) for key in keys}
    chunks_before = {key: raw(backend, key)[HEADER:] for key in keys}
    # During the rotation the server reads with both keys.
    rotating = EncryptedBlobStore(backend, Keyring(new, [old]))
    first = rotating.rewrap(keys[0], new)
    assert first is True
    steps = []
    result = rekey(rotating, new, lambda: steps.append(1))  # a second run resumes
    assert result.scanned == 4 and result.rewrapped == 3 and result.already == 1 and not result.damaged
    assert len(steps) == 4
    assert rekey(rotating, new).rewrapped == 0
    after = EncryptedBlobStore(backend, Keyring(new))
    for key in keys:
        assert read_all(after, key) == plain[key]
        assert raw(backend, key)[HEADER:] == chunks_before[key]  # the data was not rewritten
        with pytest.raises(BlobDamaged):
            read_all(before, key)


def test_rekey_of_a_big_s3_object_copies_its_data_inside_s3(s3_server):
    """An object bigger than a part is rewritten as a multipart upload whose parts
    past the first S3 copies itself: only the first part goes up from here."""
    backend = s3_backend(s3_server, attachment_s3_part_size="5M")
    old, new = MasterKey(os.urandom(32)), MasterKey(os.urandom(32))
    data = os.urandom(2 * backend.part_size + 12345)
    key = EncryptedBlobStore(backend, Keyring(old)).put_bytes(data)
    sealed_before = raw(backend, key)
    sent: list[str] = []
    backend.client.meta.events.register("before-call.s3", lambda model, **_: sent.append(model.name))
    assert EncryptedBlobStore(backend, Keyring(new, [old])).rewrap(key, new)
    # The header is read by a GET signed outside boto3; then the first part is read and rewritten.
    assert sent == ["GetObject", "CreateMultipartUpload", "UploadPart", "UploadPartCopy", "UploadPartCopy",
                    "CompleteMultipartUpload"]
    assert raw(backend, key)[HEADER:] == sealed_before[HEADER:]
    assert read_all(EncryptedBlobStore(backend, Keyring(new)), key) == data
    with pytest.raises(NotFound):  # a head that is no longer there is not replaced
        backend.replace_head(key, sealed_before[:HEADER], sealed_before[:HEADER])


def write_key(path, content: bytes, mode: int = 0o600) -> str:
    path.write_bytes(content)
    os.chmod(path, mode)
    return str(path)


def test_key_files_raw_hex_base64_and_their_mode(tmp_path):
    secret = os.urandom(32)
    ids = {parse_key_file(write_key(tmp_path / name, content), "k").id
           for name, content in (("raw", secret), ("hex", secret.hex().encode() + b"\n"),
                                 ("b64", base64.b64encode(secret) + b"\n"))}
    assert len(ids) == 1
    with pytest.raises(ConfigError, match="readable by other users"):
        parse_key_file(write_key(tmp_path / "open", secret, 0o644), "attachment_encryption_key_file")
    with pytest.raises(ConfigError, match="holds no 32-byte key"):
        parse_key_file(write_key(tmp_path / "short", b"too short\n"), "attachment_encryption_key_file")
    with pytest.raises(ConfigError, match="cannot read"):
        parse_key_file(str(tmp_path / "missing"), "attachment_encryption_key_file")


def test_open_blob_store_encrypts_when_a_key_file_is_set(tmp_path):
    key_file = write_key(tmp_path / "blobs.key", os.urandom(32))
    old_file = write_key(tmp_path / "old.key", os.urandom(32))
    assert not isinstance(open_blob_store(Config({}), str(tmp_path)), EncryptedBlobStore)
    store = open_blob_store(Config({"attachment_encryption_key_file": key_file,
                                    "attachment_encryption_old_key_files": old_file}), str(tmp_path))
    assert isinstance(store, EncryptedBlobStore) and isinstance(backend_of(store), FileBlobStore)
    assert len(store.keyring.by_id) == 2
    assert not hasattr(store, "path")  # no same-host reads of sealed files
    key = store.put_bytes(b"Subject: hello")
    assert b"hello" not in open(backend_of(store).path(key), "rb").read()
    os.chmod(key_file, 0o604)
    with pytest.raises(ConfigError, match="attachment_encryption_key_file"):
        open_blob_store(Config({"attachment_encryption_key_file": key_file}), str(tmp_path))


def groupware(data_dir: str, *args: str, **options: str) -> subprocess.CompletedProcess:
    return run_groupware(data_dir, *args, check=False, options=options)


def test_genkey_and_rekey_commands(tmp_path):
    data_dir = str(tmp_path / "var")
    old, new = str(tmp_path / "old.key"), str(tmp_path / "new.key")
    for path in (old, new):
        made = groupware(data_dir, "blobs", "genkey", path)
        assert made.returncode == 0, made.stderr
        assert os.stat(path).st_mode & 0o777 == 0o600
    assert groupware(data_dir, "blobs", "genkey", old).returncode != 0  # never overwritten
    store = open_blob_store(Config({"attachment_encryption_key_file": old}), data_dir)
    keys = [store.put_bytes(b"message %d" % i) for i in range(5)]
    # A key the server is not configured with is refused: it could not read the result.
    refused = groupware(data_dir, "blobs", "rekey", "--new-key-file", new, attachment_encryption_key_file=old)
    assert refused.returncode != 0 and "attachment_encryption_old_key_files" in refused.stdout + refused.stderr
    done = groupware(data_dir, "blobs", "rekey", attachment_encryption_key_file=new,
                     attachment_encryption_old_key_files=old)
    assert done.returncode == 0, done.stderr
    assert "rewrapped=5" in done.stdout
    rotated = open_blob_store(Config({"attachment_encryption_key_file": new}), data_dir)
    assert [read_all(rotated, key) for key in keys] == [b"message %d" % i for i in range(5)]


def test_sealed_files_are_named_only_to_readers_that_open_them(tmp_path):
    from server.soap.streams import _local_path
    files = FileBlobStore(str(tmp_path / "att"), fsync=False)
    keys = keyring()
    store = EncryptedBlobStore(files, keys)
    assert _local_path(files, False) == files.path and _local_path(files, True) == files.path
    assert _local_path(store, False) is None
    name = store.put_bytes(DATA)
    path = _local_path(store, True)(name)
    with open_sealed_file(path, keys) as fp:
        fp.seek(CHUNK + 3)
        assert fp.read(10) == DATA[CHUNK + 3:CHUNK + 13]
        assert fp.read() == DATA[CHUNK + 13:]
    with pytest.raises(BlobDamaged):
        open_sealed_file(path, keyring())
    # A sealed file moved under another blob's name does not open.
    other = store.put_bytes(b"other")
    os.replace(path, files.path(other))
    with pytest.raises(BlobDamaged):
        open_sealed_file(files.path(other), keys)
