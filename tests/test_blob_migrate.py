"""Moving blobs between kinds of store: `groupware blobs migrate`, resumable and verified,
and the whole move from files to S3 while messages keep arriving."""
from __future__ import annotations

import io
import os
import shutil
import threading

import pytest

from harness import ServerProcess, run_groupware
from server.blobs import DatabaseBlobStore, EncryptedBlobStore, FileBlobStore, open_store_of_kind
from server.blobs.migrate import migrate_blobs
from server.storage import Storage
from shared.config import Config
from shared.sealed import Keyring
from test_crash_safety import SEQ_STRIDE, create_user, open_inbox, read_folder
from crash_writer import message_source


def stores(tmp_path, s3_server) -> dict[str, object]:
    st = Storage("sqlite:///" + str(tmp_path / "store.db"), None)
    st.migrate()
    cfg = Config(s3_server.options(s3_server.new_bucket(), attachment_s3_part_size="5M"), str(tmp_path))
    return {"files": FileBlobStore(str(tmp_path / "att"), fsync=False),
            "database": DatabaseBlobStore(st.engine),
            "s3": open_store_of_kind(cfg, "s3", str(tmp_path))}


def contents(store, keys) -> dict[str, bytes]:
    return {key: store.open(key).read() for key in keys}


def test_blobs_go_round_every_kind_of_store_intact(tmp_path, s3_server):
    kinds = stores(tmp_path, s3_server)
    datas = [b"", b"x", os.urandom(1000), os.urandom((1 << 20) + 1), os.urandom(11 << 20)]
    keys = [kinds["files"].put_bytes(data) for data in datas]
    expected = dict(zip(keys, datas))
    for source, target in (("files", "s3"), ("s3", "database"), ("database", "files")):
        if source == "database":
            shutil.rmtree(tmp_path / "att")  # the last leg really writes them again
            kinds["files"] = FileBlobStore(str(tmp_path / "att"), fsync=False)
        labels = []

        def progress(label, total):
            labels.append((label, total))
            return _Count()
        result = migrate_blobs(kinds[source], kinds[target], progress)
        assert (result.copied, result.verified, result.mismatched) == (len(datas), len(datas), []), (source, target)
        assert result.copied_bytes == sum(map(len, datas))
        assert labels == [("copy blobs", len(datas)), ("verify blobs", len(datas))]
        assert contents(kinds[target], keys) == expected


class _Count:
    def update(self, count: int = 1) -> None:
        pass

    def close(self, interrupted: bool = False) -> None:
        pass


def test_a_second_run_resumes_and_verification_finds_a_bad_copy(tmp_path, s3_server):
    kinds = stores(tmp_path, s3_server)
    source, target = kinds["files"], kinds["s3"]
    first = [source.put_bytes(os.urandom(500)) for _ in range(5)]
    # As if an earlier run stopped after two blobs.
    for key in first[:2]:
        target.put_keyed(key, source.open(key))
    result = migrate_blobs(source, target)
    assert (result.copied, result.skipped, result.verified) == (3, 2, 5)
    # A copy that went bad in the target, same size: not copied again, but found.
    target.put_keyed(first[0], io.BytesIO(b"\0" * 500))
    released = source.put_bytes(b"released before the run")
    source.delete(released)
    result = migrate_blobs(source, target)
    assert (result.copied, result.skipped, result.mismatched) == (0, 5, [first[0]])


def test_plain_files_into_encrypted_s3_and_back(tmp_path, s3_server):
    """Encryption is switched on or off by the move itself: each side is encrypted as
    told, the copies are verified by their plain bytes, and a second run skips them."""
    data_dir = str(tmp_path / "var")
    key_file = str(tmp_path / "blobs.key")
    assert run_groupware(data_dir, "blobs", "genkey", key_file).returncode == 0
    options = s3_server.options(s3_server.new_bucket(), attachment_s3_part_size="5M",
                                attachment_path=str(tmp_path / "att"), attachment_encryption_key_file=key_file)
    files = FileBlobStore(str(tmp_path / "att"), fsync=False)
    datas = [b"", b"Subject: in the clear\r\n\r\nbody\r\n", os.urandom((1 << 20) + 1), os.urandom(11 << 20)]
    expected = {files.put_bytes(data): data for data in datas}

    def migrate(*argv: str) -> str:
        return run_groupware(data_dir, "blobs", "migrate", *argv, options=options, timeout=600).stdout
    into = migrate("--from", "files", "--to", "s3", "--from-encryption", "off")
    assert "files -> s3 (encrypted): copied=4" in into and "mismatched=0" in into
    s3 = open_store_of_kind(Config(options), "s3", data_dir)
    for key, data in expected.items():
        sealed = s3.open(key).read()
        assert len(sealed) > len(data) and (not data or data[:32] not in sealed)
    assert contents(EncryptedBlobStore(s3, Keyring.from_config(Config(options))), expected) == expected
    again = migrate("--from", "files", "--to", "s3", "--from-encryption", "off")
    assert "copied=0 copied_bytes=0 skipped=4" in again
    shutil.rmtree(tmp_path / "att")
    back = migrate("--from", "s3", "--to", "files", "--to-encryption", "off")
    assert "s3 (encrypted) -> files: copied=4" in back and "mismatched=0" in back
    assert contents(FileBlobStore(str(tmp_path / "att")), expected) == expected


class Appender:
    """Appends numbered messages one after another from a thread of its own, through the
    adapter on the reactor thread, until stopped; remembers what was acknowledged."""

    def __init__(self, rt, inbox, first_seq: int) -> None:
        self.rt, self.inbox, self.seq = rt, inbox, first_seq
        self.acked: dict[int, int] = {}  # seq -> uid
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            uid, _ = self.rt.call(self.inbox.append, message_source(self.seq))
            self.acked[self.seq] = uid
            self.seq += 1

    def stop(self) -> dict[int, int]:
        self.stopping.set()
        self.thread.join()
        return self.acked


@pytest.mark.timeout(900)
def test_online_move_from_files_to_s3(reactor_thread, tmp_path, s3_server):
    """The README's procedure, with messages arriving all the while: copy, switch with
    attachment_storage_previous, copy the rest, then S3 alone, with the files gone."""
    rt = reactor_thread
    data_dir = str(tmp_path / "data")
    os.makedirs(data_dir)
    files_options = {"attachment_storage": "files", "log_level": "warning"}
    s3_options = s3_server.options(s3_server.new_bucket())
    create_user(data_dir, files_options)
    acked: dict[int, int] = {}  # seq -> uid
    outputs = []

    def serve_and_migrate(options: dict[str, str], first_seq: int, migrate_with: dict[str, str]) -> None:
        server = ServerProcess(data_dir, options).start()
        try:
            adapter, session, inbox = open_inbox(rt, server.socket_path, data_dir)
            try:
                for seq in range(first_seq, first_seq + 20):
                    acked[seq] = rt.call(inbox.append, message_source(seq))[0]
                appender = Appender(rt, inbox, first_seq + 20)
                try:
                    result = run_groupware(data_dir, "blobs", "migrate", "--to", "s3",
                                           options={**s3_options, **migrate_with}, timeout=300)
                finally:
                    acked.update(appender.stop())
                assert "copy blobs" in result.stderr and "verify blobs" in result.stderr
                outputs.append(result.stdout)
            finally:
                rt.call(session.logoff)
                rt.call(adapter.close)
        finally:
            server.stop()

    # 1. Serving from files: the bulk copy, while messages arrive.
    serve_and_migrate(files_options, SEQ_STRIDE, files_options)
    assert outputs[0].startswith("files -> s3: copied=") and "mismatched=0" in outputs[0]
    # 2. Serving from S3, reading what has not moved yet from the files; the rest copied.
    moving = {**files_options, **s3_options, "attachment_storage_previous": "files"}
    serve_and_migrate(moving, 2 * SEQ_STRIDE, moving)
    assert "mismatched=0" in outputs[1] and "more_arrived" not in outputs[1]

    # 3. S3 alone: every acknowledged message is there byte for byte, without the files.
    shutil.rmtree(os.path.join(data_dir, "attachments"))
    server = ServerProcess(data_dir, {**s3_options, "log_level": "warning"}).start()
    try:
        adapter, session, inbox = open_inbox(rt, server.socket_path, data_dir)
        try:
            present = read_folder(rt, inbox)
            assert {uid: source for uid, (_, _, source) in present.items()} == \
                {uid: message_source(seq) for seq, uid in acked.items()}
        finally:
            rt.call(session.logoff)
            rt.call(adapter.close)
    finally:
        server.stop()


@pytest.mark.parametrize("argv, message", [
    (["--to", "files"], "the blobs are in files already"),
    (["--to", "s3", "--to-encryption", "on"], "need attachment_encryption_key_file"),
])
def test_migrate_refuses_a_move_to_the_same_store(tmp_path, argv, message):
    result = run_groupware(str(tmp_path), "blobs", "migrate", *argv, check=False)
    assert result.returncode == 1 and message in result.stderr
