"""Password checks of the `db` user backend: at most `password_hash_threads` argon2id checks
at once in one store process, however many logons arrive together, and none again for
credentials verified within `auth_cache_ttl` when `auth_cache_size` allows."""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from argon2 import PasswordHasher

from server.service import open_storage
from server.users.db import HASHER, DbUserBackend, backend, hash_password, password_hash_slots
from server.users.verified import VerifiedCredentials
from shared.errors import AuthFailed
from shared.config import Config


class CountingHasher(PasswordHasher):
    """The real argon2id hasher, noting how many checks run at once."""

    def __init__(self) -> None:
        super().__init__(time_cost=HASHER.time_cost, memory_cost=HASHER.memory_cost, parallelism=1)
        self._lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.checks = 0

    def verify(self, hash: str, password: str) -> bool:  # noqa: A002 (argon2's own name)
        with self._lock:
            self.running += 1
            self.checks += 1
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


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_verified_credentials_skip_the_hash_until_they_expire_or_change(tmp_path):
    storage = open_storage(Config({}, str(tmp_path)))
    try:
        storage.create_user("alice", hash_password("alice-secret"))
        hasher, clock = CountingHasher(), Clock()
        users = DbUserBackend(storage, hasher, verified=VerifiedCredentials(1 << 20, 60, clock))
        for _ in range(5):
            assert users.authenticate("alice", "alice-secret")["name"] == "alice"
        assert hasher.checks == 1

        # A wrong password is checked in full every time and never remembered.
        for _ in range(3):
            with pytest.raises(AuthFailed):
                users.authenticate("alice", "alice-wrong")
        assert hasher.checks == 4

        # A new password: the old one no longer matches anything remembered.
        users.set_password("alice", "alice-new")
        with pytest.raises(AuthFailed):
            users.authenticate("alice", "alice-secret")
        users.authenticate("alice", "alice-new")
        users.authenticate("alice", "alice-new")
        assert hasher.checks == 6

        # Past the ttl the password is checked again.
        clock.now += 61
        users.authenticate("alice", "alice-new")
        assert hasher.checks == 7
    finally:
        storage.close()


def test_a_disabled_account_is_refused_even_when_its_credentials_were_remembered(tmp_path):
    storage = open_storage(Config({}, str(tmp_path)))
    try:
        storage.create_user("bob", hash_password("bob-secret"))
        users = DbUserBackend(storage, CountingHasher(), verified=VerifiedCredentials(1 << 20, 60))
        users.authenticate("bob", "bob-secret")
        storage.set_active("bob", False)
        with pytest.raises(AuthFailed):
            users.authenticate("bob", "bob-secret")
    finally:
        storage.close()


def test_the_cache_is_off_by_default_and_bounded_by_its_size(tmp_path):
    storage = open_storage(Config({}, str(tmp_path)))
    try:
        storage.create_user("carol", hash_password("carol-secret"))
        assert not backend(Config({}, str(tmp_path)), storage)._verified.enabled
        on = backend(Config({"auth_cache_size": "1M", "auth_cache_ttl": "30"}, str(tmp_path)), storage)
        assert on._verified.enabled and on._verified.ttl == 30
        tiny = VerifiedCredentials(2 * 200, 60)
        for n in range(10):
            tiny.add(f"user{n}", "hash", "pw")
        assert len(tiny._seen) == 2 and tiny.holds("user9", "hash", "pw") and not tiny.holds("user0", "hash", "pw")
    finally:
        storage.close()
