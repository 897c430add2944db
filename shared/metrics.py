"""Prometheus metrics of every process, and the listener that serves them with the
health checks (`metrics_listen`, off by default).

What is counted (all under `groupware_`): connections accepted and open per protocol,
commands per protocol and command with their latency, logins by outcome, the
adapter's store calls per operation with their latency, the store's database pool
in use, blob bytes written and blob errors, and deliveries by outcome. `/metrics`
answers in Prometheus' text format, `/healthz` says the process is alive, and
`/readyz` whether the store and its database answer (503 otherwise).

With worker processes (`groupware serve` with store_workers or gateway_workers
above 1) every process writes its values to files in one directory that the
supervisor names in PROMETHEUS_MULTIPROC_DIR before any worker starts, and a
scrape sums them over every process (prometheus_client's multiprocess mode), so
whichever worker answers, the figures are the whole server's.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY
from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.web import resource, server

log = logging.getLogger("groupware.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

CONNECTIONS = Counter("groupware_connections", "Connections accepted", ["protocol"])
CONNECTIONS_OPEN = Gauge("groupware_connections_open", "Connections open now", ["protocol"],
                         multiprocess_mode="livesum")
COMMANDS = Histogram("groupware_command_duration_seconds", "Commands (and HTTP requests) and how long they took",
                     ["protocol", "command"], buckets=LATENCY_BUCKETS)
LOGINS = Counter("groupware_logins", "Login attempts by outcome", ["protocol", "outcome"])
STORE_CALLS = Histogram("groupware_store_call_duration_seconds", "The adapter's calls to the store server",
                        ["operation", "outcome"], buckets=LATENCY_BUCKETS)
DB_POOL = Gauge("groupware_db_pool_connections", "Database connections of the store's pool", ["state"],
                multiprocess_mode="livesum")
BLOB_BYTES = Counter("groupware_blob_bytes_written", "Bytes written to the blob store", ["backend"])
BLOB_ERRORS = Counter("groupware_blob_errors", "Blob store operations that failed", ["backend", "operation"])
DELIVERIES = Counter("groupware_deliveries", "Messages delivered to a recipient, by outcome", ["status"])

# Names a client sends become labels only when they are commands of the protocol; the
# rest is counted as "other", so nobody can grow the label set.
IMAP_COMMANDS = frozenset(
    "CAPABILITY NOOP LOGOUT STARTTLS AUTHENTICATE LOGIN SELECT EXAMINE CREATE DELETE RENAME SUBSCRIBE "
    "UNSUBSCRIBE LIST LSUB STATUS APPEND CHECK CLOSE EXPUNGE SEARCH FETCH STORE COPY MOVE UID IDLE ENABLE "
    "NAMESPACE ID UNSELECT GETQUOTA GETQUOTAROOT GETACL SETACL DELETEACL LISTRIGHTS MYRIGHTS "
    "GETMETADATA SETMETADATA COMPRESS".split())
POP3_COMMANDS = frozenset("USER PASS APOP AUTH STAT LIST RETR DELE NOOP RSET QUIT TOP UIDL CAPA STLS UTF8".split())
SIEVE_COMMANDS = frozenset(
    "AUTHENTICATE STARTTLS LOGOUT CAPABILITY HAVESPACE PUTSCRIPT LISTSCRIPTS SETACTIVE GETSCRIPT DELETESCRIPT "
    "RENAMESCRIPT CHECKSCRIPT NOOP UNAUTHENTICATE".split())
HTTP_METHODS = frozenset("GET HEAD PUT POST DELETE OPTIONS PROPFIND PROPPATCH REPORT MKCOL MKCALENDAR MOVE COPY "
                         "LOCK UNLOCK".split())
KNOWN = {"imap": IMAP_COMMANDS, "pop3": POP3_COMMANDS, "managesieve": SIEVE_COMMANDS, "caldav": HTTP_METHODS}


def command_label(protocol: str, name: str | bytes) -> str:
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    name = name.upper()
    return name if name in KNOWN.get(protocol, ()) else "other"


def observe_command(protocol: str, name: str | bytes, started: float) -> None:
    COMMANDS.labels(protocol, command_label(protocol, name)).observe(time.monotonic() - started)


def measured_requests(request_class: type, protocol: str) -> type:
    """A twisted.web request class whose requests are observed like commands: by HTTP
    method, from the whole request's arrival to the end of the response."""
    class MeasuredRequest(request_class):  # type: ignore[misc, valid-type]
        def process(self) -> Any:
            started = time.monotonic()
            self.notifyFinish().addBoth(lambda _: observe_command(protocol, self.method or b"", started))
            return super().process()
    MeasuredRequest.__name__ = f"Measured{request_class.__name__}"
    return MeasuredRequest


def timed(d: defer.Deferred, observe: Callable[[float, bool], None]) -> defer.Deferred:
    """`observe(seconds, ok)` once `d` fires; `d` is passed on unchanged."""
    started = time.monotonic()

    def done(result: Any) -> Any:
        observe(time.monotonic() - started, not isinstance(result, Failure))
        return result
    return d.addBoth(done)


def instrument_blobs(store: Any, backend: str) -> Any:
    """Count the bytes `store` writes and the operations that fail, in place (the
    object keeps its class: code that asks which kind it is still can)."""
    def metered(name: str, size: Callable[..., int] | None) -> None:
        original = getattr(store, name)
        BLOB_ERRORS.labels(backend, name)  # shown as 0 until one fails

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                result = original(*args, **kwargs)
            except Exception:
                BLOB_ERRORS.labels(backend, name).inc()
                raise
            if size is not None:
                BLOB_BYTES.labels(backend).inc(size(*args, **kwargs))
            return result
        setattr(store, name, call)

    metered("put_bytes", lambda data: len(data))
    metered("put_many", lambda datas: sum(len(d) for d in datas))
    metered("put_file", lambda path: os.path.getsize(path) if os.path.exists(path) else 0)
    metered("open", None)
    metered("delete", None)
    return store


# -- multiprocess mode ----------------------------------------------------------------

def prepare_multiprocess(data_dir: str) -> str:
    """Before worker processes start (and before this process imports anything that
    records): an empty directory for every process's values, named in the environment
    the workers inherit."""
    path = os.path.join(data_dir, "metrics")
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, mode=0o700)
    os.environ[MULTIPROC_ENV] = path
    return path


def process_gone(pid: int) -> None:
    """A worker ended: its live gauges (connections open, pool use) no longer count."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess
        multiprocess.mark_process_dead(pid)


def exposition() -> bytes:
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


# -- the listener -----------------------------------------------------------------------

class _Metrics(resource.Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        return exposition()


class _Live(resource.Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return b"ok\n"


class ReadinessResource(resource.Resource):
    """GET: 200 once `check()` fires, 503 with the reason when it fails: the store's
    `/health` and every process's `/readyz` answer this way."""

    isLeaf = True

    def __init__(self, check: Callable[[], defer.Deferred]) -> None:
        super().__init__()
        self.check = check

    def render_GET(self, request: Any) -> Any:
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")

        def ready(_: Any) -> None:
            request.write(b"ready\n")
            request.finish()

        def not_ready(failure: Any) -> None:
            reason = failure.getErrorMessage()
            log.warning("readiness check failed: %s", reason)
            request.setResponseCode(503)
            request.write(f"not ready: {reason}\n".encode("utf-8", "replace"))
            request.finish()
        finished: list = []
        request.notifyFinish().addBoth(finished.append)
        d = defer.maybeDeferred(self.check)
        d.addCallbacks(ready, not_ready).addErrback(lambda f: None if finished else log.error("%s", f))
        return server.NOT_DONE_YET


class _Site(server.Site):
    noisy = False

    def log(self, request: Any) -> None:
        """Scrapes every few seconds are not worth a log line."""


class MetricsService:
    """`/metrics`, `/healthz` and `/readyz` on `metrics_listen`; `ready()` is the
    readiness check (a Deferred that fails with the reason)."""

    def __init__(self, cfg: Any, reactor: Any, ready: Callable[[], defer.Deferred]) -> None:
        from shared.listeners import Listeners

        self.cfg = cfg
        self.listening = Listeners(reactor)
        root = resource.Resource()
        root.putChild(b"metrics", _Metrics())
        root.putChild(b"healthz", _Live())
        root.putChild(b"readyz", ReadinessResource(ready))
        self.site = _Site(root, timeout=60)

    @staticmethod
    def wanted(cfg: Any) -> bool:
        return bool(cfg.get("metrics_listen").strip())

    def start(self) -> defer.Deferred:
        from shared.endpoints import parse_listen

        addresses = loopback_default(self.cfg.get("metrics_listen"))
        parse_listen(addresses, "metrics_listen")  # a bad value: ConfigError, exit code 2
        self.listening.tcp("metrics", addresses, self.site)
        from shared import runstate
        runstate.provide(lambda: {"listeners": self.listeners()})
        return self.listening.opened()

    def listeners(self) -> list[str]:
        return self.listening.lines()

    def stop(self) -> defer.Deferred:
        return self.listening.stop()


def loopback_default(value: str) -> str:
    """A bare port (`9180`) listens on loopback: metrics are nobody else's business
    unless an address says so."""
    return " ".join(f"127.0.0.1:{item}" if item.isdigit() else item for item in value.split())


def with_metrics(cfg: Any, reactor: Any, services: list, ready: Callable[[], defer.Deferred]) -> None:
    """Append the metrics and health listener to `services` when `metrics_listen` is set;
    `ready()` is its readiness check."""
    if MetricsService.wanted(cfg):
        services.append(MetricsService(cfg, reactor, ready))


def start_all(services: list) -> defer.Deferred:
    return defer.gatherResults([defer.maybeDeferred(s.start) for s in services], consumeErrors=True)


def stop_all(services: list) -> defer.Deferred:
    return defer.DeferredList([defer.maybeDeferred(s.stop) for s in reversed(services)])
