"""`groupware serve`: the store server and every enabled gateway in one reactor.

The gateways still reach the server through the SOAP contract over its UNIX
socket, exactly as they would from another host, so the all-in-one process
runs the same code paths as a split deployment.
"""
from __future__ import annotations

import logging
import os
import secrets
import stat

from twisted.internet import defer

from shared.client import store_endpoints
from shared.config import Config
from shared.metrics import start_all, with_metrics
from shared.startup import run_reactor

log = logging.getLogger("groupware")

DEMO_USER = "demo"
DEMO_PASSWORD_FILE = "demo-password"

# Gateway name -> "module:factory". A factory takes (cfg, reactor) and returns
# an object with start() and stop() returning Deferreds. Each gateway package
# registers itself here when it exists.
GATEWAYS: dict[str, str] = {
    "imap": "gateways.imap.service:make_service",
    "pop3": "gateways.pop3.service:make_service",
    "caldav": "gateways.caldav.service:make_service",
    "sieve": "gateways.managesieve.service:make_service",
    "lmtp": "gateways.lmtp.service:make_service",
}


def ensure_demo_user(cfg: Config) -> tuple[str, str] | None:
    """Create the demo user once; afterwards report the login it was given.

    The password lives in the data dir (mode 0600) so every `make run` can print
    it again; if an admin changed or removed the demo user, nothing is printed.
    """
    from server.service import open_storage
    from server.users.db import hash_password

    path = os.path.join(cfg.data_dir, DEMO_PASSWORD_FILE)
    storage = open_storage(cfg)
    try:
        if not storage.list_users():
            password = secrets.token_urlsafe(12)
            storage.create_user(DEMO_USER, hash_password(password), fullname="Demo User",
                                email=f"{DEMO_USER}@localhost")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
            with os.fdopen(fd, "w") as fp:
                fp.write(password + "\n")
            return DEMO_USER, password
        if storage.get_user(DEMO_USER) is not None and os.path.exists(path):
            with open(path, encoding="utf-8") as fp:
                return DEMO_USER, fp.read().strip()
        return None
    finally:
        storage.close()


def enabled_gateways(cfg: Config) -> list[str]:
    disabled = set(cfg.get_list("disabled_features"))
    return [name for name in GATEWAYS if name not in disabled]


def make_gateway(name: str, cfg: Config, reactor):
    module_name, _, factory_name = GATEWAYS[name].partition(":")
    module = __import__(module_name, fromlist=[factory_name])
    return getattr(module, factory_name)(cfg, reactor)


def listener_lines(services) -> list[str]:
    """One banner line per gateway listener, so an admin sees where to point clients."""
    return [line for gateway in services for line in getattr(gateway, "listeners", lambda: [])()]


def print_lines(lines: list[str]) -> None:
    for line in lines:
        print(line, flush=True)


def run_gateway(cfg: Config, name: str) -> int:
    """One gateway alone, against the store server at `server_socket`."""
    from twisted.internet import reactor

    gateway = make_gateway(name, cfg, reactor)
    services = [gateway]

    def start() -> defer.Deferred:
        with_metrics(cfg, reactor, services, lambda: gateway.adapter.client.health())
        return gateway.start().addCallback(lambda _: start_all(services[1:]))

    def running() -> None:
        print_lines(listener_lines(services))
        print(f"groupware {name} is running against {' '.join(store_endpoints(cfg))}. Stop with Ctrl-C.",
              flush=True)

    return run_reactor(cfg, start, lambda: stop_gateways(services), running, f"could not start {name}")


def start_gateways(cfg: Config, reactor, services: list) -> defer.Deferred:
    """Every enabled gateway, appended to `services` as it is made; fires once all listen."""
    starting = []
    for name in enabled_gateways(cfg):
        gateway = make_gateway(name, cfg, reactor)
        services.append(gateway)
        starting.append(gateway.start())
    return defer.gatherResults(starting, consumeErrors=True)


def stop_gateways(services: list) -> defer.Deferred:
    return defer.DeferredList([defer.maybeDeferred(gateway.stop) for gateway in reversed(services)])


def worker_counts(cfg: Config) -> dict[str, int]:
    """Processes per role for `groupware serve`: store_workers and gateway_workers,
    0 meaning one per CPU core (no gateway workers when every gateway is disabled)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    counts = {"store": cfg.get_int("store_workers") or cores,
              "gateways": cfg.get_int("gateway_workers") or cores}
    if not enabled_gateways(cfg):
        counts["gateways"] = 0
    return counts


def serve(cfg: Config, demo: bool = False, worker: str | None = None,
          worker_argv: list[str] | None = None) -> int:
    """`groupware serve`: in one process when store_workers and gateway_workers are both
    1, else as a supervisor of worker processes (groupware.supervisor); `worker` is the
    role of such a process."""
    if worker not in (None, "prepare"):
        return run_worker(cfg, worker)
    from shared.privileges import assume

    assume(cfg)  # run_as_user: the data dir and everything in it are that account's
    os.makedirs(cfg.data_dir, exist_ok=True)
    if worker == "prepare":
        return prepare_workers(cfg, demo)
    counts = worker_counts(cfg)
    if counts["store"] > 1 or counts["gateways"] > 1:
        from groupware.supervisor import supervise
        from shared.logging import setup_from_config

        if cfg.get("metrics_listen").strip():
            # Before anything here records a value: every process writes to files there.
            from shared.metrics import prepare_multiprocess
            prepare_multiprocess(cfg.data_dir)
        setup_from_config(cfg)
        return supervise(cfg, worker_argv or [], counts, demo,
                         lambda lines, login: announce(cfg, lines, login))
    login = ensure_demo_user(cfg) if demo else None
    from twisted.internet import reactor

    from server.service import StoreServer

    server = StoreServer(cfg)
    services: list = []

    def ready() -> defer.Deferred:
        # Through a gateway's own client when there is one: the path clients depend on.
        gateway = next((s for s in services if getattr(s, "adapter", None) is not None), None)
        return gateway.adapter.client.health() if gateway is not None else server.ready()

    def start() -> defer.Deferred:
        def more(_: object) -> defer.Deferred:
            extra: list = []
            with_metrics(cfg, reactor, extra, ready)
            services.extend(extra)
            return start_all(extra)
        return server.start(reactor).addCallback(lambda _: start_gateways(cfg, reactor, services)).addCallback(more)

    def stop() -> defer.Deferred:
        return stop_gateways(services).addCallback(lambda _: server.stop())

    def running() -> None:
        announce(cfg, [f"store listening on {cfg.get('server_socket')}", *listener_lines(services)], login)

    return run_reactor(cfg, start, stop, running)


def announce(cfg: Config, lines: list[str], login: tuple[str, str] | None) -> None:
    """The banner of `groupware serve`, once every listener is up; the demo login comes
    last, where someone who just typed `make run` looks."""
    print_lines(lines)
    print(f"groupware is running; data in {cfg.data_dir}. Stop with Ctrl-C.", flush=True)
    if login:
        print(f"Demo login: user {login[0]}, password {login[1]}", flush=True)


def prepare_workers(cfg: Config, demo: bool) -> int:
    """What the supervisor has done before any worker starts, in a process of its own (so
    that the supervisor never holds the storage code's memory): the schema brought up to
    date once (workers that migrated side by side would race), the spool cleared
    (afterwards, uploads in it may be any worker's) and, with `demo`, the demo user made;
    its login, if one is to be shown, is the one line printed."""
    import json

    from server.service import SPOOL_DIR, open_storage, prepare_spool
    from shared.logging import setup_from_config

    setup_from_config(cfg)
    open_storage(cfg).close()
    prepare_spool(os.path.join(cfg.data_dir, SPOOL_DIR))
    login = ensure_demo_user(cfg) if demo else None
    print(json.dumps(list(login) if login else None), flush=True)
    return 0


def run_worker(cfg: Config, role: str) -> int:
    """One worker process of `groupware serve`: the store server ("store") or every
    enabled gateway ("gateways"), on the supervisor's sockets; it tells the supervisor
    when it is ready instead of printing a banner."""
    from twisted.internet import reactor

    from shared.socketshare import report_ready, worker_channel

    worker_channel()  # before anything could start a program that would inherit it
    if role == "store":
        from server.service import StoreServer

        server = StoreServer(cfg)
        extra: list = []
        if not enabled_gateways(cfg):  # no gateway workers: the store workers serve the metrics
            with_metrics(cfg, reactor, extra, server.ready)
        return run_reactor(cfg, lambda: server.start(reactor).addCallback(lambda _: start_all(extra)),
                           lambda: stop_gateways(extra).addCallback(lambda _: server.stop()),
                           lambda: report_ready(listener_lines(extra)))
    services: list = []

    def start() -> defer.Deferred:
        def more(_: object) -> defer.Deferred:
            extra: list = []
            with_metrics(cfg, reactor, extra, lambda: services[0].adapter.client.health())
            services.extend(extra)
            return start_all(extra)
        return start_gateways(cfg, reactor, services).addCallback(more)
    return run_reactor(cfg, start, lambda: stop_gateways(services), lambda: report_ready(listener_lines(services)))
