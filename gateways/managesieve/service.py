"""The ManageSieve gateway as a service: listeners, TLS, options, one shared adapter.

`make_service(cfg, reactor)` is what `groupware serve` (GATEWAYS) and
`groupware managesieve` start.
"""
from __future__ import annotations

from typing import Any

from gateways.managesieve.connection import ManageSieveConnection
from shared.features import SIEVE
from shared.gateway import ConnectionFactory, GatewayService
from shared.login import LoginService
from shared.sieve.limits import limits_from_config


class ManageSieveFactory(ConnectionFactory):
    protocol = ManageSieveConnection
    refusal = b'BYE (TRYLATER) "Too many connections from your address, try again later."\r\n'

    def __init__(self, cfg: Any, login: LoginService, tls_options: Any, implicit_tls: bool = False) -> None:
        super().__init__(cfg, login, tls_options, implicit_tls)
        self.reactor = login.adapter.reactor
        self.sieve_limits = limits_from_config(cfg)
        self.max_script_size = self.sieve_limits.max_script_size
        self.max_line = cfg.get_size("managesieve_max_line_length")
        self.timeout = cfg.get_int("managesieve_timeout")
        self.login_timeout = cfg.get_int("managesieve_login_timeout")
        self.max_login_commands = cfg.get_int("managesieve_max_login_commands")


class ManageSieveService(GatewayService):
    protocol = SIEVE

    def listen(self, login: LoginService, tls: Any) -> None:
        self.listen_plain_and_tls("managesieve", lambda implicit_tls: ManageSieveFactory(
            self.cfg, login, tls, implicit_tls), tls)


def make_service(cfg: Any, reactor: Any) -> ManageSieveService:
    return ManageSieveService(cfg, reactor)
