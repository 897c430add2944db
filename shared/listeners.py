"""Listening sockets from the config: `host:port` lists, plain and TLS, and banner lines.

Every gateway (and the store server) listens on addresses written the same way,
`*:143 127.0.0.1:1143 [::1]:143`, where `*` (or nothing) is every IPv4 address.
"""
from __future__ import annotations

from typing import Any

from twisted.internet import defer

from shared.config import ConfigError
from shared.tls import server_options


def parse_address(value: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `*:port` -> (interface, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"listen address {value!r}: expected host:port")
    host = host.strip("[]")
    return ("" if host in ("", "*") else host), int(port)


def parse_listen(value: str) -> list[tuple[str, int]]:
    """A space- or comma-separated list of addresses -> [(interface, port)]."""
    return [parse_address(item) for item in value.replace(",", " ").split()]


def gateway_tls(cfg: Any) -> Any:
    """The gateways' TLS options from ssl_certificate_file/ssl_private_key_file, or None."""
    cert, key = cfg.get("ssl_certificate_file"), cfg.get("ssl_private_key_file")
    return server_options(cert, key or None) if cert else None


class Listeners:
    """The ports one service listens on, each under the name its banner line shows."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.ports: list[tuple[str, Any]] = []

    def tcp(self, name: str, addresses: str, factory: Any) -> None:
        for host, port in parse_listen(addresses):
            self.ports.append((name, self.reactor.listenTCP(port, factory, interface=host)))

    def tls(self, name: str, addresses: str, factory: Any, options: Any) -> None:
        for host, port in parse_listen(addresses):
            self.ports.append((name, self.reactor.listenSSL(port, factory, options, interface=host)))

    def lines(self) -> list[str]:
        """One banner line per listening socket, with the real port (also for port 0)."""
        return [f"{name} listening on {port.getHost().host}:{port.getHost().port}"
                for name, port in self.ports]

    def stop(self) -> defer.Deferred:
        ports, self.ports = self.ports, []
        return defer.DeferredList([defer.maybeDeferred(port.stopListening) for _, port in ports])
