"""Pacing a push producer: the flag its consumer sets, and a wait for the consumer to resume.

A Twisted transport pauses its producer when its write buffer passes the high-water
mark and resumes it once the peer has read enough. Whatever writes on such a
transport in a loop asks `wait()` before it goes on.
"""
from __future__ import annotations

from twisted.internet import defer


class PauseGate:
    """Open until `pause()`, open again at `resume()`; `wait()` fires when it is open."""

    def __init__(self) -> None:
        self.paused = False
        self._waiting: defer.Deferred | None = None

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.callback(None)

    def wait(self) -> defer.Deferred:
        """Fires (None) at once when open, else at the next `resume()`; one waiter at a time."""
        if not self.paused:
            return defer.succeed(None)
        if self._waiting is None:
            self._waiting = defer.Deferred()
        return self._waiting
