"""One Twisted reactor running in a background thread for the whole test run.

Tests stay plain synchronous pytest functions and hand work to the reactor with
`ReactorThread.call`, which waits for the Deferred's result (or raises its failure).
The `reactor_thread` fixture (conftest.py) hands it out.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.threads import blockingCallFromThread

from waiting import scaled

# A bound against a hang, not an expected duration: setup calls that store thousands of
# messages take minutes on a crowded machine.
CALL_TIMEOUT = 180
_thread: threading.Thread | None = None


class ReactorThread:
    reactor = reactor

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = CALL_TIMEOUT, **kwargs: Any) -> Any:
        """Run `fn` on the reactor thread; wait for its (Deferred) result, at most `timeout`
        seconds (scaled by TEST_TIMEOUT_SCALE)."""
        def run() -> defer.Deferred:
            d = defer.maybeDeferred(fn, *args, **kwargs)
            return d.addTimeout(scaled(timeout), reactor)
        return blockingCallFromThread(reactor, run)

    def coro(self, fn: Callable[..., Any], *args: Any, timeout: float = CALL_TIMEOUT, **kwargs: Any) -> Any:
        """Run an `async def` on the reactor thread (awaiting Deferreds) and return its result."""
        return self.call(lambda: defer.Deferred.fromCoroutine(fn(*args, **kwargs)), timeout=timeout)


def start_reactor_thread() -> ReactorThread:
    """The reactor running in its thread (started on the first call)."""
    global _thread
    if _thread is None:
        _thread = threading.Thread(target=reactor.run, kwargs={"installSignalHandlers": False},
                                   name="reactor", daemon=True)
        _thread.start()
        started = threading.Event()
        reactor.callFromThread(started.set)
        if not started.wait(10):
            raise RuntimeError("the reactor thread did not start")
    return ReactorThread()
