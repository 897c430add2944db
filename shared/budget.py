"""Time budgets for work in worker threads, checked by the work itself.

A thread cannot be stopped from outside, so work whose length a client decides
(reading message sources for a body search, expanding a recurrence rule) runs
under a `WorkBudget` and asks it, every so often, whether to go on: `check()`
raises `OutOfTime` once the request's deadline has passed and `WorkCancelled`
once the reactor has cancelled it (the client went away, the process is
stopping). The budget a thread works under is thread-local, so the loops that
check it need no extra argument:

    with working_under(budget):      # in the worker thread
        ...
        check()                      # in a loop deep inside
"""
from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class BudgetExhausted(Exception):
    """Work stopped by its budget."""


class OutOfTime(BudgetExhausted):
    """The request's time budget ran out."""


class WorkCancelled(BudgetExhausted):
    """Nobody waits for the result any more: the client left or the process is stopping."""


class TooMuchWork(BudgetExhausted):
    """The request asks for more of something than a configured limit allows (e.g. more
    recurrence instances than one expansion may produce)."""


class WorkBudget:
    """A deadline (`seconds` from now; 0 or None: none) and a cancelled flag.

    The reactor thread cancels; worker threads check. A flag and a float need no lock.
    """

    def __init__(self, seconds: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.seconds = seconds or 0
        self.deadline = clock() + seconds if seconds else None
        self.cancelled: str | None = None
        # Why the work was stopped, once it was: code that catches every exception on the
        # way up (a WSGI application) can still tell what happened.
        self.stopped: BudgetExhausted | None = None

    def cancel(self, why: str = "the client went away") -> None:
        if self.cancelled is None:
            self.cancelled = why

    def check(self) -> None:
        if self.cancelled is not None:
            self.stop(WorkCancelled(self.cancelled))
        if self.deadline is not None and self._clock() > self.deadline:
            self.stop(OutOfTime(f"the request took more than its {self.seconds:g} s of work"))

    def stop(self, reason: BudgetExhausted) -> None:
        """Raise `reason`, remembering it."""
        if self is not UNLIMITED and self.stopped is None:
            self.stopped = reason
        raise reason


UNLIMITED = WorkBudget()
_local = threading.local()


def current() -> WorkBudget:
    """The budget the calling thread works under (UNLIMITED outside any)."""
    return getattr(_local, "budget", UNLIMITED)


def check() -> None:
    """Stop the calling thread's work (by raising) when its budget says so."""
    budget = getattr(_local, "budget", None)
    if budget is not None:
        budget.check()


@contextlib.contextmanager
def working_under(budget: WorkBudget) -> Iterator[WorkBudget]:
    previous = getattr(_local, "budget", None)
    _local.budget = budget
    try:
        yield budget
    finally:
        _local.budget = previous


def run_under(budget: WorkBudget, fn: Callable[..., T], *args: Any) -> T:
    """fn(*args) under `budget`, which is checked first (work queued past its end never starts)."""
    with working_under(budget):
        budget.check()
        return fn(*args)


class BudgetRegistry:
    """The budgets of work in progress, so that stopping the process can cancel them all."""

    def __init__(self) -> None:
        self._active: set[WorkBudget] = set()
        self.stopping = False

    def open(self, seconds: float | None) -> WorkBudget:
        budget = WorkBudget(seconds)
        if self.stopping:
            budget.cancel("the server is stopping")
        self._active.add(budget)
        return budget

    def close(self, budget: WorkBudget) -> None:
        self._active.discard(budget)

    def cancel_all(self, why: str = "the server is stopping") -> None:
        self.stopping = True
        for budget in list(self._active):
            budget.cancel(why)

    def __len__(self) -> int:
        return len(self._active)
