"""Logging set-up shared by the server and the gateways.

Python `logging` is the one sink; Twisted's own log events are bridged into it,
so a reader (or fail2ban) sees one format and one line per event, whichever
library emitted it.
"""
from __future__ import annotations

import datetime
import json
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


class JSONLineFormatter(logging.Formatter):
    """One JSON object per line (`log_format = json`): time (UTC, ISO 8601), level,
    logger, message, process, and the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class SyslogFormatter(logging.Formatter):
    """Syslog adds the time itself; the ident and pid come first (RFC 3164 TAG)."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return f"groupware[{record.process}]: {self.inner.format(record)}"


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


def _syslog_handler(address: str, facility: str) -> logging.Handler:
    from logging.handlers import SysLogHandler

    target: Any = address
    if not address.startswith("/"):
        host, _, port = address.rpartition(":")
        target = (host.strip("[]") or "localhost", int(port or 514))
    return SysLogHandler(address=target, facility=SysLogHandler.facility_names[facility])


def setup_logging(level: str = "info", log_file: str = "-", bridge_twisted: bool = True,
                  method: str = "file", line_format: str = "text", facility: str = "mail",
                  syslog_address: str = "/dev/log") -> logging.Handler:
    """Send log records at `level` to stderr (`-`), `log_file` or syslog (`method`),
    one line each, as text or JSON (`line_format`).

    Replaces any handler an earlier call installed, so re-reading the config
    (SIGHUP) just calls this again: a rotated log file is opened anew. Returns the
    installed handler.
    """
    global _bridged
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_groupware", False)]:
        root.removeHandler(old)
        old.close()
    handler: logging.Handler
    formatter: logging.Formatter = JSONLineFormatter() if line_format == "json" else OneLineFormatter(FORMAT)
    if method == "syslog":
        handler = _syslog_handler(syslog_address, facility)
        formatter = SyslogFormatter(formatter)
    elif log_file in ("", "-"):
        handler = logging.StreamHandler(sys.stderr)
    else:
        # WatchedFileHandler reopens after logrotate moves the file.
        from logging.handlers import WatchedFileHandler
        handler = WatchedFileHandler(log_file, encoding="utf-8")
    handler._groupware = True  # type: ignore[attr-defined]
    handler.setFormatter(formatter)
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
    """`setup_logging` with `log_level`, `log_file`, `log_method`, `log_format` and
    `log_syslog_facility` from a `shared.config.Config`."""
    return setup_logging(cfg.get("log_level"), cfg.get("log_file"), method=cfg.get_choice("log_method"),
                         line_format=cfg.get_choice("log_format"), facility=cfg.get_choice("log_syslog_facility"),
                         syslog_address=cfg.get("log_syslog_address"))
