"""`groupware serve`: the store server and every enabled gateway in one reactor.

The gateways still reach the server through the SOAP contract over its UNIX
socket, exactly as they would from another host, so the all-in-one process
runs the same code paths as a split deployment.
"""
from __future__ import annotations

import logging
import os
import secrets
import signal
import stat

from twisted.internet import defer

from shared import heap
from shared.config import Config
from shared.startup import StartOutcome, exit_within

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


def print_listeners(services) -> None:
    """One banner line per gateway listener, so an admin sees where to point clients."""
    for gateway in services:
        for line in getattr(gateway, "listeners", lambda: [])():
            print(line, flush=True)


def run_gateway(cfg: Config, name: str) -> int:
    """One gateway alone, against the store server at `server_socket`."""
    from twisted.internet import reactor

    from shared.logging import setup_from_config

    setup_from_config(cfg)
    gateway = make_gateway(name, cfg, reactor)
    outcome = StartOutcome(log)

    def running(_):
        heap.settle()
        print_listeners([gateway])
        print(f"groupware {name} is running against {cfg.get('server_socket')}. Stop with Ctrl-C.",
              flush=True)

    def failed(failure):
        outcome.failed(failure, f"could not start {name}")
        reactor.stop()

    def on_signal(signum: int, frame: object) -> None:
        reactor.callFromThread(lambda: reactor.running and reactor.stop())

    for signum in (signal.SIGINT, signal.SIGTERM):
        reactor.callWhenRunning(signal.signal, signum, on_signal)
    reactor.callWhenRunning(lambda: gateway.start().addCallbacks(running, failed))
    reactor.addSystemEventTrigger("before", "shutdown", gateway.stop)
    exit_within(reactor, cfg.get_int("shutdown_timeout"), log)
    reactor.run()
    return outcome.result()


def serve(cfg: Config, demo: bool = False) -> int:
    from twisted.internet import reactor

    from server.service import StoreServer
    from shared.logging import setup_from_config

    os.makedirs(cfg.data_dir, exist_ok=True)
    setup_from_config(cfg)
    login = ensure_demo_user(cfg) if demo else None

    server = StoreServer(cfg)
    services = []

    def started(_):
        starting = []
        for name in enabled_gateways(cfg):
            gateway = make_gateway(name, cfg, reactor)
            services.append(gateway)
            starting.append(gateway.start())
        d = defer.gatherResults(starting, consumeErrors=True)
        d.addCallback(lambda _: running())
        return d

    def running():
        heap.settle()
        log.info("store server listening on %s", cfg.get("server_socket"))
        print_listeners(services)
        if login:
            print(f"Demo login: user {login[0]}, password {login[1]}", flush=True)
        print(f"groupware is running; data in {cfg.data_dir}. Stop with Ctrl-C.", flush=True)

    def failed(failure):
        outcome.failed(failure, "could not start")
        reactor.stop()

    def shutdown():
        for gateway in reversed(services):
            gateway.stop()
        return server.stop()

    outcome = StartOutcome(log)

    def stop_once() -> None:
        if reactor.running and not stopping:
            stopping.append(True)
            reactor.stop()

    def on_signal(signum: int, frame: object) -> None:
        # `make run` and a terminal both deliver Ctrl-C or SIGTERM to the whole
        # process group, so the same signal can arrive twice; stop only once.
        reactor.callFromThread(stop_once)

    stopping: list[bool] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        reactor.callWhenRunning(signal.signal, signum, on_signal)
    # addCallback then addErrback: a gateway that fails to start must stop the process too.
    reactor.callWhenRunning(lambda: server.start(reactor).addCallback(started).addErrback(failed))
    reactor.addSystemEventTrigger("before", "shutdown", shutdown)
    exit_within(reactor, cfg.get_int("shutdown_timeout"), log)
    reactor.run()
    return outcome.result()
