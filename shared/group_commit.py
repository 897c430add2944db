"""Group commit: work that arrives while a group is being committed waits, and the
next commit takes all of it at once.

Concurrent deliveries (ten LMTP sessions, several MTAs) otherwise each pay for a
store call and a transaction of their own and queue on the database's write lock
one by one; in a group they share one call, one lock, one commit and one counter
update per folder, and each is answered once that commit is done. Nothing waits for
a timer: when nothing is being committed, work goes at once, so a writer alone is as
fast as before. Lives on the reactor thread.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

Item = TypeVar("Item")


class GroupCommit(Generic[Item]):
    """`commit(items)` -> Deferred firing with one result per item, in order (an exception
    instance for an item that failed alone); a failed Deferred fails every item of the group.
    One group at a time; a group takes the waiting items in order for as long as, for each
    (limit, weight) of `bounds`, their weights add up to at most the limit (the first item
    always goes, whatever it weighs)."""

    def __init__(self, commit: Callable[[list[Item]], Deferred],
                 bounds: Sequence[tuple[int, Callable[[Item], int]]]) -> None:
        self.commit = commit
        self.bounds = bounds
        self.waiting: list[tuple[Item, Deferred]] = []
        self.committing = False

    @property
    def idle(self) -> bool:
        """Nothing is being committed or waiting: an item added now is committed at once, alone."""
        return not self.committing and not self.waiting

    def add(self, item: Item) -> Deferred:
        """Fires with the item's result once the group it went in is committed."""
        done: Deferred = Deferred()
        self.waiting.append((item, done))
        if not self.committing:
            self._next()
        return done

    def _next(self) -> None:
        if not self.waiting:
            return
        taken = 0
        totals = [0] * len(self.bounds)
        for item, _ in self.waiting:
            totals = [total + weight(item) for total, (_, weight) in zip(totals, self.bounds)]
            if taken and any(total > limit for total, (limit, _) in zip(totals, self.bounds)):
                break
            taken += 1
        group, self.waiting = self.waiting[:taken], self.waiting[taken:]
        self.committing = True
        try:
            result = self.commit([item for item, _ in group])
        except BaseException:  # noqa: BLE001 - answered to the group's writers below
            result = Deferred()
            result.errback(Failure())
        result.addBoth(self._committed, group)

    def _committed(self, outcome: Any, group: list[tuple[Item, Deferred]]) -> None:
        # The next group starts before this one's writers are answered: it commits meanwhile.
        self.committing = False
        self._next()
        if isinstance(outcome, Failure):
            for _, done in group:
                done.errback(outcome)
            return
        for (_, done), result in zip(group, outcome):
            if isinstance(result, BaseException):
                done.errback(Failure(result))
            else:
                done.callback(result)
