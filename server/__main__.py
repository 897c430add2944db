"""`python -m server`: run the store server alone, in the foreground.

Prints one `listening <address>` line per listener once it is up (tests start
the server on port 0 and read the real port from there).
"""
from __future__ import annotations

import argparse
import logging
import sys

from shared.config import Config, ConfigError, parse_overrides, report_config_error
from shared.startup import run_reactor


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
    from twisted.internet import reactor

    from server.service import StoreServer
    from shared.metrics import start_all, stop_all, with_metrics

    server = StoreServer(cfg)
    extra: list = []

    def start():
        with_metrics(cfg, reactor, extra, server.ready)
        return server.start(reactor).addCallback(lambda _: start_all(extra))

    def stop():
        return stop_all(extra).addCallback(lambda _: server.stop())

    def running() -> None:
        for port in server.listening_ports:
            address = port.getHost()
            name = getattr(address, "name", None)
            if name is not None:
                where = "unix:" + (name.decode() if isinstance(name, bytes) else name)
            else:
                where = f"tcp:{address.host}:{address.port}"
            print(f"listening {where}", flush=True)
        for service in extra:
            for line in service.listeners():
                print(line, flush=True)
        print("ready", flush=True)

    return run_reactor(cfg, start, stop, running, log=logging.getLogger("server"))


if __name__ == "__main__":
    sys.exit(main())
