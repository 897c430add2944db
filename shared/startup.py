"""How a command's start-up in the reactor ends, for every command that runs one.

A bad option value found while starting is raised again once the reactor has
stopped, so the command's entry point reports it as it reports one found before
(`<prog>: <option>: <what is wrong>`, exit code 2); anything else, such as a port
in use, is logged as `could not start...` and ends the command with exit code 1.
"""
from __future__ import annotations

import logging

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
