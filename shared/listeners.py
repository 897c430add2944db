"""A service's listening ports, plain and TLS, under the names its banner lines show.

Addresses are read and opened by shared.endpoints, written as every gateway (and
the store server) takes them: `*:143 127.0.0.1:1143 [::1]:143`.
"""
from __future__ import annotations

import logging
from functools import partial
from typing import Any

from twisted.internet import defer

from shared.endpoints import listen, parse_listen, port_address
from shared.proxyprotocol import ProxyHeaderFactory
from shared.socketshare import UnixListenAddress
from shared.tls import ReloadableTLS

__all__ = ["Listeners", "gateway_tls"]

log = logging.getLogger("shared.listeners")


def gateway_tls(cfg: Any) -> Any:
    """The gateways' TLS options from ssl_certificate_file/ssl_private_key_file, or None;
    a reload (SIGHUP) reads the files again."""
    return ReloadableTLS.from_config(cfg, "ssl_certificate_file", "ssl_private_key_file")


class Listeners:
    """The ports one service listens on, each under the name its banner line shows."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.ports: list[tuple[str, Any]] = []
        self._opening: list[defer.Deferred] = []

    def tcp(self, name: str, addresses: str, factory: Any, proxy: Any = None) -> None:
        """Plain ports; with `proxy` (a `shared.proxyprotocol.ProxyPolicy`) each
        connection starts with a PROXY header."""
        self._listen(name, addresses, factory, None, proxy)

    def tls(self, name: str, addresses: str, factory: Any, options: Any, proxy: Any = None) -> None:
        """Implicit-TLS ports; with `proxy`, a PROXY header comes before the handshake."""
        self._listen(name, addresses, factory, options, proxy)

    def unix(self, name: str, path: str, mode: int, factory: Any, option: str) -> None:
        """A UNIX socket at `path` with file mode `mode`; a stale one of a dead process
        is replaced, a live one is an error (`option` names the setting)."""
        slot = len(self.ports)
        self.ports.append((name, None))
        d = listen(self.reactor, UnixListenAddress(path, mode, option), factory, name=name)
        d.addCallback(self._opened, slot)
        self._opening.append(d)

    def _listen(self, name: str, addresses: str, factory: Any, options: Any, proxy: Any) -> None:
        if proxy is not None and addresses.strip() and not proxy.trusted:
            log.warning("%s_listen is set but haproxy_trusted_networks is empty: every connection "
                        "to it is refused", name)
        wrap = None if proxy is None else partial(ProxyHeaderFactory, policy=proxy, reactor=self.reactor, name=name)
        for index, address in enumerate(parse_listen(addresses)):
            # A slot per address keeps the banner in config order, however the
            # endpoints fire.
            slot = len(self.ports)
            self.ports.append((name, None))
            d = listen(self.reactor, address, factory, options, name=f"{name} {index}", proxy=wrap)
            d.addCallback(self._opened, slot)
            self._opening.append(d)

    def _opened(self, port: Any, slot: int) -> None:
        self.ports[slot] = (self.ports[slot][0], port)

    def opened(self) -> defer.Deferred:
        """Fires once every port listens, or fails with the first port that could not."""
        opening, self._opening = self._opening, []
        d = defer.gatherResults(opening, consumeErrors=True)
        d.addErrback(lambda failure: failure.value.subFailure if failure.check(defer.FirstError) else failure)
        return d

    def lines(self) -> list[str]:
        """One banner line per listening socket, with the real port (also for port 0)."""
        return [f"{name} listening on {port_address(port)}" for name, port in self.ports if port is not None]

    def stop(self) -> defer.Deferred:
        ports, self.ports = self.ports, []
        return defer.DeferredList([defer.maybeDeferred(port.stopListening)
                                   for _, port in ports if port is not None])
