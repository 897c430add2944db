"""Store sessions for HTTP requests: one login per user, kept for a while.

The cache sits on top of the gateway's login service (`shared.login`): a request whose
credentials match a kept session skips it; concurrent requests with the same new
credentials share one login, with one pass through the guard.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

from shared.login import ClientLogin, LoginService

log = logging.getLogger("gateways.caldav")


@dataclass
class _Entry:
    digest: bytes
    session: Any
    expires: float


class SessionCache:
    """HTTP clients send the password with every request; the store sees one logon per
    user until `expiry` seconds pass or another password is given. At most `max_entries`
    users' sessions are kept (`ical_session_cache`): beyond, the expired ones are logged
    off, then those that would expire first."""

    def __init__(self, login: LoginService, expiry: float, max_entries: int = 10_000) -> None:
        self.login = login
        self.expiry = expiry
        self.max_entries = max_entries
        self._salt = os.urandom(16)
        self._entries: dict[str, _Entry] = {}
        self._pending: dict[tuple[str, bytes], list[defer.Deferred]] = {}

    def _digest(self, password: str) -> bytes:
        return hashlib.sha256(self._salt + password.encode("utf-8", "surrogateescape")).digest()

    def cached(self, user: str, password: str) -> Any:
        """The session kept for these credentials, or None."""
        entry = self._entries.get(user)
        if (entry is not None and entry.digest == self._digest(password)
                and entry.expires > time.monotonic() and not entry.session.closed):
            return entry.session
        return None

    def logon(self, user: str, password: str, address: str) -> defer.Deferred:
        """Fires with a Session; fails with `shared.login.LoginRefused`."""
        session = self.cached(user, password)
        if session is not None:
            return defer.succeed(session)
        digest = self._digest(password)
        key = (user, digest)
        d: defer.Deferred = defer.Deferred()
        waiters = self._pending.get(key)
        if waiters is not None:  # concurrent requests of one client share one logon
            waiters.append(d)
            return d
        self._pending[key] = [d]

        def done(result: Any) -> None:
            waiters = self._pending.pop(key, [])
            if not isinstance(result, Failure):
                self._remember(user, digest, result)
            for waiter in waiters:
                if isinstance(result, Failure):
                    waiter.errback(result)
                else:
                    waiter.callback(result)
        self.login.login(ClientLogin(user, password, address)).addBoth(done)
        return d

    def _remember(self, user: str, digest: bytes, session: Any) -> None:
        old = self._entries.pop(user, None)
        if old is not None and old.session is not session:
            old.session.logoff()
        if len(self._entries) >= self.max_entries:
            now = time.monotonic()
            for name in [n for n, e in self._entries.items() if e.expires <= now]:
                self._entries.pop(name).session.logoff()
            # Entries are added with one expiry each, so the dict's order is expiry order.
            while len(self._entries) >= self.max_entries:
                self._entries.pop(next(iter(self._entries))).session.logoff()
        self._entries[user] = _Entry(digest, session, time.monotonic() + self.expiry)

    def forget(self, user: str) -> None:
        entry = self._entries.pop(user, None)
        if entry is not None:
            entry.session.logoff()

    def close(self) -> defer.Deferred:
        entries, self._entries = self._entries, {}
        return defer.DeferredList([e.session.logoff() for e in entries.values()])
