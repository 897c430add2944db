"""Store sessions for HTTP requests: one login per user, kept for a while.

The cache sits on top of the gateway's login service (`shared.login`): a request whose
credentials match a kept session skips it; concurrent requests with the same new
credentials share one login, with one pass through the guard.

A request holds the session it was given until its answer is out (`hold`, `release`): a
session the cache drops (expired, replaced by another password, evicted, forgotten) is
logged off only once no request holds it, so clients syncing on several connections never
see a request fail because another one logged on again.
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
        # Requests in progress per session (by id), and sessions dropped from the cache that
        # are logged off when the last of their requests ends.
        self._holds: dict[int, int] = {}
        self._dropped: dict[int, Any] = {}

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

    def hold(self, session: Any) -> None:
        """A request starts using `session`: it is not logged off before `release`."""
        self._holds[id(session)] = self._holds.get(id(session), 0) + 1

    def release(self, session: Any) -> None:
        key = id(session)
        left = self._holds.get(key, 0) - 1
        if left > 0:
            self._holds[key] = left
            return
        self._holds.pop(key, None)
        dropped = self._dropped.pop(key, None)
        if dropped is not None:
            dropped.logoff()

    def _drop(self, session: Any) -> None:
        """Log `session` off now, or when the last request holding it ends."""
        if self._holds.get(id(session)):
            self._dropped[id(session)] = session
        else:
            session.logoff()

    def _remember(self, user: str, digest: bytes, session: Any) -> None:
        old = self._entries.pop(user, None)
        if old is not None and old.session is not session:
            self._drop(old.session)
        if len(self._entries) >= self.max_entries:
            now = time.monotonic()
            for name in [n for n, e in self._entries.items() if e.expires <= now]:
                self._drop(self._entries.pop(name).session)
            # Entries are added with one expiry each, so the dict's order is expiry order.
            while len(self._entries) >= self.max_entries:
                self._drop(self._entries.pop(next(iter(self._entries))).session)
        self._entries[user] = _Entry(digest, session, time.monotonic() + self.expiry)

    def forget(self, user: str) -> None:
        entry = self._entries.pop(user, None)
        if entry is not None:
            self._drop(entry.session)

    def close(self) -> defer.Deferred:
        """Log every session off (the gateway is stopping: its requests have been cancelled)."""
        entries, self._entries = self._entries, {}
        dropped, self._dropped = self._dropped, {}
        sessions = [e.session for e in entries.values()] + list(dropped.values())
        return defer.DeferredList([session.logoff() for session in sessions])
