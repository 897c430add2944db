"""What the store server keeps resident once work is done: memory that worker threads
used for a moment goes back to the system."""
from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from harness import ROOT, USERS, rss_kb
from soap_client import SoapClient
from waiting import scaled, wait_until_quiet

ARGON2_MIB = 19  # work memory of one password check (server/users/db.py)


def thread_count(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fp:
        return next(int(line.split()[1]) for line in fp if line.startswith("Threads:"))


def test_password_checks_in_every_worker_thread_leave_no_memory_behind(server):
    """Each logon checks an argon2id hash in one of the store's worker threads; glibc used
    to keep those 19 MiB in the thread's arena afterwards, for every thread that ever
    checked a password (98 MB grew to 376 MB under 50 IMAP clients)."""
    pid = server.pid()

    def logon(_: int) -> None:
        client = SoapClient(server.connect("unix"))
        client.logon("alice", USERS["alice"])
        client.call("logoff")
        client.http.close()

    logon(0)  # the modules and caches a first logon sets up
    wait_until_quiet(pid)
    before, threads_before = rss_kb(pid), thread_count(pid)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(logon, range(64)))
    wait_until_quiet(pid)
    grown_mib = (rss_kb(pid) - before) / 1024
    new_threads = thread_count(pid) - threads_before
    assert new_threads >= 3, "the logons ran in too few threads to tell anything"
    assert grown_mib < 2 * ARGON2_MIB, (f"{grown_mib:.0f} MiB still resident after password checks "
                                        f"in {new_threads} more threads")


# A serving process (run_reactor, the start path of every command that serves) in which
# worker threads allocate short-lived blocks with a small block kept after each: once
# freed, their pages lie between blocks still in use, where glibc's free never returns
# them. Prints its resident kB before the work, the kB freed, and its resident kB
# `wait` seconds later.
FRAGMENTING_PROCESS = r'''
import sys, threading
from shared.config import Config
from shared.startup import run_reactor
from twisted.internet import reactor

interval, wait, data_dir = sys.argv[1:]
THREADS, BLOCKS, BLOCK = 4, 400, 32 * 1024
kept = []


def rss_kb():
    with open("/proc/self/status") as fp:
        return next(int(line.split()[1]) for line in fp if line.startswith("VmRSS:"))


def fragment():
    blocks, small = [], []
    for i in range(BLOCKS):
        blocks.append(b"%08d" % i * (BLOCK // 8))
        small.append("%08d" % i * 80)  # past obmalloc's 512 bytes: from the same arena
    kept.append(small)


def running():
    before = rss_kb()
    workers = [threading.Thread(target=fragment) for _ in range(THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    def report():
        print(before, THREADS * BLOCKS * BLOCK // 1024, rss_kb(), flush=True)
        reactor.stop()
    reactor.callLater(float(wait), report)


cfg = Config({"memory_trim_interval": interval, "log_file": "-"}, data_dir)
sys.exit(run_reactor(cfg, lambda: None, lambda: None, running))
'''


def resident_after_fragmenting(interval: int, wait: float, data_dir: str) -> tuple[int, int]:
    """(kB resident more than before the work, kB the work freed) in a fresh serving
    process with `memory_trim_interval` `interval`, `wait` seconds after the work."""
    done = subprocess.run([sys.executable, "-c", FRAGMENTING_PROCESS, str(interval), str(wait), data_dir],
                          cwd=ROOT, capture_output=True, text=True, timeout=scaled(120))
    assert done.returncode == 0, done.stderr
    before, freed, after = (int(field) for field in done.stdout.split())
    return after - before, freed


def test_a_serving_process_gives_back_the_free_pages_between_blocks_in_use(tmp_path):
    """Memory freed below blocks still in use stays resident in glibc's arenas; under a
    mixed load of 200 clients that free space grew `groupware serve` by about 2 MB a
    minute. Every `memory_trim_interval` seconds a serving process gives it back."""
    untrimmed_kb, freed_kb = resident_after_fragmenting(0, 3, str(tmp_path))
    # glibc gives some of it back on its own (the top of the heap); most stays.
    assert untrimmed_kb > freed_kb / 5, \
        f"only {untrimmed_kb} of {freed_kb} kB freed stayed resident without trimming: the test shows nothing"
    trimmed_kb, _ = resident_after_fragmenting(1, 3, str(tmp_path))
    assert trimmed_kb < untrimmed_kb / 3, \
        f"{trimmed_kb} kB of {freed_kb} freed still resident ({untrimmed_kb} kB without trimming)"
