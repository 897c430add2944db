"""The CalDAV/iCal gateway as a service: HTTP and HTTPS listeners, a WSGI thread pool,
one shared adapter.

`make_service(cfg, reactor)` is what `groupware serve` (GATEWAYS) and
`groupware ical` start.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from twisted.internet import defer
from twisted.python.threadpool import ThreadPool

from gateways.caldav import context
from gateways.caldav.app import GatewayResource
from gateways.caldav.site import CalDAVSite
from gateways.caldav.scheduling.imip import ImipSender
from gateways.caldav.scheduling.implicit import Scheduler
from gateways.caldav.date_limits import DateLimits
from gateways.caldav.series_limit import SeriesLimit
from gateways.caldav.limits import RequestLimits
from gateways.caldav.radicale_glue import radicale_logger
from gateways.caldav.sessions import SessionCache
from shared.config import ConfigError
from shared.features import CALDAV, WEB
from shared.gateway import GatewayService
from shared.login import LoginService
from shared.metrics import measured_requests

log = logging.getLogger("gateways.caldav")


class StoreErrorLines(logging.Filter):
    """Radicale logs a store error (an outage, a full disk) it met as an exception with a
    traceback on the root logger and a critical 500; the gateway answers it with the store's
    status and logs it in one line of its own, so Radicale's lines about it are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = context.bound()
        return record.levelno < logging.ERROR or ctx is None or ctx.error is None


STORE_ERROR_LINES = StoreErrorLines()


def route_radicale_log() -> None:
    """Radicale logs to the "radicale" logger (and tracebacks to the root logger); ours decides
    where it goes. Its per-request chatter is debug detail for us."""
    radicale_logger.handlers.clear()
    radicale_logger.propagate = True
    radicale_logger.setLevel(logging.NOTSET)
    logging.getLogger("radicale").setLevel(logging.WARNING if log.getEffectiveLevel() > logging.DEBUG
                                           else logging.DEBUG)
    for logger in (radicale_logger, logging.getLogger()):
        if STORE_ERROR_LINES not in logger.filters:
            logger.addFilter(STORE_ERROR_LINES)


class CalDAVService(GatewayService):
    protocol = CALDAV
    counts_user_logins = False

    def __init__(self, cfg: Any, reactor: Any) -> None:
        super().__init__(cfg, reactor)
        self.sessions: SessionCache | None = None
        self.threadpool: ThreadPool | None = None
        self.resource: GatewayResource | None = None
        self.web: Any = None

    def listen(self, login: LoginService, tls: Any) -> None:
        cfg = self.cfg
        route_radicale_log()
        self.sessions = SessionCache(login, cfg.get_int("ical_session_expiry"), cfg.get_int("ical_session_cache"))
        self.threadpool = ThreadPool(1, cfg.get_int("ical_threads"), name="caldav")
        self.threadpool.start()
        max_size = cfg.get_size("ical_max_request_size")
        root = GatewayResource(self.reactor, self.threadpool, login.adapter, self.sessions,
                               cfg.get_bool("ical_plaintext_auth"), cfg.get_int("ical_retry_after"), max_size,
                               RequestLimits.from_config(cfg),
                               cfg.get_int("ical_time_limit"), cfg.get_int("ical_max_instances"),
                               DateLimits(cfg.get_utc_datetime("ical_min_date_time"),
                                          cfg.get_utc_datetime("ical_max_date_time")),
                               cfg.get_int("ical_threads_per_user"), self._web_pages(login),
                               max_query_instances=cfg.get_int("ical_max_query_instances"),
                               scheduler=self._scheduler(),
                               series_limit=SeriesLimit.from_config(cfg.get_int("ical_max_object_instances"),
                                                                    cfg.get_utc_datetime("ical_max_date_time")))
        self.resource = root
        site = CalDAVSite(root, max_size, cfg.get_seconds("ical_timeout"), login.limits,
                          cfg.get_int("ical_retry_after"))
        site.requestFactory = measured_requests(site.requestFactory, "caldav")
        self.listen_plain_and_tls("ical", lambda implicit_tls: site, tls)

    def _scheduler(self) -> Scheduler | None:
        """Implicit scheduling and the outbox (`ical_scheduling`), with iMIP when `imip_smtp_host` is set."""
        cfg = self.cfg
        if not cfg.get_bool("ical_scheduling"):
            return None
        return Scheduler(self.reactor, cfg.get_int("ical_max_schedule_attendees"), ImipSender(cfg, self.reactor))

    def _web_pages(self, login: LoginService) -> Any:
        """The onboarding page and autoconfiguration on the same listeners (`web_onboarding`)."""
        cfg = self.cfg
        if not cfg.get_bool("web_onboarding"):
            return None
        from gateways.caldav.limits import RequestLimits as XmlLimits
        from gateways.web.mobileconfig import ProfileSigner
        from gateways.web.resource import WebPages
        from gateways.web.sessions import WebKey
        from gateways.web.settings import ClientSettings
        signer = None
        if cfg.get_bool("web_sign_profile"):
            if not (cfg.get("ssl_certificate_file") and cfg.get("ssl_private_key_file")):
                raise ConfigError("web_sign_profile", "signing needs ssl_certificate_file and ssl_private_key_file")
            signer = ProfileSigner(cfg.get("ssl_certificate_file"), cfg.get("ssl_private_key_file"))
        sessions = self.sessions

        def password_changed(user: str) -> None:
            # CalDAV keeps a session per user and password: the old password stops there too.
            if sessions is not None:
                sessions.forget(user)
        # A login of the page is a store session that lives web_session_expiry seconds in every
        # store process, so that any gateway process can take it up from its sealed cookie.
        expiry = cfg.get_seconds("web_session_expiry")
        web_login = LoginService(login.adapter, login.guard, WEB, session_lifetime=max(1, int(expiry)))
        self.web = WebPages(self.reactor, web_login, WebKey.from_config(cfg), ClientSettings.from_config(cfg),
                            cfg.get_bool("ical_plaintext_auth"), expiry,
                            cfg.get_seconds("web_download_expiry"), cfg.get_choice("user_plugin") == "db",
                            XmlLimits.from_config(cfg), cfg.get_int("ical_retry_after"),
                            cfg.get("web_organization"), signer, password_changed)
        return self.web

    def release(self) -> list[defer.Deferred]:
        ds = []
        if self.web is not None:
            ds.extend(self.web.close())
            self.web = None
        if self.resource is not None:
            # Requests in the threads stop at their next check instead of holding up the exit.
            self.resource.budgets.cancel_all()
        if self.threadpool is not None:
            ds.append(_stop_off_the_reactor(self.reactor, self.threadpool))
            self.threadpool = None
        if self.sessions is not None:
            ds.append(self.sessions.close())
            self.sessions = None
        return ds


def _stop_off_the_reactor(reactor: Any, pool: ThreadPool) -> defer.Deferred:
    """Stop a thread pool from a thread of its own: joining its workers on the reactor would
    deadlock with a worker that waits for the reactor (writing its answer, a store call)."""
    done: defer.Deferred = defer.Deferred()

    def stop() -> None:
        pool.stop()
        reactor.callFromThread(done.callback, None)
    threading.Thread(target=stop, name="caldav-pool-stop", daemon=True).start()
    return done


def make_service(cfg: Any, reactor: Any) -> CalDAVService:
    return CalDAVService(cfg, reactor)
