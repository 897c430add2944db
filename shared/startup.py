"""How every long-running command runs its reactor, how its start-up ends, and a
bound on how long its stop may take (`exit_within`).

`run_reactor` is the one start path of `groupware serve` (and its workers), the
standalone gateways and `python -m server`. A bad option value found while starting
is raised again once the reactor has stopped, so the command's entry point reports
it as it reports one found before (`<prog>: <option>: <what is wrong>`, exit code 2);
anything else, such as a port in use, is logged as `could not start...` and ends the
command with exit code 1.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

from shared import heap
from shared.config import ConfigError


class StartOutcome:
    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.exit_code = 0
        self.config_error: ConfigError | None = None

    def failed(self, failure: Failure, what: str = "could not start") -> None:
        if isinstance(failure.value, defer.FirstError):
            failure = failure.value.subFailure
        if failure.check(ConfigError):
            self.config_error = failure.value
        else:
            self.log.error("%s: %s", what, failure.getErrorMessage())
        self.exit_code = 1

    def result(self) -> int:
        """The exit code, once the reactor has stopped; raises the ConfigError if any."""
        if self.config_error is not None:
            raise self.config_error
        return self.exit_code


def exit_within(reactor: Any, seconds: int | Callable[[], int], log: logging.Logger) -> None:
    """Once the reactor starts to shut down, give the process `seconds` (0: forever; a
    callable is asked then, so a reload may have changed it) to end. Work in threads stops at its next budget check (shared/budget.py); work that
    cannot be told to (a database call waiting on a lock) must not keep a stopping
    service alive past the service manager's patience, so then the process exits with
    code 1. The database's transactions make that as safe as a crash."""
    limit = seconds if callable(seconds) else (lambda: seconds)

    def expire(after: int) -> None:
        log.error("still stopping after %d s (shutdown_timeout): work in progress did not end; exiting", after)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(1)

    def arm() -> None:
        after = limit()
        if after <= 0:
            return
        timer = threading.Timer(after, expire, (after,))
        timer.daemon = True
        timer.start()
    reactor.addSystemEventTrigger("before", "shutdown", arm)


def run_reactor(cfg: Any, start: Callable[[], Any], stop: Callable[[], Any], running: Callable[[], None],
                what: str = "could not start", log: logging.Logger = logging.getLogger("groupware")) -> int:
    """The one way every long-running command runs: logging from the config, start()
    (a Deferred) once the reactor runs, running() once it has fired, stop() (a Deferred)
    before the reactor ends; SIGINT and SIGTERM stop it once, SIGHUP reloads
    (shared.reload). With run_as_user it works as that account from the start and
    gives up root once it listens (shared.privileges). Its exit code; a bad option
    found while starting is raised again as ConfigError (exit code 2)."""
    from twisted.internet import reactor

    from shared import privileges
    from shared.logging import setup_from_config
    from shared.reload import reload
    from shared.runstate import RunStateWriter

    privileges.assume(cfg)
    setup_from_config(cfg)
    outcome = StartOutcome(log)
    stopping: list[bool] = []

    def stop_once() -> None:
        if reactor.running and not stopping:
            stopping.append(True)
            reactor.stop()

    def on_signal(signum: int, frame: object) -> None:
        # `make run` and a terminal both deliver Ctrl-C or SIGTERM to the whole
        # process group, so the same signal can arrive twice; stop only once.
        reactor.callFromThread(stop_once)

    def failed(failure) -> None:
        outcome.failed(failure, what)
        stop_once()

    writer = RunStateWriter(cfg.data_dir)

    def started(_: object) -> None:
        privileges.drop(cfg)
        # The reactor's pool (file reads and writes off the reactor thread) starts its
        # threads when work comes and never ends them, so its size only grows, with each
        # rare moment that finds all of them busy, until its maximum: start them all now,
        # so that a serving process has the threads it will have from its start.
        pool = reactor.getThreadPool()
        pool.adjustPoolsize(minthreads=pool.max)
        heap.settle()
        writer.start(reactor)
        heap.keep_trimmed(reactor, cfg.get_int("memory_trim_interval"))
        running()

    def on_hangup(signum: int, frame: object) -> None:
        reactor.callFromThread(lambda: None if stopping else reload(cfg))

    for signum in (signal.SIGINT, signal.SIGTERM):
        reactor.callWhenRunning(signal.signal, signum, on_signal)
    reactor.callWhenRunning(signal.signal, signal.SIGHUP, on_hangup)
    # addCallback then addErrback: a failure in running() must stop the process too.
    reactor.callWhenRunning(lambda: defer.maybeDeferred(start).addCallback(started).addErrback(failed))
    reactor.addSystemEventTrigger("before", "shutdown", writer.stop)
    reactor.addSystemEventTrigger("before", "shutdown", stop)
    exit_within(reactor, lambda: cfg.get_int("shutdown_timeout"), log)
    reactor.run()
    return outcome.result()
