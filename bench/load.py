"""Mixed IMAP load: N clients looping a mail client's work against our suite and Dovecot.

Starts two real `groupware serve` (one with a single process, store and gateways in it:
store_workers=1 gateway_workers=1; one with a store and a gateway process per core:
store_workers=0 gateway_workers=0; more options for both from --set) and a private
Dovecot (Debian's dovecot-imapd, installed when missing), all with the same ten users
and the very same argon2id hash for each, and the same credentials cache (--auth-cache:
our `auth_cache_size`, Dovecot's `auth_cache_size`, both with a one-hour ttl; 0: no cache
on either). Each client loops,
on its user's INBOX (clients of one user share it):

    LOGIN, SELECT INBOX, APPEND (UIDPLUS), FETCH 1:* (FLAGS), UID FETCH <new> BODY.PEEK[],
    UID STORE <new> +FLAGS (\\Deleted), UID EXPUNGE <new>, LOGOUT

checking every answer (any answer but OK counts as an error), for --seconds, --runs
times, the three servers in turn in each run. It prints, per client count, the medians
over the runs of commands per second, of the CPU time each server's processes spent per
command, and of p50/p99 latency per command, with the ratios ours/Dovecot. Then the push
delay across two store instances on one database (an IDLE client on a gateway of one
hears of APPENDs through a gateway of the other), p50 and p99.

    python bench/load.py [--clients 10 50] [--seconds 20] [--runs 3] [--pushes 100]
                         [--auth-cache 10M] [--set NAME=VALUE ...]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from dovecot import PrivateDovecot  # noqa: E402
from harness import USERS as TEST_USERS  # noqa: E402
from harness import ServerProcess  # noqa: E402
from server.service import open_storage  # noqa: E402
from server.users.db import hash_password  # noqa: E402
from shared.config import Config, parse_overrides  # noqa: E402

USERS = [f"load{i}" for i in range(10)]
PASSWORD = "load-password"
MESSAGE = (b"From: sender@example.org\r\nTo: load@example.org\r\nSubject: load test\r\n"
           b"Message-ID: <%d.%d@example.org>\r\n\r\n" + b"a line of the body of the message\r\n" * 60)
# Our two set-ups: store and gateway processes (0: one per core).
SETUPS = {"ours, 1 process": "1", "ours, per core": "0"}
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


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and everything below it, reaped children included."""
    import psutil

    total = 0.0
    try:
        top = psutil.Process(pid)
        for proc in [top, *top.children(recursive=True)]:
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system + times.children_user + times.children_system
    except psutil.NoSuchProcess:
        pass
    return total


class Result:
    """One server's run at one client count."""

    def __init__(self, rate: float, timings: dict[str, list[float]], errors: int, cpu_per_command: float):
        self.rate = rate
        self.timings = timings
        self.errors = errors
        self.cpu_per_command = cpu_per_command


def measure(port: int, pid: int, clients: int, seconds: float) -> Result:
    before = cpu_seconds(pid)
    rate, timings, errors = load(port, clients, seconds)
    spent = cpu_seconds(pid) - before
    commands = sum(len(v) for v in timings.values())
    return Result(rate, timings, errors, spent / commands if commands else float("nan"))


@contextlib.contextmanager
def servers(settings: dict[str, str], auth_cache: str) -> Iterator[dict[str, tuple[int, Callable[[], int]]]]:
    """{name: (IMAP port, pid of its top process)} of our two set-ups and Dovecot."""
    PrivateDovecot.install("imap")
    hashed = hash_password(PASSWORD)
    with tempfile.TemporaryDirectory(prefix="gw-bench-load-") as base, contextlib.ExitStack() as stack:
        found: dict[str, tuple[int, Callable[[], int]]] = {}
        for name, workers in SETUPS.items():
            data_dir = os.path.join(base, name.replace(" ", "-").replace(",", ""))
            options = {"imap_listen": "127.0.0.1:0", "log_level": "warning",
                       "store_workers": workers, "gateway_workers": workers,
                       "auth_cache_size": auth_cache, "auth_cache_ttl": "3600", **settings}
            storage = open_storage(Config(options, data_dir))
            try:
                for user in USERS:
                    storage.create_user(user, hashed, fullname=user, email=f"{user}@example.org")
            finally:
                storage.close()
            server = stack.enter_context(ServerProcess(data_dir, options))
            found[name] = (server.port("imap"), server.pid)
        dovecot = PrivateDovecot(os.path.join(base, "dovecot"), "imap", USERS[0], "{ARGON2ID}" + hashed,
                                 tuning=DOVECOT_TUNING + f"auth_cache_size = {auth_cache}\nauth_cache_ttl = 1 hour\n",
                                 more_users={user: "{ARGON2ID}" + hashed for user in USERS[1:]})
        dovecot.start()
        stack.callback(dovecot.stop)
        found["Dovecot"] = (dovecot.port, dovecot.master_pid)
        yield found


def push_across_instances(count: int, settings: dict[str, str]) -> list[float]:
    """Seconds from an APPEND's tagged OK through a gateway of one store instance to the
    `* n EXISTS` an IDLE client gets from a gateway of another instance on the same
    SQLite file (notified by UNIX datagrams between the store processes)."""
    from harness import StoreProcess
    from raw_clients import RawIMAP

    with tempfile.TemporaryDirectory(prefix="gw-bench-push-") as base, contextlib.ExitStack() as stack:
        options = {"database_path": os.path.join(base, "shared.db"),
                   "attachment_path": os.path.join(base, "blobs"), **settings}
        ports = []
        for name in ("a", "b"):
            store = stack.enter_context(StoreProcess(os.path.join(base, name), dict(options)))
            gateway = stack.enter_context(ServerProcess(os.path.join(base, f"{name}-imap"), {
                "server_socket": store.socket_path, "log_file": "-"}, command="imap"))
            ports.append(gateway.port("imap"))
        idler, writer = RawIMAP(ports[0]), RawIMAP(ports[1])
        for client in (idler, writer):
            assert client.cmd(f"LOGIN alice {TEST_USERS['alice']}")[-1].startswith(b"r1 OK")
        selected = idler.cmd("SELECT INBOX")
        assert selected[-1].startswith(b"r2 OK"), selected
        exists = int(next(line.split()[1] for line in selected if line.endswith(b" EXISTS\r\n")))
        idler.send(b"i IDLE\r\n")
        assert idler.readline().startswith(b"+ ")
        delays = []
        for n in range(1, count + 1):
            message = b"From: a@example.org\r\nSubject: push %d\r\n\r\nbody\r\n" % n
            answer = writer.cmd(b"APPEND INBOX {%d+}\r\n%s" % (len(message), message))
            if not answer[-1].startswith(b"r%d OK" % writer.n):
                raise RuntimeError(f"APPEND answered {answer[-1]!r}")
            committed = time.monotonic()
            line = idler.readline()
            while line.endswith(b" RECENT\r\n"):
                line = idler.readline()
            if line != b"* %d EXISTS\r\n" % (exists + n):
                raise RuntimeError(f"IDLE answered {line!r}")
            delays.append(time.monotonic() - committed)
        idler.send(b"DONE\r\n")
        idler.until(b"i")
        return delays


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(clients: int, seconds: float, runs: list[dict[str, Result]]) -> None:
    names = list(runs[0])
    dovecot = median([run["Dovecot"].rate for run in runs])
    print(f"\n{clients} clients: median of {len(runs)} runs of {seconds:.0f} s")
    print(f"{'server':18} {'commands/s':>10} {'x Dovecot':>9} {'CPU ms/command':>15} {'errors':>7}")
    for name in names:
        rate = median([run[name].rate for run in runs])
        cpu = median([run[name].cpu_per_command for run in runs]) * 1000
        errors = sum(run[name].errors for run in runs)
        print(f"{name:18} {rate:10.0f} {rate / dovecot:8.2f}x {cpu:15.2f} {errors:7d}")
    header = " ".join(f"{name[:17]:>17}" for name in names)
    print(f"{'ms, p50 / p99':12} {header}   {'p99 x Dovecot':>24}")
    worst: dict[str, float] = {}
    for command in COMMANDS:
        cells, p99s = [], {}
        for name in names:
            p50 = median([percentile(run[name].timings[command], .5) for run in runs]) * 1000
            p99s[name] = median([percentile(run[name].timings[command], .99) for run in runs]) * 1000
            cells.append(f"{p50:8.1f} /{p99s[name]:7.1f}")
        ratios = [p99s[name] / p99s["Dovecot"] for name in names if name != "Dovecot"]
        for name, ratio in zip(names, ratios):
            worst[name] = max(worst.get(name, 0), ratio)
        print(f"{command:12} {' '.join(cells)}   {' '.join(f'{r:11.2f}x' for r in ratios)}")
    print("worst p99 x Dovecot: " + ", ".join(f"{name} {ratio:.2f}x" for name, ratio in worst.items()),
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pushes", type=int, default=100, help="APPENDs timed across instances (0: none)")
    parser.add_argument("--auth-cache", default="10M",
                        help="credentials cache of both servers, e.g. 10M (0: none)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="an option of our servers (repeatable), e.g. user_threads=2")
    args = parser.parse_args()
    settings = parse_overrides(args.set)
    results: dict[int, list[dict[str, Result]]] = defaultdict(list)
    with servers(settings, args.auth_cache) as found:
        for name, (port, _) in found.items():  # warm-up: stores, indexes, login processes
            load(port, 2, 2)
        for run in range(args.runs):
            for clients in args.clients:
                this: dict[str, Result] = {}
                for name, (port, pid) in found.items():
                    print(f"run {run + 1}: {name} with {clients} clients ...", flush=True)
                    this[name] = measure(port, pid(), clients, args.seconds)
                results[clients].append(this)
    for clients in args.clients:
        report(clients, args.seconds, results[clients])
    if args.pushes:
        delays = push_across_instances(args.pushes, settings)
        print(f"\npush across two store instances, {len(delays)} APPENDs: p50 "
              f"{percentile(delays, .5) * 1000:.1f} ms, p99 {percentile(delays, .99) * 1000:.1f} ms", flush=True)


if __name__ == "__main__":
    main()
