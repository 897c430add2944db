"""Where users and their passwords come from, chosen by `user_plugin`.

The SOAP layer only sees `UserBackend`; `db` keeps argon2 hashes in the store
database. Other directories (system accounts, LDAP) plug in here by name.
"""
from __future__ import annotations

from typing import Any, Protocol

from shared.config import Config
from shared.errors import AuthFailed

__all__ = ["AuthFailed", "UserBackend", "hash_password", "load_user_backend", "PLUGINS"]


class UserBackend(Protocol):
    """Authenticates logons and looks users up; sync, runs in the thread pool."""

    def authenticate(self, name: str, password: str) -> dict[str, Any]:
        """The user dict for a correct name and password, else AuthFailed.

        A store outage raises Unavailable, never AuthFailed: a gateway must not
        tell a user their password is wrong because the database is down.
        """
        ...

    def lookup(self, name: str) -> dict[str, Any] | None:
        """The user dict by login name, or None."""
        ...

    def lookup_address(self, address: str) -> dict[str, Any] | None:
        """The one user with this e-mail address (compared case-insensitively), or None
        (also when several have it: mail is never guessed into a store)."""
        ...


# Plugin name -> module under server.users holding a `backend(config, storage)` factory.
PLUGINS = {"db": "server.users.db", "ldap": "server.users.ldap", "unix": "server.users.unix"}


def load_user_backend(config: Config, storage: Any) -> UserBackend:
    module = __import__(PLUGINS[config.get_choice("user_plugin")], fromlist=["backend"])
    return module.backend(config, storage)


def hash_password(password: str) -> str:
    """An argon2id hash for storing with the user (used by the admin CLI)."""
    from server.users.db import hash_password as _hash
    return _hash(password)
