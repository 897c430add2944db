"""The store server as one object: storage, thread pool, sessions, notifier, listeners.

    server = StoreServer(cfg)
    d = server.start(reactor)     # fires once every listener is up
    ...
    server.stop()                 # Deferred; closes listeners, sessions and storage

All SQL and blob I/O runs in a dedicated thread pool of `threads` workers, so
the reactor thread only parses, dispatches and writes bytes.
"""
from __future__ import annotations

import glob
import logging
import os
import time
from typing import Any, Callable

from twisted.internet import defer
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from server.bans import StoredBans
from server.caller_rights import CallerRight
from shared.fair_share import FairShare
from server.http import StoreSite
from server.notify import SharedNotifier, make_notifier
from server.sessions import SessionManager, session_key
from server.soap.context import Limits, Services
from server.soap.delivery import delivery_group_commit
from server.users import load_user_backend
from shared.authguard import AuthGuard
from shared.config import Config, ConfigError
from shared.endpoints import listen, port_address
from shared.socketshare import UnixListenAddress, worker_channel
from shared.tls import ReloadableTLS

log = logging.getLogger(__name__)

# Idle keep-alive connections are closed after this long; requests in
# progress (long polls included) are not subject to it.
HTTP_IDLE_TIMEOUT = 300
SPOOL_DIR = "tmp"


def open_storage(cfg: Config) -> Any:
    """Storage with its blob store for the configured engines, schema brought up to date."""
    from server.blobs import open_blob_store
    from server.storage import Storage
    from server.storage.items import KeywordLimits
    from server.storage.quota import QuotaLimits
    from server.storage.engine import database_url

    storage = Storage(database_url(cfg, cfg.data_dir))
    # The database blob backend shares the store's engine (and its pool).
    storage.blobs = open_blob_store(cfg, cfg.data_dir, storage.engine)
    storage.max_folder_depth = cfg.get_int("max_folder_depth")
    storage.max_folder_name_length = cfg.get_int("max_folder_name_length")
    storage.max_folders = cfg.get_int("max_folders")
    storage.folder_owner_cache = cfg.get_int("folder_owner_cache")
    storage.group_cache_ttl = cfg.get_seconds("group_cache_ttl")
    storage.max_acl_entries = cfg.get_int("max_acl_entries")
    storage.keyword_limits = KeywordLimits(cfg.get_int("max_keywords_per_message"), cfg.get_int("max_keyword_length"))
    storage.max_search_scan_keys = cfg.get_int("max_search_scan_keys")
    storage.quota_defaults = QuotaLimits(cfg.get_size("quota_warn"), cfg.get_size("quota_soft"),
                                         cfg.get_size("quota_hard"), cfg.get_int("quota_messages"))
    storage.migrate()
    return storage


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def prepare_spool(spool_dir: str, clear: bool = True) -> None:
    """The upload spool directory; with `clear`, without the uploads a previous run
    left (they belong to sessions that no longer exist)."""
    os.makedirs(spool_dir, mode=0o700, exist_ok=True)
    if clear:
        for path in glob.glob(os.path.join(spool_dir, "upload-*")):
            _unlink(path)


class StoreServer:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.data_dir = cfg.data_dir
        self.listening_ports: list[IListeningPort] = []
        self.storage: Any = None
        self.services: Services | None = None
        self.site: StoreSite | None = None
        self.notifier: SharedNotifier | None = None
        threads = cfg.get_int("threads")
        self.pool = ThreadPool(minthreads=1, maxthreads=threads, name="store-storage")
        # The user backend waits on directories and hashes passwords: its own threads.
        self.user_pool = ThreadPool(minthreads=0, maxthreads=cfg.get_int("user_threads"), name="store-users")
        self._reactor: Any = None
        self._expiry: LoopingCall | None = None
        self._pool_gauge: LoopingCall | None = None
        self._stopping: Deferred | None = None

    def run(self, fn: Callable[..., Any], *args: Any) -> Deferred:
        """fn(*args) in the storage thread pool."""
        return deferToThreadPool(self._reactor, self.pool, fn, *args)

    def run_users(self, fn: Callable[..., Any], *args: Any) -> Deferred:
        """fn(*args) in the user backend's thread pool."""
        return deferToThreadPool(self._reactor, self.user_pool, fn, *args)

    def start(self, reactor: Any) -> Deferred:
        self._reactor = reactor
        return ensureDeferred(self._start(reactor))

    async def _start(self, reactor: Any) -> None:
        cfg = self.cfg
        self.pool.start()
        self.user_pool.start()
        # Whatever happens to stop(), worker threads must not keep the process alive.
        reactor.addSystemEventTrigger("after", "shutdown", self._stop_pool)
        try:
            spool_dir = os.path.join(self.data_dir, SPOOL_DIR)
            # A worker of `groupware serve` shares the spool with the other store workers,
            # whose uploads are live; its supervisor clears the spool before they start.
            await self.run(prepare_spool, spool_dir, worker_channel() is None)
            self.storage = await self.run(open_storage, cfg)
            users = await self.run(load_user_backend, cfg, self.storage)
            # Folder ACLs may name a directory's groups (LDAP/AD, system groups).
            self.storage.directory_groups = getattr(users, "groups_of_login", None)
            public_store_id = await self.run(self.storage.public_store_id)
            self.notifier = make_notifier(cfg, reactor)
            await self.notifier.start()
            sessions = SessionManager(cfg.get_int("session_timeout"),
                                      lambda path: self.run(_unlink, path), reactor.seconds, key=session_key(cfg),
                                      max_lifetime=cfg.get_seconds("session_max_lifetime"))
            # Logoffs reach the other store processes, which then refuse the session too.
            sessions.on_end = self.notifier.ended
            self.notifier.session_ended = lambda session_id: sessions.end(session_id, here=False)
            limits = Limits(
                max_message_size=cfg.get_size("max_message_size"),
                inline_source_limit=cfg.get_size("inline_source_limit"),
                disabled_features=frozenset(cfg.get_list("disabled_features")),
                max_sieve_script_size=cfg.get_size("max_sieve_script_size"),
                max_sieve_scripts=cfg.get_int("max_sieve_scripts"),
                max_deliveries_per_message=cfg.get_int("max_deliveries_per_message"),
                delivery_duplicate_window=cfg.get_int("delivery_duplicate_window"),
                recipient_delimiter=cfg.get("recipient_delimiter"),
                max_calendar_import_objects=cfg.get_int("max_calendar_import_objects"),
                max_schedule_recipients=cfg.get_int("max_schedule_recipients"),
                max_freebusy_items=cfg.get_int("max_freebusy_items"),
            )
            stored = cfg.get_choice("logon_bans") == "database"
            logon_guard = AuthGuard(cfg, reactor, StoredBans(self.storage, self.run, reactor.seconds)
                                    if stored else None, scope="store")
            self.services = Services(self.storage, users, sessions, self.notifier, limits, self.run, self.run_users,
                                     public_store_id, spool_dir, CallerRight.delivery(cfg),
                                     CallerRight.gateway(cfg), logon_guard,
                                     work_time_limit=cfg.get_int("worker_time_limit"),
                                     thread_share=FairShare(cfg.get_int("max_user_threads")))
            self.services.deliveries = delivery_group_commit(self.services)
            self.site = StoreSite(self.services, cfg.get_size("max_soap_size"), HTTP_IDLE_TIMEOUT,
                                  cfg.get_size("max_soap_size_before_logon"))
            self._expiry = LoopingCall(self._expire, sessions)
            self._expiry.clock = reactor
            self._expiry.start(max(1.0, min(60.0, sessions.timeout / 4)), now=False)
            from shared import runstate
            runstate.provide(lambda: {"parts": ["store"], "listeners": self.listener_lines(),
                                      "sessions": sessions.by_protocol()})
            self._pool_gauge = LoopingCall(self._measure_pool)
            self._pool_gauge.clock = reactor
            self._pool_gauge.start(5.0, now=True)
            await self._listen(reactor)
        except BaseException:
            await self.stop()
            raise

    def _expire(self, sessions: SessionManager) -> Deferred:
        """Idle sessions of this process go; so do the calendar imports nobody staged to
        for `session_timeout` seconds, whichever process or instance staged them."""
        sessions.expire()
        before = int(time.time() - sessions.timeout)
        d = self.run(self.storage.drop_stale_calendar_imports, before)
        d.addCallback(lambda dropped: dropped and log.info("dropped %d staged calendar objects of abandoned imports",
                                                            dropped))
        d.addErrback(lambda failure: log.error("could not drop abandoned calendar imports: %s",
                                               failure.getErrorMessage()))
        return d

    async def _listen(self, reactor: Any) -> None:
        cfg = self.cfg
        address = cfg.get_store_address("server_socket")
        if address is not None:
            if address.is_tcp:
                raise ConfigError("server_socket", "the store server listens on a UNIX socket path here; "
                                  "TCP and TLS listeners are server_listen and server_listen_tls")
            socket_path = address.path
            unix_address = UnixListenAddress(socket_path, cfg.get_mode("server_pipe_mode"), "server_socket")
            port = await listen(reactor, unix_address, self.site)
            self._listening(port, f"unix:{socket_path}")
        for index, tcp in enumerate(cfg.get_listen("server_listen")):
            port = await listen(reactor, tcp, self.site, name=f"server_listen {index}")
            self._listening(port, f"tcp:{port_address(port)}")
        tls_addresses = cfg.get_listen("server_listen_tls")
        if tls_addresses:
            options = self._tls_options()
            for index, tls in enumerate(tls_addresses):
                port = await listen(reactor, tls, self.site, options, name=f"server_listen_tls {index}")
                self._listening(port, f"tls:{port_address(port)}")
        if not self.listening_ports:
            raise ConfigError("server_socket", "no listener configured: set server_socket or server_listen")

    def _listening(self, port: IListeningPort, what: str) -> None:
        self.listening_ports.append(port)
        log.debug("store server listening on %s", what)

    def _tls_options(self) -> Any:
        if not (self.cfg.get_file("server_ssl_cert_file") and self.cfg.get_file("server_ssl_key_file")):
            raise ConfigError("server_listen_tls", "needs server_ssl_cert_file and server_ssl_key_file")
        return ReloadableTLS.from_config(self.cfg, "server_ssl_cert_file", "server_ssl_key_file", prefix="server_")

    def listener_lines(self) -> list[str]:
        lines = []
        for port in self.listening_ports:
            address = port.getHost()
            name = getattr(address, "name", None)
            where = (name.decode() if isinstance(name, bytes) else name) if name is not None \
                else f"{address.host}:{address.port}"
            lines.append(f"store listening on {where}")
        return lines

    def _measure_pool(self) -> Deferred | None:
        """The pool gauge, read in the storage threads like every storage call."""
        from shared.metrics import DB_POOL
        if self.storage is None:
            return None

        def gauge(counts: dict[str, int]) -> None:
            for state, count in counts.items():
                DB_POOL.labels(state).set(count)

        # A failed reading (the pool stopping) must not end the looping call.
        return self.run(self.storage.pool_use).addCallbacks(gauge, lambda failure: None)

    def ready(self) -> Deferred:
        """Fires when the database answers (metrics_listen's /readyz)."""
        if self.storage is None:
            return defer.fail(RuntimeError("the store server is not started"))
        return self.run(self.storage.ping)

    def stop(self) -> Deferred:
        if self._stopping is None:
            self._stopping = ensureDeferred(self._stop())
        return self._stopping

    async def _stop(self) -> None:
        if self.services is not None:
            # Work in the threads stops at its next check instead of holding up the exit.
            self.services.budgets.cancel_all()
        ports, self.listening_ports = self.listening_ports, []
        for port in ports:
            try:
                await port.stopListening()
            except Exception:
                log.exception("could not close listener %s", port)
        if self._expiry is not None and self._expiry.running:
            self._expiry.stop()
        if self._pool_gauge is not None and self._pool_gauge.running:
            self._pool_gauge.stop()
        if self.notifier is not None:
            self.notifier.stop()
        if self.services is not None:
            self.services.sessions.clear()
        if self.storage is not None and self.pool.started:
            try:
                await self.run(self.storage.close)
            except Exception:
                log.exception("closing storage failed")
        self._stop_pool()

    def _stop_pool(self) -> None:
        if self.user_pool.started:
            self.user_pool.stop()
        if self.pool.started:
            # Let queued work (upload removals, storage close) run before joining.
            self.pool.stop()

