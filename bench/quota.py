"""Quota benchmark: IMAP APPEND rate with storage quota enforcement on against off, in the
same run on the same `groupware serve`.

Usage counters are kept on every write either way (they are what a quota is checked
against, and what GETQUOTA reports); "off" is the bench user without limits (the
server's quota_* options 0), "on" gives the user warn, soft and hard levels far above
what the run stores, so each APPEND is checked against them and none is refused. The
two settings take turns run by run (`groupware quota set`, which applies to the next
write), and each row is the median of `--runs` runs of `--appends` APPENDs, one after the
other on one connection, into one folder.

    python bench/quota.py [--appends 500] [--runs 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from harness import ServerProcess, free_port, wait_for_port  # noqa: E402

from imap import Client, append_message  # noqa: E402
from store import USER, create_bench_user  # noqa: E402

ON = ("--warn", "50G", "--soft", "60G", "--hard", "70G", "--messages", "100000000")
OFF = ("--warn", "default", "--soft", "default", "--hard", "default", "--messages", "default")


def set_levels(server: ServerProcess, levels: tuple[str, ...]) -> None:
    server.cli("quota", "set", USER, *levels)


def append_rate(port: int, count: int, base: int) -> float:
    """APPENDs per second, one after the other on one logged-in connection."""
    client = Client(port)
    client.login()
    client.cmd(b"SELECT INBOX")  # a connection as a mail client keeps it
    start = time.perf_counter()
    for i in range(count):
        client.append(b"INBOX", append_message(base + i))
    elapsed = time.perf_counter() - start
    client.close()
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--appends", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gw-bench-quota-") as base:
        data_dir = os.path.join(base, "groupware")
        port = free_port()
        options = {"imap_listen": f"127.0.0.1:{port}", "log_level": "warning"}
        create_bench_user(options, data_dir)
        server = ServerProcess(data_dir, options).start()
        rates: dict[str, list[float]] = {"off": [], "on": []}
        try:
            wait_for_port(port)
            append_rate(port, 50, 10**8)  # warm-up: first connections, caches
            for run in range(args.runs):
                order = ("off", "on") if run % 2 == 0 else ("on", "off")
                for setting in order:
                    set_levels(server, ON if setting == "on" else OFF)
                    rates[setting].append(append_rate(port, args.appends, (run * 2 + order.index(setting)) * 10**6))
        finally:
            server.stop()
    load = os.getloadavg()
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'row':<44}{'APPEND/s':>10}")
    print(f"{'APPEND, quota off (no limits)':<44}{off:>10.0f}")
    print(f"{'APPEND, quota on (warn/soft/hard checked)':<44}{on:>10.0f}")
    print(f"{'on/off':<44}{on / off:>10.2f}")
    print("runs (APPEND/s): off " + " ".join(f"{r:.0f}" for r in rates["off"])
          + "; on " + " ".join(f"{r:.0f}" for r in rates["on"]))


if __name__ == "__main__":
    main()
