"""`python -m server`: run the store server alone, in the foreground.

Prints one `listening <address>` line per listener once it is up (tests start
the server on port 0 and read the real port from there).
"""
from __future__ import annotations

import argparse
import logging
import sys

from shared import heap
from shared.config import Config, ConfigError, parse_overrides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server", description="groupware store server")
    parser.add_argument("--data-dir", default="var", help="state directory (database, attachments, socket)")
    parser.add_argument("--config-dir", default="conf", help="directory holding server.cfg (default: conf)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a config option (repeatable)")
    args = parser.parse_args(argv)
    try:
        cfg = Config.load(args.config_dir, args.data_dir, parse_overrides(args.set))
    except ConfigError as err:
        parser.error(str(err))
    logging.basicConfig(stream=sys.stderr, level=cfg.get("log_level").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from twisted.internet import reactor
    from twisted.logger import STDLibLogObserver, globalLogBeginner

    # Twisted's own reports (unhandled errors in Deferreds, ...) go to the same log.
    globalLogBeginner.beginLoggingTo([STDLibLogObserver()], redirectStandardIO=False)

    from server.service import StoreServer

    server = StoreServer(cfg)
    exit_code = [0]

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
        logging.getLogger("server").error("could not start: %s", failure.getErrorMessage())
        exit_code[0] = 1
        reactor.stop()

    reactor.callWhenRunning(lambda: server.start(reactor).addCallbacks(started, failed))
    reactor.addSystemEventTrigger("before", "shutdown", server.stop)
    reactor.run()
    return exit_code[0]


if __name__ == "__main__":
    sys.exit(main())
