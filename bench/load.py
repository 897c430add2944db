"""Mixed IMAP load: N clients looping a mail client's work against our suite and Dovecot.

Starts a real `groupware serve` (options from --set, e.g. `--set store_workers=0
--set gateway_workers=0` for one store and one gateway process per core) and a
private Dovecot (Debian's dovecot-imapd, installed when missing), both with the
same ten users and the very same argon2id hash for each, neither caching
credentials. Each client loops, on its user's INBOX (clients of one user share it):

    LOGIN, SELECT INBOX, APPEND (UIDPLUS), FETCH 1:* (FLAGS), UID FETCH <new> BODY.PEEK[],
    UID STORE <new> +FLAGS (\\Deleted), UID EXPUNGE <new>, LOGOUT

checking every answer (any answer but OK counts as an error), for --seconds. It prints
commands per second and p50/p99 latency per command for each server and client count,
and the ratio ours/Dovecot.

    python bench/load.py [--clients 10 50] [--seconds 20] [--set NAME=VALUE ...]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from dovecot import PrivateDovecot  # noqa: E402
from harness import ServerProcess  # noqa: E402
from server.service import open_storage  # noqa: E402
from server.users.db import hash_password  # noqa: E402
from shared.config import Config, parse_overrides  # noqa: E402

USERS = [f"load{i}" for i in range(10)]
PASSWORD = "load-password"
MESSAGE = (b"From: sender@example.org\r\nTo: load@example.org\r\nSubject: load test\r\n"
           b"Message-ID: <%d.%d@example.org>\r\n\r\n" + b"a line of the body of the message\r\n" * 60)
COMMANDS = ("LOGIN", "SELECT", "APPEND", "FETCH FLAGS", "FETCH BODY", "STORE", "EXPUNGE", "LOGOUT")
DOVECOT_TUNING = """
service imap-login {
  process_min_avail = 2
  client_limit = 1000
}
service imap {
  process_limit = 1000
}
default_client_limit = 2000
"""


class Client:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.file = self.sock.makefile("rb")
        self.file.readline()
        self.n = 0

    def cmd(self, text: bytes) -> list[bytes]:
        """Send a command, read its answer; raises unless it ends in OK."""
        self.n += 1
        tag = b"c%d" % self.n
        self.sock.sendall(tag + b" " + text + b"\r\n")
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("closed")
            lines.append(line)
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(line.decode(errors="replace").strip())
                return lines

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def one_loop(port: int, user: str, serial: int, timings: dict[str, list[float]]) -> None:
    def timed(name: str, text: bytes) -> list[bytes]:
        start = time.perf_counter()
        answer = client.cmd(text)
        timings[name].append(time.perf_counter() - start)
        return answer

    client = Client(port)
    try:
        timed("LOGIN", f"LOGIN {user} {PASSWORD}".encode())
        timed("SELECT", b"SELECT INBOX")
        message = MESSAGE % (serial, os.getpid())
        answer = timed("APPEND", b"APPEND INBOX {%d+}\r\n%s" % (len(message), message))
        uid = int(answer[-1].split(b"APPENDUID ", 1)[1].split()[1].rstrip(b"]"))
        timed("FETCH FLAGS", b"FETCH 1:* (FLAGS)")
        body = b"".join(timed("FETCH BODY", b"UID FETCH %d BODY.PEEK[]" % uid))
        if message not in body:
            raise RuntimeError("FETCH BODY answered other bytes")
        timed("STORE", b"UID STORE %d +FLAGS.SILENT (\\Deleted)" % uid)
        timed("EXPUNGE", b"UID EXPUNGE %d" % uid)
        timed("LOGOUT", b"LOGOUT")
    finally:
        client.close()


def load(port: int, clients: int, seconds: float) -> tuple[float, dict[str, list[float]], int]:
    """(commands per second, latencies per command, errors) of `clients` looping for `seconds`."""
    timings: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    deadline = time.monotonic() + seconds
    lock = threading.Lock()

    def worker(i: int) -> None:
        serial = i * 1_000_000
        mine: dict[str, list[float]] = defaultdict(list)
        while time.monotonic() < deadline:
            serial += 1
            try:
                one_loop(port, USERS[i % len(USERS)], serial, mine)
            except Exception as err:  # counted, and the client goes on
                errors.append(str(err))
        with lock:
            for name, values in mine.items():
                timings[name] += values

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    if errors:
        print(f"  {len(errors)} errors, e.g. {errors[0]}", flush=True)
    return sum(len(v) for v in timings.values()) / elapsed, timings, len(errors)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else float("nan")


@contextlib.contextmanager
def ours_and_dovecot(settings: dict[str, str]) -> Iterator[dict[str, int]]:
    PrivateDovecot.install("imap")
    hashed = hash_password(PASSWORD)
    with tempfile.TemporaryDirectory(prefix="gw-bench-load-") as base:
        data_dir = os.path.join(base, "groupware")
        options = {"imap_listen": "127.0.0.1:0", "log_level": "warning", **settings}
        storage = open_storage(Config(options, data_dir))
        try:
            for user in USERS:
                storage.create_user(user, hashed, fullname=user, email=f"{user}@example.org")
        finally:
            storage.close()
        dovecot = PrivateDovecot(os.path.join(base, "dovecot"), "imap", USERS[0], "{ARGON2ID}" + hashed,
                                 tuning=DOVECOT_TUNING,
                                 more_users={user: "{ARGON2ID}" + hashed for user in USERS[1:]})
        server = ServerProcess(data_dir, options).start()
        try:
            dovecot.start()
            yield {"ours": server.port("imap"), "dovecot": dovecot.port}
        finally:
            dovecot.stop()
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="an option of our server (repeatable), e.g. store_workers=0")
    args = parser.parse_args()
    with ours_and_dovecot(parse_overrides(args.set)) as ports:
        for name, port in ports.items():  # warm-up: stores, indexes, login processes
            load(port, 2, 2)
        for clients in args.clients:
            results = {}
            for name, port in ports.items():
                print(f"measuring {name} with {clients} clients ...", flush=True)
                results[name] = load(port, clients, args.seconds)
            print(f"\n{clients} clients, {args.seconds:.0f} s: commands/s ours {results['ours'][0]:.0f}, "
                  f"Dovecot {results['dovecot'][0]:.0f} ({results['ours'][0] / results['dovecot'][0]:.2f}x); "
                  f"errors ours {results['ours'][2]}, Dovecot {results['dovecot'][2]}")
            print(f"{'command':12} {'ours p50':>9} {'p99':>8} {'Dovecot p50':>12} {'p99':>8}   ms")
            for command in COMMANDS:
                ours, dove = results["ours"][1][command], results["dovecot"][1][command]
                print(f"{command:12} {percentile(ours, .5) * 1000:9.1f} {percentile(ours, .99) * 1000:8.1f} "
                      f"{percentile(dove, .5) * 1000:12.1f} {percentile(dove, .99) * 1000:8.1f}")
            print(flush=True)


if __name__ == "__main__":
    main()
