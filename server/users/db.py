"""Users kept in the store database with argon2id password hashes."""
from __future__ import annotations

import logging
import os
import secrets
import threading
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from server.users import UserBackend
from server.users.verified import VerifiedCredentials
from shared.config import Config
from shared.errors import AuthFailed

log = logging.getLogger(__name__)

# argon2id with OWASP's recommended cost (19 MiB, 2 passes): a POP3 client that logs
# in every minute should not cost 64 MiB and a core each time. Parallelism 1 keeps the
# hashes readable by libsodium (Dovecot's ARGON2ID scheme), both ways. Hashes made
# with other parameters still verify and are upgraded at the next logon.
HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


def hash_password(password: str) -> str:
    """An argon2id hash for storing with the user (used by the admin CLI)."""
    return HASHER.hash(password)


def password_hash_slots(config: Config) -> int:
    """Password hashes one store process checks at once (`password_hash_threads`; 0: half
    the host's cores shared among the store processes of `groupware serve`, at least one).

    A check takes a core for tens of milliseconds: a burst of logons checked on every core
    at once starves the commands of the users already logged in; logons wait their turn
    instead."""
    slots = config.get_int("password_hash_threads")
    if slots:
        return slots
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    processes = config.get_int("store_workers") or cores
    return max(1, cores // 2 // processes)


class DbUserBackend(UserBackend):
    def __init__(self, storage: Any, hasher: PasswordHasher = HASHER, hash_slots: int = 1,
                 verified: VerifiedCredentials | None = None) -> None:
        self._storage = storage
        self._hasher = hasher
        self._verified = verified or VerifiedCredentials(0, 0)
        self._hashing = threading.BoundedSemaphore(hash_slots)
        # Unknown users are checked against this so that a logon costs the
        # same whether or not the name exists (no user enumeration by timing).
        self._dummy_hash = hasher.hash(secrets.token_urlsafe(16))

    def authenticate(self, name: str, password: str) -> dict[str, Any]:
        user = self._storage.get_user(name)
        stored = (user or {}).get("password_hash") or self._dummy_hash
        if user is not None and user.get("active", True) and self._verified.holds(name, stored, password):
            return user
        try:
            with self._hashing:
                self._hasher.verify(stored, password)
            valid = user is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            valid = False
        # An inactive account fails exactly like a wrong password, after the
        # same amount of work.
        if not valid or not user.get("active", True):
            raise AuthFailed("authentication failed")
        self._maybe_rehash(user, stored, password)
        self._verified.add(name, stored, password)
        return user

    def set_password(self, name: str, password: str) -> None:
        """A new password for `name`: the same hash and column as `groupware user passwd`."""
        self._storage.set_password_hash(name, self._hasher.hash(password))

    def lookup(self, name: str) -> dict[str, Any] | None:
        return self._storage.get_user(name)

    def lookup_address(self, address: str) -> dict[str, Any] | None:
        found = self._storage.users_by_email(address)
        if len(found) > 1:
            log.warning("address %r belongs to several users (%s); not delivered", address,
                        ", ".join(u["name"] for u in found))
            return None
        return found[0] if found else None

    def _maybe_rehash(self, user: dict[str, Any], stored: str, password: str) -> None:
        # Hashes made with older cost parameters are upgraded at the next logon.
        try:
            if self._hasher.check_needs_rehash(stored):
                with self._hashing:
                    new = self._hasher.hash(password)
                self._storage.set_password_hash(user["name"], new)
        except Exception:  # the logon itself succeeded; an upgrade can wait
            log.warning("could not upgrade the password hash of %s", user["name"], exc_info=True)


def backend(config: Config, storage: Any) -> DbUserBackend:
    return DbUserBackend(storage, hash_slots=password_hash_slots(config),
                         verified=VerifiedCredentials(config.get_size("auth_cache_size"),
                                                      config.get_seconds("auth_cache_ttl")))
