"""The LMTP gateway as a service: its listeners, limits and the delivery pipeline.

`make_service(cfg, reactor)` is what `groupware serve` (GATEWAYS) and
`groupware lmtp` start. Delivery has no user logins: the pipeline logs on to
the store with the delivery right (shared.delivery).
"""
from __future__ import annotations

import glob
import os
from typing import Any

from twisted.internet import defer

from gateways.lmtp.server import LMTPFactory
from gateways.lmtp.session import Limits
from shared.delivery import Deliverer
from shared.listeners import Listeners
from shared.model import Adapter

SPOOL_DIR = "spool"


class LMTPService:
    def __init__(self, cfg: Any, reactor: Any) -> None:
        self.cfg = cfg
        self.reactor = reactor
        self.adapter: Adapter | None = None
        self.listening = Listeners(reactor)

    def start(self) -> defer.Deferred:
        return defer.maybeDeferred(self._start)

    def _start(self) -> defer.Deferred:
        cfg = self.cfg
        targets = cfg.get_sockets("lmtp_listen")
        mode = cfg.get_mode("lmtp_socket_mode")
        spool_dir = os.path.join(cfg.data_dir, SPOOL_DIR)
        clear_spool(spool_dir)
        self.adapter = Adapter(cfg, self.reactor)
        factory = LMTPFactory(Deliverer(self.adapter, cfg, self.reactor), Limits.from_config(cfg), spool_dir,
                              cfg.get_networks("lmtp_trusted_networks"), cfg.get("lmtp_hostname") or None)
        try:
            for target in targets:
                if isinstance(target, str):
                    self.listening.unix("lmtp", target, mode, factory, "lmtp_listen")
                else:
                    self.listening.tcp("lmtp", f"{target.host or '*'}:{target.port}", factory)
        except Exception:
            self.stop()
            raise
        return self.listening.opened().addErrback(self._not_started)

    def _not_started(self, failure: Any) -> Any:
        self.stop()
        return failure

    def listeners(self) -> list[str]:
        return self.listening.lines()

    def stop(self) -> defer.Deferred:
        done = self.listening.stop()
        if self.adapter is not None:
            adapter, self.adapter = self.adapter, None
            done.addBoth(lambda _: adapter.close())
        return done


def clear_spool(spool_dir: str) -> None:
    """Messages spooled by a previous run were never answered 250: the MTA still has them."""
    os.makedirs(spool_dir, mode=0o700, exist_ok=True)
    for path in glob.glob(os.path.join(spool_dir, "*")):
        try:
            os.unlink(path)
        except OSError:
            pass


def make_service(cfg: Any, reactor: Any) -> LMTPService:
    return LMTPService(cfg, reactor)
