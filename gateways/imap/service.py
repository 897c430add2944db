"""The IMAP gateway as a service: listeners, TLS, options, one shared adapter.

`make_service(cfg, reactor)` is what `groupware serve` (GATEWAYS) and
`groupware imap` start.
"""
from __future__ import annotations

import logging
from typing import Any

from twisted.internet import defer, protocol

from gateways.imap import dispatch
from gateways.imap.connection import IMAPConnection
from gateways.imap.push import FolderWatches
from shared.authguard import AuthGuard
from shared.model import Adapter
from shared.tls import server_options

log = logging.getLogger("gateways.imap")


class IMAPFactory(protocol.ServerFactory):
    protocol = IMAPConnection

    def __init__(self, cfg: Any, adapter: Adapter, guard: AuthGuard, watches: FolderWatches,
                 tls_options: Any, implicit_tls: bool = False) -> None:
        self.adapter = adapter
        self.guard = guard
        self.watches = watches
        self.tls_options = tls_options
        self.implicit_tls = implicit_tls
        self.max_line = cfg.get_size("imap_max_line")
        self.max_literal = cfg.get_size("imap_max_literal")
        self.timeout = cfg.get_int("imap_timeout")
        self.login_timeout = cfg.get_int("imap_login_timeout")
        self.disable_plaintext_auth = cfg.get_bool("disable_plaintext_auth")


def parse_listen(value: str) -> list[tuple[str, int]]:
    """`*:143 127.0.0.1:1143 [::1]:143` -> [(interface, port)]; `*` is every IPv4 address."""
    out = []
    for item in value.split():
        host, _, port = item.rpartition(":")
        host = host.strip("[]")
        out.append(("" if host in ("*", "") else host, int(port)))
    return out


class IMAPService:
    def __init__(self, cfg: Any, reactor: Any) -> None:
        self.cfg = cfg
        self.reactor = reactor
        self.adapter: Adapter | None = None
        self.ports: list[tuple[str, Any]] = []

    def start(self) -> defer.Deferred:
        return defer.maybeDeferred(self._start)

    def _start(self) -> None:
        cfg = self.cfg
        dispatch.load()
        cert, key = cfg.get("ssl_certificate_file"), cfg.get("ssl_private_key_file")
        tls = server_options(cert, key or None) if cert else None
        self.adapter = Adapter(cfg, self.reactor)
        guard = AuthGuard.for_process(cfg, self.reactor)
        watches = FolderWatches()
        plain = IMAPFactory(cfg, self.adapter, guard, watches, tls)
        try:
            for host, port in parse_listen(cfg.get("imap_listen")):
                self.ports.append(("imap", self.reactor.listenTCP(port, plain, interface=host)))
            if tls is not None:
                implicit = IMAPFactory(cfg, self.adapter, guard, watches, tls, implicit_tls=True)
                for host, port in parse_listen(cfg.get("imaps_listen")):
                    self.ports.append(("imaps", self.reactor.listenSSL(port, implicit, tls, interface=host)))
        except Exception:
            self.stop()
            raise

    def listeners(self) -> list[str]:
        """One banner line per listening socket, with the real port (also for port 0)."""
        lines = []
        for name, port in self.ports:
            address = port.getHost()
            lines.append(f"{name} listening on {address.host}:{address.port}")
        return lines

    def stop(self) -> defer.Deferred:
        ports, self.ports = self.ports, []
        ds = [defer.maybeDeferred(port.stopListening) for _, port in ports]
        if self.adapter is not None:
            self.adapter.close()
            self.adapter = None
        return defer.DeferredList(ds)


def make_service(cfg: Any, reactor: Any) -> IMAPService:
    return IMAPService(cfg, reactor)
