"""`groupware blobs gc`: unreferenced blobs older than the minimum age go, nothing else does."""
import os
import subprocess
import sys
import time

import pytest
from harness import mysql_options

from server.blobs import FileBlobStore
from server.blobs.files import TMP_PREFIX

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
OLD = time.time() - 7200


def gc(data_dir, *args, options=None):
    sets = []
    for name, value in (options or {}).items():
        sets += ["--set", f"{name}={value}"]
    proc = subprocess.run(
        [sys.executable, "-m", "groupware.cli", "--config-dir", os.path.join(ROOT, "conf"),
         "--data-dir", str(data_dir), *sets, "blobs", "gc", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    counts = dict(pair.split("=") for pair in proc.stdout.split())
    return {k: (v if k == "dry_run" else int(v)) for k, v in counts.items()}


def open_store(data_dir, options):
    from server.service import open_storage
    from shared.config import Config
    return open_storage(Config(options, str(data_dir)))


def two_folders(storage):
    if storage.get_user("gc") is None:
        storage.create_user("gc", "x")
    user = storage.get_user("gc")
    folders = storage.list_folders(user["store_id"])
    by_name = {f["name"]: f["id"] for f in folders}
    return by_name["Inbox"], by_name["Archive"]


def make_blobs(storage):
    """A referenced blob, a blob only a copy still references, and an orphan."""
    inbox, archive = two_folders(storage)
    blobs = storage.blobs
    kept = blobs.put_bytes(b"referenced")
    storage.create_message(inbox, kept, 10, None)
    shared = blobs.put_bytes(b"shared by a copy")
    uid = storage.create_message(inbox, shared, 16, None)["uid"]
    storage.copy_items(inbox, str(uid), archive)
    storage.create_message(inbox, shared, 16, None)
    orphan = blobs.put_bytes(b"orphan!")
    return kept, shared, orphan


def exists(blobs, key):
    try:
        blobs.size(key)
        return True
    except Exception:
        return False


def age(blobs, key, when=OLD):
    os.utime(blobs._path(key), (when, when))


def test_files_store(tmp_path):
    options = {"database_engine": "sqlite", "attachment_storage": "files"}
    storage = open_store(tmp_path, options)
    try:
        blobs = storage.blobs
        assert isinstance(blobs, FileBlobStore)
        kept, shared, orphan = make_blobs(storage)
        young = blobs.put_bytes(b"young orphan")
        for key in (kept, shared, orphan):
            age(blobs, key)
        stale = os.path.join(os.path.dirname(blobs._path(orphan)), TMP_PREFIX + orphan[:4] + "0" * 28)
        fresh = os.path.join(os.path.dirname(blobs._path(kept)), TMP_PREFIX + kept[:4] + "1" * 28)
        for path in (stale, fresh):
            with open(path, "wb") as f:
                f.write(b"half")
        os.utime(stale, (OLD, OLD))
        # Not ours: left alone and not counted.
        with open(os.path.join(blobs.root, "README"), "w") as f:
            f.write("x")
    finally:
        storage.close()

    def listing():
        return sorted((d, f, os.stat(os.path.join(d, f)).st_mtime)
                      for d, _, fs in os.walk(blobs.root) for f in fs)

    before = listing()
    dry = gc(tmp_path, "--dry-run", options=options)
    assert listing() == before
    assert dry == {"scanned": 6, "referenced": 2, "young": 2, "removed": 2,
                   "bytes_freed": len(b"orphan!") + 4, "dry_run": "yes"}

    done = gc(tmp_path, options=options)
    assert done == {"scanned": 6, "referenced": 2, "young": 2, "removed": 2,
                    "bytes_freed": len(b"orphan!") + 4}
    assert exists(blobs, kept) and exists(blobs, shared) and exists(blobs, young)
    assert not exists(blobs, orphan)
    assert not os.path.exists(stale) and os.path.exists(fresh)
    assert os.path.exists(os.path.join(blobs.root, "README"))

    # The shared blob's original is gone; its copy still names the key.
    storage = open_store(tmp_path, options)
    try:
        inbox, archive = two_folders(storage)
        storage.delete_items(inbox, "1:*")
        assert exists(storage.blobs, shared) and not exists(storage.blobs, kept)
    finally:
        storage.close()
    assert gc(tmp_path, options=options)["removed"] == 0
    assert exists(blobs, shared)

    # A custom age: the young orphan goes once old enough.
    age(blobs, young, time.time() - 120)
    os.utime(fresh)  # still fresh however long the steps above took on a busy machine
    assert gc(tmp_path, "--min-age", "60", options=options)["removed"] == 1
    assert not exists(blobs, young) and os.path.exists(fresh)
    assert gc(tmp_path, "--min-age", "0", options=options)["removed"] == 1
    assert not os.path.exists(fresh) and exists(blobs, shared)


def test_files_put_file_stamps_store_time(tmp_path):
    blobs = FileBlobStore(str(tmp_path / "att"), fsync=False)
    spool = tmp_path / "spool"
    spool.write_bytes(b"data")
    os.utime(spool, (OLD, OLD))
    key = blobs.put_file(str(spool))
    assert os.stat(blobs._path(key)).st_mtime > OLD + 3600


@pytest.fixture(scope="module")
def mysql_db(mariadb_database: str) -> str:
    return mariadb_database


def test_database_store(tmp_path, mysql_db):
    options = dict(mysql_options(mysql_db), attachment_storage="database")
    storage = open_store(tmp_path, options)
    try:
        blobs = storage.blobs
        kept, shared, orphan = make_blobs(storage)
    finally:
        storage.close()

    # Database blobs keep no time: a first run only notes the orphan.
    first = gc(tmp_path, "--min-age", "1", options=options)
    assert first == {"scanned": 3, "referenced": 2, "young": 1, "removed": 0, "bytes_freed": 0}
    assert exists(blobs, orphan)

    storage = open_store(tmp_path, options)
    try:
        young = storage.blobs.put_bytes(b"young orphan")
    finally:
        storage.close()
    time.sleep(1.2)  # the young orphan grows older than --min-age 1: the age rule is under test

    state = os.path.join(tmp_path, "blob-gc-seen")
    with open(state) as f:
        recorded = f.read()
    dry = gc(tmp_path, "--min-age", "1", "--dry-run", options=options)
    assert dry == {"scanned": 4, "referenced": 2, "young": 1, "removed": 1,
                   "bytes_freed": len(b"orphan!"), "dry_run": "yes"}
    assert exists(blobs, orphan) and exists(blobs, young)
    with open(state) as f:
        assert f.read() == recorded

    done = gc(tmp_path, "--min-age", "1", options=options)
    assert done == {"scanned": 4, "referenced": 2, "young": 1, "removed": 1,
                    "bytes_freed": len(b"orphan!")}
    assert not exists(blobs, orphan)
    assert exists(blobs, kept) and exists(blobs, shared) and exists(blobs, young)

    # The default age keeps the young one; 0 takes every unreferenced blob at once.
    assert gc(tmp_path, options=options)["removed"] == 0
    assert gc(tmp_path, "--min-age", "0", options=options)["removed"] == 1
    assert not exists(blobs, young) and exists(blobs, kept) and exists(blobs, shared)


def test_s3_store(tmp_path, s3_server):
    """Objects are aged by S3's LastModified, and multipart uploads a crash left unfinished
    count as temporary files: aborted once old enough."""
    bucket = s3_server.new_bucket()
    options = {"database_engine": "sqlite", **s3_server.options(bucket)}
    storage = open_store(tmp_path, options)
    try:
        blobs = storage.blobs
        kept, shared, orphan = make_blobs(storage)
        unfinished = "ab" * 16
        blobs.client.create_multipart_upload(Bucket=bucket, Key=unfinished)
    finally:
        storage.close()
    # moto dates every multipart upload 2010-11-10: the unfinished one is old at once.
    assert gc(tmp_path, "--dry-run", options=options)["removed"] == 1
    assert blobs.client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    first = gc(tmp_path, options=options)
    assert first == {"scanned": 4, "referenced": 2, "young": 1, "removed": 1, "bytes_freed": 0}
    assert blobs.client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert exists(blobs, orphan)
    done = gc(tmp_path, "--min-age", "0", options=options)
    assert done == {"scanned": 3, "referenced": 2, "young": 0, "removed": 1, "bytes_freed": len(b"orphan!")}
    assert exists(blobs, kept) and exists(blobs, shared) and not exists(blobs, orphan)
