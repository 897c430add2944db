"""How a command's start-up in the reactor ends, for every command that runs one, and a
bound on how long its stop may take (`exit_within`).

A bad option value found while starting is raised again once the reactor has
stopped, so the command's entry point reports it as it reports one found before
(`<prog>: <option>: <what is wrong>`, exit code 2); anything else, such as a port
in use, is logged as `could not start...` and ends the command with exit code 1.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

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


def exit_within(reactor: Any, seconds: int, log: logging.Logger) -> None:
    """Once the reactor starts to shut down, give the process `seconds` (0: forever) to
    end. Work in threads stops at its next budget check (shared/budget.py); work that
    cannot be told to (a database call waiting on a lock) must not keep a stopping
    service alive past the service manager's patience, so then the process exits with
    code 1. The database's transactions make that as safe as a crash."""
    if seconds <= 0:
        return

    def expire() -> None:
        log.error("still stopping after %d s (shutdown_timeout): work in progress did not end; exiting", seconds)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(1)

    def arm() -> None:
        timer = threading.Timer(seconds, expire)
        timer.daemon = True
        timer.start()
    reactor.addSystemEventTrigger("before", "shutdown", arm)
