"""`python -m server`: run the store server alone, in the foreground.

Prints one `listening <address>` line per listener once it is up (tests start
the server on port 0 and read the real port from there).
"""
from __future__ import annotations

import argparse
import logging
import sys

from shared import heap
from shared.config import Config, ConfigError, parse_overrides, report_config_error
from shared.startup import StartOutcome, exit_within


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server", description="groupware store server")
    parser.add_argument("--data-dir", default="var", help="state directory (database, attachments, socket)")
    parser.add_argument("--config-dir", default="conf", help="directory holding server.cfg (default: conf)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a config option (repeatable)")
    args = parser.parse_args(argv)
    try:
        cfg = Config.load(args.config_dir, args.data_dir, parse_overrides(args.set))
        cfg.check()
        return run(cfg)
    except ConfigError as err:
        return report_config_error(parser.prog, err)


def run(cfg: Config) -> int:
    """The store server in this process's reactor until it stops; its exit code."""
    logging.basicConfig(stream=sys.stderr, level=cfg.get_log_level("log_level"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from twisted.internet import reactor
    from twisted.logger import STDLibLogObserver, globalLogBeginner

    # Twisted's own reports (unhandled errors in Deferreds, ...) go to the same log.
    globalLogBeginner.beginLoggingTo([STDLibLogObserver()], redirectStandardIO=False)

    from server.service import StoreServer

    server = StoreServer(cfg)
    outcome = StartOutcome(logging.getLogger("server"))

    def started(_: object) -> None:
        for port in server.listening_ports:
            address = port.getHost()
            name = getattr(address, "name", None)
            if name is not None:
                where = "unix:" + (name.decode() if isinstance(name, bytes) else name)
            else:
                where = f"tcp:{address.host}:{address.port}"
            print(f"listening {where}", flush=True)
        heap.settle()
        print("ready", flush=True)

    def failed(failure) -> None:
        outcome.failed(failure)
        reactor.stop()

    reactor.callWhenRunning(lambda: server.start(reactor).addCallbacks(started, failed))
    reactor.addSystemEventTrigger("before", "shutdown", server.stop)
    exit_within(reactor, cfg.get_int("shutdown_timeout"), logging.getLogger("server"))
    reactor.run()
    return outcome.result()


if __name__ == "__main__":
    sys.exit(main())
