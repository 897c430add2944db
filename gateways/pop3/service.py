"""The POP3 gateway as a service: listeners, TLS, options, one shared adapter.

`make_service(cfg, reactor)` is what `groupware serve` (GATEWAYS) and
`groupware pop3` start.
"""
from __future__ import annotations

import logging
from typing import Any

from twisted.internet import protocol

from gateways.pop3.server import POP3Server
from shared.authguard import AuthGuard
from shared.model import Adapter
from shared.gateway import GatewayService

log = logging.getLogger("gateways.pop3")


class POP3Factory(protocol.ServerFactory):
    protocol = POP3Server

    def __init__(self, cfg: Any, adapter: Adapter, guard: AuthGuard, locks: set[str],
                 tls_options: Any, implicit_tls: bool = False) -> None:
        self.adapter = adapter
        self.guard = guard
        self.locks = locks
        self.tls_options = tls_options
        self.implicit_tls = implicit_tls
        self.max_line = cfg.get_int("pop3_max_line")
        self.read_ahead = cfg.get_size("pop3_read_ahead")
        self.timeout = cfg.get_int("pop3_timeout")
        self.disable_plaintext_auth = cfg.get_bool("disable_plaintext_auth")


class POP3Service(GatewayService):
    def listen(self, adapter: Adapter, tls: Any) -> None:
        cfg = self.cfg
        guard, locks = AuthGuard.for_process(cfg, self.reactor), set()
        self.listening.tcp("pop3", cfg.get("pop3_listen"), POP3Factory(cfg, adapter, guard, locks, tls))
        if tls is not None:
            implicit = POP3Factory(cfg, adapter, guard, locks, tls, implicit_tls=True)
            self.listening.tls("pop3s", cfg.get("pop3s_listen"), implicit, tls)


def make_service(cfg: Any, reactor: Any) -> POP3Service:
    return POP3Service(cfg, reactor)
