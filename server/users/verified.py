"""Credentials that checked out a short while ago (Dovecot's `auth_cache_size` and
`auth_cache_ttl`): a phone that logs in every minute, or a client opening ten
connections at once, then costs one argon2id check per `auth_cache_ttl` instead of one
per logon.

Nothing kept here gives a password back: an entry is an HMAC, under a key that lives
only in this process's memory, of the login name, the stored password hash and the
password. A new password or hash never matches an old entry, and a wrong password is
always checked in full, so the cache speeds up nobody's guessing.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable

from shared.lru import SizedLRU

# What one entry holds in memory: the 32-byte digest as bytes, its expiry, and the
# LRU's node and tuple.
ENTRY_BYTES = 200


class VerifiedCredentials:
    def __init__(self, max_bytes: int, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._seen = SizedLRU(max_bytes)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._seen.max_bytes >= ENTRY_BYTES and self.ttl > 0

    def holds(self, name: str, stored_hash: str, password: str) -> bool:
        """True when exactly these credentials were verified less than `ttl` ago."""
        if not self.enabled:
            return False
        digest = self._digest(name, stored_hash, password)
        with self._lock:
            expiry = self._seen.get(digest)
            if expiry is None:
                return False
            if expiry <= self._clock():
                self._seen.pop(digest)
                return False
            return True

    def add(self, name: str, stored_hash: str, password: str) -> None:
        """Remember credentials that were just verified in full."""
        if not self.enabled:
            return
        digest = self._digest(name, stored_hash, password)
        with self._lock:
            self._seen.put(digest, self._clock() + self.ttl, ENTRY_BYTES)

    def _digest(self, *parts: str) -> bytes:
        # Length-prefixed, so that no two different triples give the same message.
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        for part in parts:
            raw = part.encode("utf-8", "surrogatepass")
            mac.update(len(raw).to_bytes(8, "big"))
            mac.update(raw)
        return mac.digest()
