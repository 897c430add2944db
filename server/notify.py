"""Change notifications behind waitForChanges.

Every write handler reports `changed(folder_id, modseq)` once its transaction
has committed; long-polling callers waiting on that folder wake at once. The
`ChangeNotifier` base is the seam for a notifier that also hears other server
instances (a database change log or Redis pub/sub); `LocalNotifier` covers a
single server process.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime

log = logging.getLogger(__name__)

Changes = list[tuple[int, int]]  # (folder_id, highest modseq)


class ChangeNotifier(Protocol):
    """What the SOAP layer needs from a notifier. Called on the reactor thread."""

    def changed(self, folder_id: int, modseq: int) -> None:
        """A write to the folder committed with this modseq."""
        ...

    def wait(self, watches: Mapping[int, int], timeout: float) -> "Deferred[Changes]":
        """Fires with the watched folders that moved past their modseq, or [] at timeout.

        Cancelling the Deferred (the client hung up) forgets the waiter.
        """
        ...

    def stop(self) -> None:
        """Wake every waiter with no changes, e.g. at shutdown."""


class _Waiter:
    __slots__ = ("watches", "deferred", "timer")

    def __init__(self, watches: Mapping[int, int]) -> None:
        self.watches = dict(watches)
        self.deferred: Deferred[Changes] | None = None
        self.timer: IDelayedCall | None = None


class LocalNotifier(ChangeNotifier):
    def __init__(self, clock: IReactorTime, max_timeout: float) -> None:
        self._clock = clock
        self.max_timeout = max_timeout
        self._by_folder: dict[int, set[_Waiter]] = {}

    def waiting(self) -> int:
        return len({w for ws in self._by_folder.values() for w in ws})

    def changed(self, folder_id: int, modseq: int) -> None:
        for waiter in list(self._by_folder.get(folder_id, ())):
            if modseq > waiter.watches[folder_id]:
                self._finish(waiter, [(folder_id, modseq)])

    def wait(self, watches: Mapping[int, int], timeout: float) -> "Deferred[Changes]":
        waiter = _Waiter(watches)
        waiter.deferred = Deferred(lambda _d: self._forget(waiter))
        if not watches:
            # Nothing to watch: a plain sleep would only tie up a connection.
            waiter.deferred.callback([])
            return waiter.deferred
        for folder_id in waiter.watches:
            self._by_folder.setdefault(folder_id, set()).add(waiter)
        delay = max(0.0, min(float(timeout), self.max_timeout))
        waiter.timer = self._clock.callLater(delay, self._finish, waiter, [])
        return waiter.deferred

    def stop(self) -> None:
        for waiter in {w for ws in self._by_folder.values() for w in ws}:
            self._finish(waiter, [])

    def _finish(self, waiter: _Waiter, changes: Changes) -> None:
        deferred = waiter.deferred
        self._forget(waiter)
        if deferred is not None and not deferred.called:
            deferred.callback(changes)

    def _forget(self, waiter: _Waiter) -> None:
        if waiter.timer is not None and waiter.timer.active():
            waiter.timer.cancel()
        waiter.timer = None
        for folder_id in waiter.watches:
            waiters = self._by_folder.get(folder_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._by_folder[folder_id]
