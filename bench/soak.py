"""Soak: `groupware serve` under a mixed concurrent load, every answer checked, its
resources sampled.

Starts a real `groupware serve` on SQLite in a temporary data directory and runs
`--clients` clients (default 200) for `--seconds` (default 600), all in one asyncio
loop (they think between commands, so the load is a rate the server has to keep up
with, and the client's own CPU share is printed to show it is not the bottleneck):

  * IMAP idlers: one per user, SELECT INBOX and IDLE; every message delivered over LMTP
    must be pushed to its user's idler (`* N EXISTS`) and is then fetched and checked;
    the idler expunges old mail so that the inbox stays small;
  * IMAP command loops in folders of their own: SELECT, APPEND, FETCH (flags, listing
    items, whole bodies compared byte for byte), STORE, SEARCH (flags, subject, body),
    EXPUNGE, LIST, STATUS, NOOP, and now and then a new login;
  * POP3 sessions on maildrops of their own: STAT, UIDL, LIST, RETR (compared with what
    was delivered), TOP, DELE, QUIT;
  * CalDAV clients on calendars of their own: PUT (new and If-Match), GET, PROPFIND,
    calendar-query, calendar-multiget, sync-collection, DELETE, the whole calendar as .ics;
  * LMTP deliveries of generated messages to the idlers' and the POP3 users' inboxes
    (a few users have an active Sieve script).

Any unexpected answer is an error (a NO or BAD, an -ERR, an HTTP error status, a reply
that says something else than what was stored, a push that does not come within
`--push-deadline` seconds), and so is every ERROR or traceback in the server's log.
Every 10 s it samples the serve process and its workers together: resident memory,
open file descriptors, threads and SQLite database handles (descriptors open on
store.db), and prints them;
at the end a table at start, 1, 5 and 10 minutes, the errors, and the least-squares
slope of each resource after the warm-up (`--warmup`, default 120 s). It exits with 1
when there was an error or a resource grows faster than its `--max-*-slope` threshold.

    python bench/soak.py [--clients 200] [--seconds 600] [--warmup 120] [--set name=value ...]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import sys
import tempfile
import time
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from harness import ServerProcess  # noqa: E402

from server.service import open_storage  # noqa: E402
from shared.config import Config  # noqa: E402

from lmtp import create_users  # noqa: E402
from soak_dav import CalDav  # noqa: E402
from soak_mail import SIEVE_USERS, CommandLoop, Idler, Lmtp, Pop3  # noqa: E402
from soak_resources import SAMPLE_EVERY, descriptor_kinds, sampler, slope_per_minute, tree  # noqa: E402
from soak_state import OP_TIMEOUT, Sample, Soak, run_client  # noqa: E402

REPORT_AT = (0, 60, 300, 600)  # seconds into the load at which the table shows the samples
SIEVE_SCRIPT = ('require ["imap4flags"];\r\n'
                'if header :contains "subject" "flagged" { addflag "\\\\Flagged"; }\r\n')


# -- the run ---------------------------------------------------------------------------------------

KINDS = {"idle": 0.35, "loop": 0.30, "caldav": 0.20, "pop3": 0.10, "lmtp": 0.05}


def plan(clients: int, kinds: list[str]) -> dict[str, int]:
    """How many clients of each of `kinds`: of all, about 35% idlers, 30% command loops,
    20% CalDAV, 10% POP3 and 5% LMTP connections, at least one of each; of fewer kinds,
    in the same proportions. Command loops, CalDAV clients and LMTP connections work on
    the idlers' users, so at least one idler user is made whenever one of those runs."""
    total = sum(KINDS[kind] for kind in kinds)
    counts = {kind: max(1, int(clients * KINDS[kind] / total)) for kind in kinds}
    counts[kinds[-1]] = max(1, clients - sum(counts.values()) + counts[kinds[-1]])
    return counts


def prepare_store(options: dict[str, str], data_dir: str, users: list[str], sieve_users: list[str]) -> None:
    """The users, and an active Sieve script for `sieve_users`."""
    create_users(options, data_dir, users)
    storage = open_storage(Config(options, data_dir))
    try:
        for user in sieve_users:
            user_id = storage.get_user(user)["id"]
            storage.put_sieve_script(user_id, "soak", SIEVE_SCRIPT)
            storage.activate_sieve_script(user_id, "soak")
    finally:
        storage.close()


async def soak_load(server: ServerProcess, database: str, args, counts: dict[str, int],
                    idlers: list[str], pop3_users: list[str]) -> tuple[Soak, list[Sample]]:
    ports = {name: server.port(name) for name in ("imap", "pop3", "ical", "lmtp")}
    soak = Soak(ports, args.think, args.push_deadline)
    samples: list[Sample] = []
    sampling = asyncio.create_task(sampler(soak, server.pid(), database, samples))
    clients: list = [Idler(soak, user) for user in idlers[:counts.get("idle", 0)]]
    clients += [CommandLoop(soak, idlers[k % len(idlers)], f"loop{k}") for k in range(counts.get("loop", 0))]
    clients += [CalDav(soak, idlers[k % len(idlers)], f"soak{k}") for k in range(counts.get("caldav", 0))]
    clients += [Pop3(soak, user) for user in pop3_users]
    clients += [Lmtp(soak, k, idlers, pop3_users) for k in range(counts.get("lmtp", 0))]
    random.shuffle(clients)
    tasks = []
    ramp = min(30.0, args.seconds / 10)  # logins spread out, as after a restart
    for client in clients:
        tasks.append(asyncio.create_task(run_client(soak, client)))
        await asyncio.sleep(ramp / len(clients))
    await asyncio.sleep(max(0.0, args.seconds - (time.monotonic() - soak.started)))
    print("stopping the deliveries, then the other clients ...", flush=True)
    soak.delivering = False
    delivering = [t for c, t in zip(clients, tasks) if isinstance(c, Lmtp)]
    if delivering:
        await asyncio.wait(delivering, timeout=OP_TIMEOUT)
    # Deliveries answered just before the end still get their push deadline.
    deadline = time.monotonic() + args.push_deadline
    while soak.pending_pushes and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    soak.stopping = True
    done, pending = await asyncio.wait(tasks, timeout=OP_TIMEOUT)
    for task in pending:
        task.cancel()
    for task in done:
        if task.exception() is not None:
            soak.error("client", "".join(traceback.format_exception(task.exception()))[-400:])
    sampling.cancel()
    soak.descriptors = descriptor_kinds(server.pid(), server.data_dir)
    return soak, samples


def server_log_errors(path: str) -> list[str]:
    """ERROR and CRITICAL lines and tracebacks in the server's log."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fp:
            return [line.rstrip() for line in fp
                    if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")]
    except FileNotFoundError:
        return []


def report(args, counts: dict[str, int], soak: Soak, samples: list[Sample], log_errors: list[str]) -> bool:
    """Prints the table, the errors and the slopes; True when the run passed."""
    print(f"\n{args.clients} clients ({', '.join(f'{n} {kind}' for kind, n in counts.items())}) for "
          f"{args.seconds} s; think time {args.think} s; samples every {SAMPLE_EVERY} s")
    print(f"{'':>8} {'RSS MB':>8} {'fds':>6} {'threads':>8} {'db':>4} {'ops':>8} {'errors':>7}")
    shown = [t for t in REPORT_AT if t <= args.seconds] + [samples[-1].at]
    for at in shown:
        sample = min(samples, key=lambda s: abs(s.at - at))
        label = f"{at / 60:.0f} min" if at in REPORT_AT else "after"
        print(f"{label:>8} {sample.rss_mb:8.1f} {sample.fds:6d} {sample.threads:8d} {sample.db_handles:4d} "
              f"{sample.ops:8d} {sample.errors:7d}")
    later = [s for s in samples if args.warmup <= s.at <= args.seconds + 1]
    slopes = {
        "RSS (MB/min)": (slope_per_minute([(s.at, s.rss_mb) for s in later]), args.max_rss_slope),
        "fds (/min)": (slope_per_minute([(s.at, s.fds) for s in later]), args.max_fd_slope),
        "threads (/min)": (slope_per_minute([(s.at, s.threads) for s in later]), args.max_thread_slope),
        "db handles (/min)": (slope_per_minute([(s.at, s.db_handles) for s in later]), args.max_fd_slope),
    }
    print("descriptors after the load: " + ", ".join(f"{n} {kind}" for kind, n in soak.descriptors.most_common()))
    print(f"\nslopes after {args.warmup} s (least squares over {len(later)} samples):")
    passed = True
    for name, (value, limit) in slopes.items():
        over = value > limit  # only growth is a leak
        passed &= not over
        print(f"  {name:20} {value:+8.3f}   (limit {limit}){'  EXCEEDED' if over else ''}")
    busy = [s for s in samples if s.at > 0]
    if busy:
        print(f"cpu, mean share of one core: server {100 * sum(s.cpu_server for s in busy) / len(busy):.0f}%, "
              f"soak client {100 * sum(s.cpu_client for s in busy) / len(busy):.0f}%")
    print(f"\n{'operation':24} {'count':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for kind in sorted(soak.ops):
        values = sorted(soak.latencies.get(kind, []))
        p50 = f"{values[len(values) // 2] * 1000:8.1f}" if values else f"{'-':>8}"
        p99 = f"{values[min(len(values) - 1, int(len(values) * 0.99))] * 1000:8.1f}" if values else f"{'-':>8}"
        print(f"{kind:24} {soak.ops[kind]:8d} {p50} {p99}")
    pushes = sorted(soak.push_latencies)
    if pushes:
        print(f"{'LMTP end of DATA -> EXISTS':24} {len(pushes):8d} {pushes[len(pushes) // 2] * 1000:8.1f} "
              f"{pushes[min(len(pushes) - 1, int(len(pushes) * 0.99))] * 1000:8.1f}")
    print(f"\nprotocol errors: {len(soak.errors)}")
    for line in soak.errors[:30]:
        print("  " + line)
    print(f"server log errors: {len(log_errors)}")
    for line in log_errors[:30]:
        print("  " + line)
    return passed and not soak.errors and not log_errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--warmup", type=int, default=120, help="seconds before the slopes are measured")
    parser.add_argument("--think", type=float, default=2.0, help="mean seconds a client waits between commands")
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help=f"the kinds of client to run, of {','.join(KINDS)}")
    parser.add_argument("--push-deadline", type=float, default=30.0)
    parser.add_argument("--max-rss-slope", type=float, default=1.0, help="MB per minute")
    parser.add_argument("--max-fd-slope", type=float, default=1.0,
                        help="descriptors (and database handles) per minute")
    parser.add_argument("--max-thread-slope", type=float, default=0.1, help="threads per minute")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a server option (repeatable)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable of the server (e.g. MALLOC_ARENA_MAX=2)")
    args = parser.parse_args()
    args.warmup = min(args.warmup, args.seconds // 2)
    kinds = [kind for kind in KINDS if kind in args.kinds.split(",")]
    counts = plan(args.clients, kinds)
    idlers = [f"soak{i}" for i in range(max(1, counts.get("idle", 0), counts.get("loop", 0) // 2))]
    pop3_users = [f"pop{i}" for i in range(counts.get("pop3", 0))]
    SIEVE_USERS.update(idlers[::4])
    options = {"log_level": "warning", **dict(item.split("=", 1) for item in args.set)}
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    with tempfile.TemporaryDirectory(prefix="gw-soak-") as base:
        data_dir = os.path.join(base, "groupware")
        prepare_store(options, data_dir, idlers + pop3_users, sorted(SIEVE_USERS))
        server = ServerProcess(data_dir, options)
        server.environment.update(item.split("=", 1) for item in args.env)
        server.start()
        try:
            database = os.path.join(data_dir, "store.db")
            print(f"groupware serve pid {server.pid()} with {len(tree(server.pid())) - 1} workers, "
                  f"{args.clients} clients for {args.seconds} s", flush=True)
            soak, samples = asyncio.run(soak_load(server, database, args, counts, idlers, pop3_users))
        finally:
            server.stop()
        log_errors = server_log_errors(server.options["log_file"])
    return 0 if report(args, counts, soak, samples, log_errors) else 1


if __name__ == "__main__":
    sys.exit(main())
