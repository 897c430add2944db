"""The store server's own brute-force guard keeps its bans in the database, so that they
hold across restarts, for every store instance and so for every gateway host."""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, DeferredList

log = logging.getLogger(__name__)


class StoredBans:
    """`shared.authguard.BanList` over the storage's `address_bans` table."""

    def __init__(self, storage: Any, run: Callable[..., Deferred], clock: Callable[[], float]) -> None:
        self.storage = storage
        self.run = run
        self.clock = clock
        self._writing: set[Deferred] = set()

    def banned_until(self, key: str) -> Deferred:
        return self.run(self.storage.address_banned_until, key)

    def ban(self, key: str, until: float) -> None:
        d = self.run(self.storage.ban_address, key, until, self.clock())
        # The ban holds in memory regardless; only its surviving a restart is lost.
        d.addErrback(lambda failure: log.error("could not keep the ban of %s: %s", key, failure.getErrorMessage()))
        self._writing.add(d)
        d.addBoth(lambda result: self._writing.discard(d))

    def kept(self) -> Deferred:
        """Fires once every ban being written now is in the database (or failed to be): a
        failed logon that made a ban is answered after that, so that the caller's next
        attempt, whichever store process or instance it reaches, is refused."""
        return DeferredList(list(self._writing))
