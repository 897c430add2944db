"""One command at a time on a line protocol's connection, the rest held in order.

POP3 and ManageSieve answer each command before they take the next one: a command
that waits for the store returns a Deferred, and what the client pipelined meanwhile
waits in a queue. A client that pipelines more than `max_queued` commands has its
reading paused until half of them ran, so it cannot pile up memory; waiting for the
store does not count as the client's idleness.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

from shared.metrics import observe_command


class SerialCommands:
    """Mixin for a Twisted protocol with `TimeoutMixin`. The protocol provides `dispatch(item)`
    (its answer, or a Deferred while it works), `internal_error()` (tells the client a command
    failed on our side), `idle_timeout()`, `closed`, `command_log` (its logger) and
    `protocol_name` (for the log line)."""

    max_queued = 1000
    command_log: logging.Logger
    protocol_name: str

    def init_commands(self) -> None:
        self.queue: deque[Any] = deque()
        self.busy = False
        self.reading_paused = False
        self.shutting_down = False

    def shutdown(self) -> None:
        """The service is stopping: once the running command has answered (at once when
        none runs), say goodbye (`say_goodbye()`, the protocol's own words) and hang up;
        what the client pipelined after it does not run."""
        if self.shutting_down or self.closed:  # type: ignore[attr-defined]
            return
        self.shutting_down = True
        if not self.busy:
            self.say_goodbye()  # type: ignore[attr-defined]

    def take(self, items: Iterable[Any]) -> None:
        """Queue what the client sent and run what may run now."""
        self.queue.extend(items)
        if len(self.queue) > self.max_queued and not self.reading_paused:
            self.reading_paused = True
            self.transport.pauseProducing()  # type: ignore[attr-defined]
        self.run_queued()

    def drop_queued(self) -> None:
        """Forget what the client pipelined (STARTTLS: nothing sent before the handshake
        may run as if it came over TLS), and read again if that was held back."""
        self.queue.clear()
        if self.reading_paused:
            self.reading_paused = False
            self.transport.resumeProducing()  # type: ignore[attr-defined]

    def run_queued(self) -> None:
        if self.shutting_down:
            if not self.busy and not self.closed:  # type: ignore[attr-defined]
                self.say_goodbye()  # type: ignore[attr-defined]
            return
        while self.queue and not self.busy and not self.closed:  # type: ignore[attr-defined]
            self._run(self.queue.popleft())
        if self.reading_paused and len(self.queue) < self.max_queued // 2 and not self.closed:  # type: ignore[attr-defined]
            self.reading_paused = False
            self.transport.resumeProducing()  # type: ignore[attr-defined]

    def _run(self, item: Any) -> None:
        started = time.monotonic()
        name = self.command_name(item)
        try:
            result = self.dispatch(item)  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001  (a client must never crash the process)
            self.command_log.exception("%s command failed", self.protocol_name)
            self.internal_error()  # type: ignore[attr-defined]
            return
        if isinstance(result, defer.Deferred):
            result.addBoth(self._measured, name, started)
        else:
            observe_command(self.protocol_name, name, started)
        if isinstance(result, defer.Deferred):
            self.busy = True
            self.setTimeout(None)  # type: ignore[attr-defined]  # waiting on us is not idleness
            result.addErrback(self._failed).addBoth(self._unblock)

    def _measured(self, result: Any, name: str, started: float) -> Any:
        observe_command(self.protocol_name, name, started)
        return result

    def command_name(self, item: Any) -> str:
        """The command's name for the metrics (its first word); unknown ones count as other."""
        if isinstance(item, bytes):
            return item.split(b" ", 1)[0][:20].decode("ascii", "replace")
        tokens = getattr(item, "tokens", None)
        first = tokens[0] if tokens else ""
        return str(getattr(first, "name", first) if not isinstance(first, bytes) else "other")[:20]

    def _failed(self, failure: Failure) -> None:
        self.command_log.error("%s command failed: %s", self.protocol_name, failure.getTraceback())
        self.internal_error()  # type: ignore[attr-defined]

    def _unblock(self, _: Any) -> None:
        self.busy = False
        if not self.closed:  # type: ignore[attr-defined]
            # setTimeout(None) above also forgot the period: take it again.
            self.setTimeout(self.idle_timeout())  # type: ignore[attr-defined]
        self.run_queued()
