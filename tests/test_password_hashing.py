"""Password checks of the `db` user backend: at most `password_hash_threads` argon2id checks
at once in one store process, however many logons arrive together."""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher

from server.service import open_storage
from server.users.db import HASHER, DbUserBackend, hash_password, password_hash_slots
from shared.config import Config


class CountingHasher(PasswordHasher):
    """The real argon2id hasher, noting how many checks run at once."""

    def __init__(self) -> None:
        super().__init__(time_cost=HASHER.time_cost, memory_cost=HASHER.memory_cost, parallelism=1)
        self._lock = threading.Lock()
        self.running = 0
        self.most = 0

    def verify(self, hash: str, password: str) -> bool:  # noqa: A002 (argon2's own name)
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            return super().verify(hash, password)
        finally:
            with self._lock:
                self.running -= 1


def test_logons_check_no_more_hashes_at_once_than_configured(tmp_path):
    storage = open_storage(Config({}, str(tmp_path)))
    try:
        storage.create_user("alice", hash_password("alice-secret"))
        hasher = CountingHasher()
        backend = DbUserBackend(storage, hasher, hash_slots=2)
        with ThreadPoolExecutor(8) as pool:
            users = list(pool.map(lambda _: backend.authenticate("alice", "alice-secret"), range(16)))
        assert [u["name"] for u in users] == ["alice"] * 16
        assert hasher.most == 2
    finally:
        storage.close()


def test_password_hash_threads_is_read_and_zero_shares_half_the_cores(tmp_path):
    assert password_hash_slots(Config({"password_hash_threads": "3"}, str(tmp_path))) == 3
    cores = len(os.sched_getaffinity(0))
    assert password_hash_slots(Config({"store_workers": "1"}, str(tmp_path))) == max(1, cores // 2)
    assert password_hash_slots(Config({"store_workers": str(cores)}, str(tmp_path))) == 1
