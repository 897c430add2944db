"""Logging set-up shared by the server and the gateways.

Python `logging` is the one sink; Twisted's own log events are bridged into it,
so a reader (or fail2ban) sees one format and one line per event, whichever
library emitted it.
"""
from __future__ import annotations

import logging
import sys
from typing import Any

from twisted.logger import (
    FilteringLogObserver, ILogObserver, LogLevel, LogLevelFilterPredicate, formatEvent,
    globalLogBeginner,
)
from zope.interface import implementer

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_LEVELS = {
    "debug": logging.DEBUG, "info": logging.INFO, "notice": logging.INFO,
    "warning": logging.WARNING, "warn": logging.WARNING, "error": logging.ERROR,
    "critical": logging.CRITICAL, "fatal": logging.CRITICAL,
}
_TWISTED_TO_PY = {
    LogLevel.debug: logging.DEBUG, LogLevel.info: logging.INFO, LogLevel.warn: logging.WARNING,
    LogLevel.error: logging.ERROR, LogLevel.critical: logging.CRITICAL,
}


class OneLineFormatter(logging.Formatter):
    """Folds multi-line messages and tracebacks into one line, so each event is one line."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text.replace("\r", "").replace("\n", " | ")


@implementer(ILogObserver)
class TwistedToLogging:
    """Forwards Twisted log events to Python logging under `twisted.<namespace>`."""

    def __call__(self, event: dict[str, Any]) -> None:
        level = _TWISTED_TO_PY.get(event.get("log_level"), logging.INFO)
        if level == logging.INFO:
            # Twisted's informational events are its own chatter (a factory starting,
            # a port closed): worth reading only when debugging.
            level = logging.DEBUG
        logger = logging.getLogger("twisted." + (event.get("log_namespace") or "log"))
        if not logger.isEnabledFor(level):
            return
        failure = event.get("log_failure")
        message = formatEvent(event)
        exc_info = None
        if failure is not None:
            exc_info = (failure.type, failure.value, failure.getTracebackObject())
        logger.log(level, "%s", message, exc_info=exc_info)


def parse_level(name: str) -> int:
    """A level from a config value: a name (`info`) or a Kopano-style number (0-6)."""
    value = name.strip().lower()
    if value.isdigit():
        # Kopano: 0 none ... 6 debug.
        return {0: logging.CRITICAL + 10, 1: logging.CRITICAL, 2: logging.ERROR,
                3: logging.WARNING, 4: logging.INFO, 5: logging.INFO, 6: logging.DEBUG}.get(
                    int(value), logging.DEBUG)
    if value not in _LEVELS:
        raise ValueError(f"unknown log level {name!r}")
    return _LEVELS[value]


_bridged = False


def setup_logging(level: str = "info", log_file: str = "-", bridge_twisted: bool = True) -> logging.Handler:
    """Send log records at `level` to stderr (`-`) or `log_file`, one line each.

    Replaces any handler an earlier call installed, so re-reading the config
    (SIGHUP) just calls this again. Returns the installed handler.
    """
    global _bridged
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_groupware", False)]:
        root.removeHandler(old)
        old.close()
    handler: logging.Handler
    if log_file in ("", "-"):
        handler = logging.StreamHandler(sys.stderr)
    else:
        # WatchedFileHandler reopens after logrotate moves the file.
        from logging.handlers import WatchedFileHandler
        handler = WatchedFileHandler(log_file, encoding="utf-8")
    handler._groupware = True  # type: ignore[attr-defined]
    handler.setFormatter(OneLineFormatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(parse_level(level))
    # Alembic announces its context at INFO on every start; only a debug log wants it.
    logging.getLogger("alembic").setLevel(logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING)
    if bridge_twisted and not _bridged:
        _bridged = True
        predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)
        globalLogBeginner.beginLoggingTo(
            [FilteringLogObserver(TwistedToLogging(), [predicate])],
            redirectStandardIO=False, discardBuffer=True,
        )
    return handler


def setup_from_config(cfg: Any) -> logging.Handler:
    """`setup_logging` with `log_level` and `log_file` from a `shared.config.Config`."""
    return setup_logging(cfg.get("log_level"), cfg.get("log_file"))
