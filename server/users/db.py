"""Users kept in the store database with argon2id password hashes."""
from __future__ import annotations

import logging
import secrets
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from server.users import UserBackend
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


class DbUserBackend(UserBackend):
    def __init__(self, storage: Any, hasher: PasswordHasher = HASHER) -> None:
        self._storage = storage
        self._hasher = hasher
        # Unknown users are checked against this so that a logon costs the
        # same whether or not the name exists (no user enumeration by timing).
        self._dummy_hash = hasher.hash(secrets.token_urlsafe(16))

    def authenticate(self, name: str, password: str) -> dict[str, Any]:
        user = self._storage.get_user(name)
        stored = (user or {}).get("password_hash") or self._dummy_hash
        try:
            self._hasher.verify(stored, password)
            valid = user is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            valid = False
        # An inactive account fails exactly like a wrong password, after the
        # same amount of work.
        if not valid or not user.get("active", True):
            raise AuthFailed("authentication failed")
        self._maybe_rehash(user, stored, password)
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
                self._storage.set_password_hash(user["name"], self._hasher.hash(password))
        except Exception:  # the logon itself succeeded; an upgrade can wait
            log.warning("could not upgrade the password hash of %s", user["name"], exc_info=True)


def backend(config: Config, storage: Any) -> DbUserBackend:
    return DbUserBackend(storage)
