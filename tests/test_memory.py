"""What the store server keeps resident once work is done: memory that worker threads
used for a moment goes back to the system."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from harness import USERS, rss_kb
from soap_client import SoapClient
from waiting import wait_until_quiet

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
