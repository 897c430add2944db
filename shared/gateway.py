"""What every gateway service shares: one adapter, its listeners, start and stop.

A gateway package subclasses `GatewayService` and fills in `listen()`; `groupware
serve` (its GATEWAYS registry) and the standalone commands only call `start()`,
`listeners()` and `stop()`.
"""
from __future__ import annotations

from typing import Any

from twisted.internet import defer

from shared.listeners import Listeners, gateway_tls
from shared.model import Adapter


class GatewayService:
    def __init__(self, cfg: Any, reactor: Any) -> None:
        self.cfg = cfg
        self.reactor = reactor
        self.adapter: Adapter | None = None
        self.listening = Listeners(reactor)

    def start(self) -> defer.Deferred:
        return defer.maybeDeferred(self._start)

    def _start(self) -> None:
        tls = gateway_tls(self.cfg)
        self.adapter = Adapter(self.cfg, self.reactor)
        try:
            self.listen(self.adapter, tls)
        except Exception:
            self.stop()
            raise

    def listen(self, adapter: Adapter, tls: Any) -> None:
        """Open this gateway's ports on `self.listening`; `tls` is None without a certificate."""
        raise NotImplementedError

    def listeners(self) -> list[str]:
        return self.listening.lines()

    def stop(self) -> defer.Deferred:
        ds = [self.listening.stop()]
        if self.adapter is not None:
            self.adapter.close()
            self.adapter = None
        return defer.DeferredList(ds)
