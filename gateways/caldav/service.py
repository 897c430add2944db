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
from gateways.caldav.limits import RequestLimits
from gateways.caldav.radicale_glue import radicale_logger
from gateways.caldav.sessions import SessionCache
from shared.features import CALDAV
from shared.gateway import GatewayService
from shared.login import LoginService

log = logging.getLogger("gateways.caldav")


def route_radicale_log() -> None:
    """Radicale logs to the "radicale" logger; ours decides where it goes. Its per-request
    chatter is debug detail for us."""
    radicale_logger.handlers.clear()
    radicale_logger.propagate = True
    radicale_logger.setLevel(logging.NOTSET)
    logging.getLogger("radicale").setLevel(logging.WARNING if log.getEffectiveLevel() > logging.DEBUG
                                           else logging.DEBUG)


class CalDAVService(GatewayService):
    protocol = CALDAV
    counts_user_logins = False

    def __init__(self, cfg: Any, reactor: Any) -> None:
        super().__init__(cfg, reactor)
        self.sessions: SessionCache | None = None
        self.threadpool: ThreadPool | None = None

    def listen(self, login: LoginService, tls: Any) -> None:
        cfg = self.cfg
        route_radicale_log()
        self.sessions = SessionCache(login, cfg.get_int("ical_session_expiry"))
        self.threadpool = ThreadPool(1, cfg.get_int("ical_threads"), name="caldav")
        self.threadpool.start()
        max_size = cfg.get_size("ical_max_request_size")
        root = GatewayResource(self.reactor, self.threadpool, login.adapter, self.sessions,
                               cfg.get_bool("ical_plaintext_auth"), cfg.get_int("ical_retry_after"), max_size,
                               RequestLimits.from_config(cfg))
        site = CalDAVSite(root, max_size, cfg.get_seconds("ical_timeout"), login.limits,
                          cfg.get_int("ical_retry_after"))
        self.listen_plain_and_tls("ical", lambda implicit_tls: site, tls)

    def release(self) -> list[defer.Deferred]:
        ds = []
        if self.threadpool is not None:
            self.threadpool.stop()
            self.threadpool = None
        if self.sessions is not None:
            ds.append(self.sessions.close())
            self.sessions = None
        return ds


def make_service(cfg: Any, reactor: Any) -> CalDAVService:
    return CalDAVService(cfg, reactor)
