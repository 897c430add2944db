"""The POP3 gateway as a service: listeners, TLS, options, one shared adapter.

`make_service(cfg, reactor)` is what `groupware serve` (GATEWAYS) and
`groupware pop3` start.
"""
from __future__ import annotations

import logging
from typing import Any

from gateways.pop3.server import TOO_MANY_FROM_ADDRESS, POP3Server
from shared.features import POP3
from shared.gateway import ConnectionFactory, GatewayService
from shared.login import LoginService

log = logging.getLogger("gateways.pop3")


class POP3Factory(ConnectionFactory):
    protocol = POP3Server
    refusal = TOO_MANY_FROM_ADDRESS

    def __init__(self, cfg: Any, login: LoginService, locks: set[str], tls_options: Any,
                 implicit_tls: bool = False) -> None:
        super().__init__(cfg, login, tls_options, implicit_tls)
        self.locks = locks
        self.max_line = cfg.get_int("pop3_max_line")
        self.read_ahead = cfg.get_size("pop3_read_ahead")
        self.timeout = cfg.get_int("pop3_timeout")
        self.login_timeout = cfg.get_int("pop3_login_timeout")


class POP3Service(GatewayService):
    protocol = POP3

    def listen(self, login: LoginService, tls: Any) -> None:
        locks: set[str] = set()  # one maildrop per user across the listeners of the process
        self.listen_plain_and_tls("pop3", lambda implicit_tls: POP3Factory(
            self.cfg, login, locks, tls, implicit_tls), tls)


def make_service(cfg: Any, reactor: Any) -> POP3Service:
    return POP3Service(cfg, reactor)
