"""The CalDAV/iCal gateway as a service: HTTP and HTTPS listeners, a WSGI thread pool,
one shared adapter.

`make_service(cfg, reactor)` is what `groupware serve` (GATEWAYS) and
`groupware ical` start.
"""
from __future__ import annotations

import logging
from typing import Any

from twisted.internet import defer
from twisted.python.threadpool import ThreadPool

from gateways.caldav.app import CalDAVSite, GatewayResource
from gateways.caldav.radicale_glue import radicale_logger
from gateways.caldav.sessions import SessionCache
from shared.authguard import AuthGuard
from shared.model import Adapter
from shared.tls import server_options

log = logging.getLogger("gateways.caldav")


def parse_listen(value: str) -> list[tuple[str, int]]:
    """`*:8080 127.0.0.1:8081 [::1]:8080` -> [(interface, port)]; `*` is every IPv4 address."""
    out = []
    for item in value.split():
        host, _, port = item.rpartition(":")
        host = host.strip("[]")
        out.append(("" if host in ("*", "") else host, int(port)))
    return out


def route_radicale_log() -> None:
    """Radicale logs to the "radicale" logger; ours decides where it goes. Its per-request
    chatter is debug detail for us."""
    radicale_logger.handlers.clear()
    radicale_logger.propagate = True
    radicale_logger.setLevel(logging.NOTSET)
    logging.getLogger("radicale").setLevel(logging.WARNING if log.getEffectiveLevel() > logging.DEBUG
                                           else logging.DEBUG)


class CalDAVService:
    def __init__(self, cfg: Any, reactor: Any) -> None:
        self.cfg = cfg
        self.reactor = reactor
        self.adapter: Adapter | None = None
        self.sessions: SessionCache | None = None
        self.threadpool: ThreadPool | None = None
        self.ports: list[tuple[str, Any]] = []

    def start(self) -> defer.Deferred:
        return defer.maybeDeferred(self._start)

    def _start(self) -> None:
        cfg = self.cfg
        route_radicale_log()
        cert, key = cfg.get("ssl_certificate_file"), cfg.get("ssl_private_key_file")
        tls = server_options(cert, key or None) if cert else None
        self.adapter = Adapter(cfg, self.reactor)
        self.sessions = SessionCache(self.adapter, cfg.get_int("ical_session_expiry"))
        self.threadpool = ThreadPool(1, cfg.get_int("ical_threads"), name="caldav")
        self.threadpool.start()
        max_size = cfg.get_size("ical_max_request_size")
        root = GatewayResource(self.reactor, self.threadpool, self.adapter, self.sessions, AuthGuard.for_process(cfg, self.reactor),
                               cfg.get_bool("ical_plaintext_auth"), cfg.get_int("ical_retry_after"),
                               max_size)
        site = CalDAVSite(root, max_size)
        try:
            for host, port in parse_listen(cfg.get("ical_listen")):
                self.ports.append(("ical", self.reactor.listenTCP(port, site, interface=host)))
            if tls is not None:
                for host, port in parse_listen(cfg.get("icals_listen")):
                    self.ports.append(("icals", self.reactor.listenSSL(port, site, tls, interface=host)))
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
        if self.threadpool is not None:
            self.threadpool.stop()
            self.threadpool = None
        if self.sessions is not None:
            ds.append(self.sessions.close())
            self.sessions = None
        if self.adapter is not None:
            adapter, self.adapter = self.adapter, None
            defer.DeferredList(ds).addBoth(lambda _: adapter.close())
        return defer.DeferredList(ds)


def make_service(cfg: Any, reactor: Any) -> CalDAVService:
    return CalDAVService(cfg, reactor)
