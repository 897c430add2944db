"""The server's resources as the soak samples them: memory, descriptors, threads, CPU."""
from __future__ import annotations

import asyncio
import collections
import os
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from imap import descendants  # noqa: E402
from soak_state import Sample, Soak  # noqa: E402

SAMPLE_EVERY = 10  # seconds between two samples of the server's resources


# -- the server's resources ------------------------------------------------------------------------

def cpu_seconds(pid: int | str) -> float:
    """CPU time of `pid` ("self": this process)."""
    with open(f"/proc/{pid}/stat") as fp:
        fields = fp.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """`groupware serve` and its worker processes."""
    return [pid, *descendants(pid)]


def descriptor_kinds(pid: int, data_dir: str) -> collections.Counter:
    """The open descriptors of `pid` and its workers by kind: sockets, pipes, and files by
    their name in the data directory (blob files as `attachments/...`)."""
    kinds: collections.Counter = collections.Counter()
    for proc, fd in ((proc, fd) for proc in tree(pid) for fd in os.listdir(f"/proc/{proc}/fd")):
        try:
            target = os.readlink(f"/proc/{proc}/fd/{fd}")
        except OSError:
            continue
        if target.startswith(data_dir + "/"):
            name = os.path.relpath(target, data_dir)
            target = "attachments/..." if name.startswith("attachments/") else name
        kinds[target.split(":", 1)[0] if target.startswith(("socket:", "pipe:", "anon_inode:")) else target] += 1
    return kinds


def resources(pid: int, database: str) -> tuple[float, int, int, int]:
    """(resident MB, open descriptors, threads, descriptors on the SQLite file) of `pid`
    and its workers together."""
    rss = threads = fds = db = 0
    for proc in tree(pid):
        try:
            with open(f"/proc/{proc}/status") as fp:
                for line in fp:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Threads:"):
                        threads += int(line.split()[1])
            for fd in os.listdir(f"/proc/{proc}/fd"):
                fds += 1
                try:
                    if os.readlink(f"/proc/{proc}/fd/{fd}") == database:
                        db += 1
                except OSError:
                    pass
        except FileNotFoundError:
            pass  # a worker that just ended
    return rss / 1024, fds, threads, db


async def sampler(soak: Soak, pid: int, database: str, samples: list[Sample]) -> None:
    def server_cpu_seconds() -> float:
        total = 0.0
        for proc in tree(pid):
            try:
                total += cpu_seconds(proc)
            except FileNotFoundError:
                pass
        return total

    last = (time.monotonic(), server_cpu_seconds(), cpu_seconds("self"))
    while True:
        now, server_cpu, client_cpu = time.monotonic(), server_cpu_seconds(), cpu_seconds("self")
        span = now - last[0] if now - last[0] > 1 else float("inf")  # the first sample: no share yet
        sample = Sample(now - soak.started, *resources(pid, database), sum(soak.ops.values()), len(soak.errors),
                        (server_cpu - last[1]) / span, (client_cpu - last[2]) / span)
        last = (now, server_cpu, client_cpu)
        samples.append(sample)
        print(f"  {sample.at:6.0f} s  rss {sample.rss_mb:7.1f} MB  fds {sample.fds:5d}  threads {sample.threads:3d}  "
              f"db {sample.db_handles:3d}  ops {sample.ops:7d}  errors {sample.errors:4d}  "
              f"cpu server {sample.cpu_server * 100:4.0f}% client {sample.cpu_client * 100:4.0f}%", flush=True)
        soak.overdue_pushes()
        await asyncio.sleep(SAMPLE_EVERY - (time.monotonic() - soak.started) % SAMPLE_EVERY)


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """The least-squares slope of (seconds, value) points, per minute."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    return 60 * sum((t - mean_t) * (v - mean_v) for t, v in points) / var if var else 0.0


