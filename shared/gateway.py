"""What every gateway service shares: one adapter, its listeners, start and stop.

A gateway package subclasses `GatewayService` and fills in `listen()`; `groupware
serve` (its GATEWAYS registry) and the standalone commands only call `start()`,
`listeners()` and `stop()`.
"""
from __future__ import annotations

import abc
from typing import Any

from twisted.internet import defer

from shared.listeners import Listeners, gateway_tls
from shared.model import Adapter


class GatewayService(abc.ABC):
    def __init__(self, cfg: Any, reactor: Any) -> None:
        self.cfg = cfg
        self.reactor = reactor
        self.adapter: Adapter | None = None
        self.listening = Listeners(reactor)

    def start(self) -> defer.Deferred:
        return defer.maybeDeferred(self._start)

    def _start(self) -> defer.Deferred:
        tls = gateway_tls(self.cfg)
        self.adapter = Adapter(self.cfg, self.reactor)
        try:
            self.listen(self.adapter, tls)
        except Exception:
            self.stop()
            raise
        return self.listening.opened().addErrback(self._not_started)

    def _not_started(self, failure: Any) -> Any:
        self.stop()
        return failure

    @abc.abstractmethod
    def listen(self, adapter: Adapter, tls: Any) -> None:
        """Open this gateway's ports on `self.listening`; `tls` is None without a certificate."""

    def listeners(self) -> list[str]:
        return self.listening.lines()

    def release(self) -> list[defer.Deferred]:
        """Let go of what `listen()` set up besides the ports (sessions, threads); the
        adapter closes once these have fired, so logoffs still reach the store."""
        return []

    def stop(self) -> defer.Deferred:
        done = defer.DeferredList([self.listening.stop(), *self.release()])
        if self.adapter is not None:
            adapter, self.adapter = self.adapter, None
            done.addBoth(lambda _: adapter.close())
        return done
