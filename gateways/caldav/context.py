"""The request being served by a WSGI thread, and the bridge from that thread to the reactor.

Radicale calls its plugins synchronously from a WSGI worker thread; the adapter
lives on the reactor. `RequestContext.call` runs an adapter call on the reactor
and waits for it in the worker thread, so the reactor itself never blocks.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import maybeDeferred
from twisted.python.failure import Failure

from gateways.caldav.date_limits import DateLimits
from gateways.caldav.series_limit import SeriesLimit
from shared.budget import UNLIMITED, TooMuchWork, WorkBudget
from shared.errors import GroupwareError

_local = threading.local()
# Seconds between looks at the budget while a thread waits for the reactor.
CANCEL_POLL = 0.2


class RequestContext:
    """One authenticated request: who it is for and the store session serving it."""

    def __init__(self, reactor: Any, session: Any, user: str, budget: WorkBudget = UNLIMITED) -> None:
        self.reactor = reactor
        self.session = session
        self.user = user
        # What the request's thread work may spend; cancelled when its client goes away.
        self.budget = budget
        # The dates its requests may reach, shown on every calendar.
        self.date_limits = DateLimits()
        # The recurrence instances one stored object may generate (CALDAV:max-instances).
        self.series_limit = SeriesLimit()
        # The first store error met while serving; the resource maps it to an HTTP status
        # because Radicale turns every plugin exception into a 500.
        self.error: GroupwareError | None = None
        self.folders: dict[str, Any] | None = None  # calendar home by URL segment, listed once per request
        # scheme://host:port the client reached, for URLs in answers (a published calendar's).
        self.base_url = ""
        # An item PUT's If-Match and If-None-Match: *, which the store checks again as it
        # writes, as it checks the UID (None: not an item PUT).
        self.put_conditions: tuple[str | None, bool] | None = None
        # The user's storage quota (shared.model.quota.QuotaInfo), asked once per request
        # that shows a quota property.
        self.quota: Any = None
        # The vCards of a PUT to an address book as the client sent them, by UID: they are
        # stored as sent, not as Radicale writes them again.
        self.put_texts: dict[str, str] = {}
        # An item DELETE's If-Match, checked by the store as it deletes.
        self.delete_condition: str | None = None
        # Recurrence instances the answer holds so far (expanded, or busy periods), and how
        # many one request may hold (ical_max_query_instances, 0: no limit).
        self.instances = 0
        self.max_instances = 0
        # A REPORT's CALDAV:expand and CALDAV:limit-recurrence-set ranges (start, end), if
        # it asks for them.
        self.expand: tuple[Any, Any] | None = None
        # The last object expanded, and its expansion: asked again for the next property.
        self.expanded: tuple[Any, Any] = (None, None)
        self.limit_recurrence_set: tuple[Any, Any] | None = None
        # Implicit scheduling of PUT and DELETE (gateways/caldav/scheduling/implicit.py), or None.
        self.scheduler: Any = None
        # A PUT's or DELETE's If-Schedule-Tag-Match (RFC 6638 section 8.3), and the Schedule-Tag
        # of what a PUT stored (its answer's header), when it is a scheduling object.
        self.schedule_tag_match: str | None = None
        self.schedule_tag: str | None = None
        # A REPORT's CALDAV:limit-freebusy-set range (start, end), if it asks for one.
        self.limit_freebusy_set: tuple[Any, Any] | None = None

    def count_instances(self, n: int) -> None:
        """Count `n` more instances in the answer; past the limit the request is stopped
        (RFC 4791 §7.8: DAV:number-of-matches-within-limits)."""
        self.instances += n
        if self.max_instances and self.instances > self.max_instances:
            self.budget.stop(TooMuchWork(f"the answer would hold more than {self.max_instances} instances"))

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run `fn` (returning a Deferred or a value) on the reactor and wait for its result.

        Like Twisted's blockingCallFromThread, but the wait ends (WorkCancelled) once the
        request's budget is cancelled: a stopping gateway joins its threads, and a thread
        waiting for a reactor that no longer answers would never end."""
        self.budget.check()
        results: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.reactor.callFromThread(lambda: maybeDeferred(fn, *args, **kwargs).addBoth(results.put))
        while True:
            try:
                result = results.get(timeout=CANCEL_POLL)
                break
            except queue.Empty:
                self.budget.check()
        if isinstance(result, Failure):
            if isinstance(result.value, GroupwareError) and self.error is None:
                self.error = result.value
            result.raiseException()
        return result


def bound() -> RequestContext | None:
    """The context of the request this thread serves, if any."""
    return getattr(_local, "context", None)


def current() -> RequestContext:
    ctx = getattr(_local, "context", None)
    if ctx is None:
        raise RuntimeError("no CalDAV request is being served on this thread")
    return ctx


def bind(ctx: RequestContext | None) -> None:
    _local.context = ctx
