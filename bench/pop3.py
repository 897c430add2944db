"""POP3 benchmark: our POP3 gateway against Dovecot's POP3 server, in the same run.

Starts a real `groupware serve` with the POP3 gateway on a loopback port and a
private Dovecot (Debian's dovecot-pop3d, installed when missing) with its own
configuration and Maildir in a temporary directory. Both get the same small
messages (ours appended through the adapter in createMessages batches). With
poplib it then measures, against each, the median of several runs of:

  * login + STAT + UIDL of the whole maildrop, then QUIT;
  * login + RETR of every message, then QUIT (nothing is deleted);

and prints both times and the ratio ours/Dovecot.

    python bench/pop3.py [--messages 10000] [--runs 5] [--retr-runs 3]
"""
from __future__ import annotations

import argparse
import os
import poplib
import statistics
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from harness import ServerProcess  # noqa: E402
from twisted.internet import defer, task  # noqa: E402

from shared.config import Config  # noqa: E402
from shared.model import Adapter  # noqa: E402

# The same user and message shape as the store benchmark beside this file.
from peers import ours_beside_dovecot  # noqa: E402
from store import PASSWORD, SMALL, USER  # noqa: E402


def message(i: int) -> bytes:
    return SMALL % (i, i, i)


# -- our server ---------------------------------------------------------------------------------

@defer.inlineCallbacks
def append_all(reactor, cfg: Config, count: int):
    adapter = Adapter(cfg, reactor)
    session = yield adapter.logon(USER, PASSWORD)
    inbox = yield session.store().inbox()
    uids = yield inbox.append_many([message(i) for i in range(count)])
    assert len(uids) == count
    yield session.logoff()
    adapter.close()


def fill_ours(server: ServerProcess, data_dir: str, options: dict, count: int) -> None:
    cfg = Config({**options, "server_socket": server.socket_path}, data_dir)
    try:
        task.react(lambda reactor: append_all(reactor, cfg, count))
    except SystemExit as done:
        if done.code:
            raise


# -- measurements -------------------------------------------------------------------------------

def login(port: int) -> poplib.POP3:
    client = poplib.POP3("127.0.0.1", port, timeout=120)
    client.user(USER)
    client.pass_(PASSWORD)
    return client


def stat_uidl(port: int, count: int) -> float:
    start = time.perf_counter()
    client = login(port)
    messages, _ = client.stat()
    _, uidls, _ = client.uidl()
    client.quit()
    elapsed = time.perf_counter() - start
    assert messages == count and len(uidls) == count, (messages, len(uidls))
    return elapsed


def retr_all(port: int, count: int) -> float:
    start = time.perf_counter()
    client = login(port)
    size = 0
    for i in range(1, count + 1):
        _, lines, _ = client.retr(i)
        size += len(lines)
    client.quit()
    elapsed = time.perf_counter() - start
    assert size >= count * 7, size
    return elapsed


def median_of(runs: int, fn, *args) -> float:
    return statistics.median(fn(*args) for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5, help="runs of login + STAT + UIDL")
    parser.add_argument("--retr-runs", type=int, default=3, help="runs of RETR of every message")
    args = parser.parse_args()
    n = args.messages
    with ours_beside_dovecot("pop3") as peers:
        start = time.perf_counter()
        fill_ours(peers.server, peers.data_dir, peers.options, n)
        print(f"appended {n:,} messages through the adapter in {time.perf_counter() - start:.1f} s")
        peers.dovecot.folder("INBOX", (message(i) for i in range(n)))
        peers.dovecot.start()
        results = {}
        for name, port in (("ours", peers.port), ("dovecot", peers.dovecot.port)):
            stat_uidl(port, n)  # warm-up: Dovecot builds its index, caches fill
            results[name] = (median_of(args.runs, stat_uidl, port, n),
                             median_of(args.retr_runs, retr_all, port, n))

    ours, theirs = results["ours"], results["dovecot"]
    print(f"login + STAT + UIDL of {n:,} messages (median of {args.runs}): ours {ours[0] * 1000:.0f} ms, "
          f"Dovecot {theirs[0] * 1000:.0f} ms, ratio ours/Dovecot {ours[0] / theirs[0]:.2f}x")
    print(f"RETR of all {n:,} messages (median of {args.retr_runs}): ours {ours[1]:.2f} s, "
          f"Dovecot {theirs[1]:.2f} s, ratio ours/Dovecot {ours[1] / theirs[1]:.2f}x")


if __name__ == "__main__":
    main()
