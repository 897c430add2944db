"""SIGKILL the store server while messages are being saved; nothing acknowledged may be lost.

A writer process (tests/crash_writer.py) appends numbered messages with several
saves in flight and prints each acknowledgement. The test kills the server in
the middle of that, restarts it on the same data and checks through the adapter
that every acknowledged message is there byte for byte, every message that is
there is whole, and UIDs and modseqs keep growing. Three crashes per run.
"""
from __future__ import annotations

import contextlib
import glob
import os
import subprocess
import sys
import threading

import pytest

from crash_writer import message_source, seq_of
from harness import ROOT, ServerProcess, mysql_options, throwaway_mariadb_database
from shared.config import Config
from shared.model import Adapter

USER = "crash"
PASSWORD = "crash password"
CYCLES = 3
ACKS_BEFORE_KILL = 100
SEQ_STRIDE = 100_000  # cycle n writes seqs n*STRIDE+1...; a probe message per cycle ends in 99_999


@contextlib.contextmanager
def sqlite_files(tmp_path, s3_server):
    yield {"attachment_storage": "files"}


@contextlib.contextmanager
def mariadb_blobs_in_db(tmp_path, s3_server):
    with throwaway_mariadb_database("gw_crash") as name:
        yield {**mysql_options(name), "attachment_storage": "database"}


@contextlib.contextmanager
def sqlite_s3(tmp_path, s3_server):
    yield s3_server.options(s3_server.new_bucket())


def create_user(data_dir: str, options: dict[str, str]) -> None:
    from server.service import open_storage
    from server.users.db import hash_password

    storage = open_storage(Config(options, data_dir))
    try:
        storage.create_user(USER, hash_password(PASSWORD), "Crash Test", "crash@example.org")
    finally:
        storage.close()


class Writer:
    """The writer subprocess with its output collected on a thread."""

    def __init__(self, socket_path: str, first_seq: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "tests", "crash_writer.py"), socket_path, USER, PASSWORD,
             str(first_seq), "8"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.acks: list[tuple[int, int, int]] = []
        self.lines: list[str] = []
        self.enough = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith("ACK "):
                _, seq, uid, modseq = line.split()
                self.acks.append((int(seq), int(uid), int(modseq)))
                if len(self.acks) >= ACKS_BEFORE_KILL:
                    self.enough.set()
        self.enough.set()  # EOF: the writer is gone

    def finish(self, timeout: float = 20) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.reader.join(10)
        self.stderr = self.proc.stderr.read()
        self.proc.stderr.close()


def open_inbox(rt, socket_path: str, data_dir: str):
    adapter = rt.call(Adapter, Config({"server_socket": socket_path, "server_connections": "4"}, data_dir),
                      rt.reactor)
    session = rt.call(adapter.logon, USER, PASSWORD, "imap", "127.0.0.1")
    inbox = rt.call(lambda: session.store().inbox())
    return adapter, session, inbox


def read_folder(rt, inbox) -> dict[int, tuple[int, int, bytes]]:
    """Every item of the folder: uid -> (modseq, size column, source)."""
    total, messages = rt.call(inbox.messages, ("uid", "modseq", "size"), sort=[("uid", False)])
    assert total == len(messages)

    async def sources():
        out = {}
        for m in messages:
            out[m.uid] = (m.modseq, m.size, await m.source())
        return out
    return rt.coro(sources, timeout=120)


# Two store workers on one SQLite file is the case where writers of several processes
# race on the file itself; MariaDB serialises them in the server either way.
@pytest.mark.parametrize("backend, store_workers", [(sqlite_files, "1"), (mariadb_blobs_in_db, "1"),
                                                    (sqlite_files, "2"), (sqlite_s3, "1")],
                         ids=["sqlite-files", "mariadb-db", "sqlite-files-2-store-workers", "sqlite-s3"])
def test_sigkill_during_saves_loses_nothing_acknowledged(reactor_thread, tmp_path, backend, store_workers,
                                                         s3_server):
    rt = reactor_thread
    data_dir = str(tmp_path / "data")
    os.makedirs(data_dir)
    with backend(tmp_path, s3_server) as options:
        create_user(data_dir, options)
        # With two store workers, the writer's saves run in both at once and all die together.
        opts = {**options, "log_level": "warning", "store_workers": store_workers}
        acked: dict[int, tuple[int, int]] = {}   # seq -> (uid, modseq), over every cycle
        uid_seq: dict[int, int] = {}             # every uid ever seen -> the seq it carried
        max_modseq_seen = 0
        server = ServerProcess(data_dir, opts).start()
        try:
            for cycle in range(1, CYCLES + 1):
                writer = Writer(server.socket_path, cycle * SEQ_STRIDE + 1)
                assert writer.enough.wait(60), "writer made no progress: " + "".join(writer.lines)
                server.kill()  # SIGKILL with saves in flight
                writer.finish()
                assert len(writer.acks) >= ACKS_BEFORE_KILL, (writer.lines[-5:], writer.stderr[-2000:])
                # The writer stopped because the server died, not for a reason of its own.
                assert any(line.startswith("FAIL ") for line in writer.lines), writer.stderr[-2000:]
                for seq, uid, modseq in writer.acks:
                    assert seq not in acked
                    acked[seq] = (uid, modseq)
                ack_uids = [uid for uid, _ in acked.values()]
                assert len(set(ack_uids)) == len(ack_uids), "two acknowledged saves got the same uid"

                server = ServerProcess(data_dir, opts).start()
                # Uploads spooled by the killed process are cleared on start.
                assert not glob.glob(os.path.join(data_dir, "tmp", "upload-*"))
                adapter, session, inbox = open_inbox(rt, server.socket_path, data_dir)
                try:
                    present = read_folder(rt, inbox)
                    # Every acknowledged message survived, whole, where it was acknowledged.
                    for seq, (uid, modseq) in acked.items():
                        assert uid in present, f"acknowledged seq {seq} uid {uid} lost"
                        p_modseq, p_size, source = present[uid]
                        assert source == message_source(seq), f"uid {uid} (seq {seq}) differs"
                        assert p_modseq == modseq
                    # Every message present is complete: no torn or half-recorded saves.
                    for uid, (modseq, size, source) in present.items():
                        seq = seq_of(source)
                        assert seq is not None, f"uid {uid} has no sequence header"
                        assert source == message_source(seq), f"uid {uid} (seq {seq}) is torn"
                        assert size == len(source)
                        assert uid_seq.setdefault(uid, seq) == seq, f"uid {uid} reused"
                    seqs = [seq_of(src) for _, _, src in present.values()]
                    assert len(set(seqs)) == len(seqs), "one save stored twice"
                    # Nothing ever seen has disappeared (no deletes happen here).
                    assert set(uid_seq) == set(present)
                    max_modseq_seen = max([max_modseq_seen, *(m for m, _, _ in present.values()),
                                           *(m for _, m in acked.values())])
                    folder = rt.call(inbox.refresh)
                    assert folder.highest_modseq >= max(m for _, m in acked.values())
                    assert folder.count == len(present)
                    assert folder.uid_next > max(uid_seq)

                    # A save after the restart goes above everything ever handed out.
                    probe_seq = cycle * SEQ_STRIDE + SEQ_STRIDE - 1
                    uid, modseq = rt.call(inbox.append, message_source(probe_seq))
                    assert uid > max(uid_seq) and uid > max(u for u, _ in acked.values())
                    assert modseq > max_modseq_seen
                    acked[probe_seq] = (uid, modseq)
                    uid_seq[uid] = probe_seq
                    max_modseq_seen = modseq
                    got = rt.call(inbox.message, uid, ("uid", "size"))
                    assert rt.call(got.source) == message_source(probe_seq)
                finally:
                    rt.call(session.logoff)
                    rt.call(adapter.close)
        finally:
            server.stop()
