"""Each user's share of a scarce resource: the store's worker threads, a gateway's
connections to the store.

Work goes through `FairShare.run` with its user's key: at most `limit` jobs of one
key hold the resource at once, the rest wait in order on the reactor (holding
nothing), so one user's expensive requests can never take all of it from the
others. Lives on the reactor thread.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from twisted.internet.defer import Deferred


class FairShare:
    """`limit` jobs per key at once (0: no limit). With `cancels_work`, cancelling a running
    job cancels the Deferred of its work (a store call: the connection is dropped); without,
    the job answers CancelledError at once and keeps its slot until the work has ended (a
    thread cannot be stopped from outside: its work budget stops it)."""

    def __init__(self, limit: int, cancels_work: bool = False) -> None:
        self.limit = limit
        self.cancels_work = cancels_work
        self._running: dict[Hashable, int] = {}
        self._waiting: dict[Hashable, deque[Deferred]] = {}

    def running(self, key: Hashable) -> int:
        return self._running.get(key, 0)

    def waiting(self, key: Hashable) -> int:
        return len(self._waiting.get(key, ()))

    def run(self, key: Hashable | None, start: Callable[[], Deferred]) -> Deferred:
        """start() now, or once one of the key's running jobs is done; fires with its result.
        Cancelling a job that still waits takes it out of the queue."""
        if key is None or self.limit <= 0:
            return start()
        if self._running.get(key, 0) < self.limit:
            return self._start(key, start)
        queue = self._waiting.setdefault(key, deque())

        def leave(d: Deferred) -> None:
            try:
                queue.remove(d)
            except ValueError:
                pass
            if not queue and self._waiting.get(key) is queue:
                del self._waiting[key]
        turn: Deferred = Deferred(leave)
        queue.append(turn)
        return turn.addCallback(lambda _: self._start(key, start, already_counted=True))

    def _start(self, key: Hashable, start: Callable[[], Deferred], already_counted: bool = False) -> Deferred:
        if not already_counted:
            self._running[key] = self._running.get(key, 0) + 1
        try:
            work = start()
        except BaseException:
            self._done(key)
            raise
        answer: Deferred = Deferred((lambda _: work.cancel()) if self.cancels_work else None)

        def done(result: Any) -> None:
            self._done(key)
            if not answer.called:
                answer.callback(result)
        work.addBoth(done)
        return answer

    def _done(self, key: Hashable) -> None:
        queue = self._waiting.get(key)
        while queue:
            turn = queue.popleft()
            if not queue:
                del self._waiting[key]
            if not turn.called:
                turn.callback(None)  # the slot passes on: the running count stays
                return
        left = self._running.get(key, 0) - 1
        if left > 0:
            self._running[key] = left
        else:
            self._running.pop(key, None)

