"""Login benchmark: logons per second through each user backend (db, ldap, unix).

Starts a real `groupware serve` per backend on loopback: `db` with a user made
by `groupware user add` (argon2id), `ldap` against a private slapd (Debian's
slapd, installed when missing; the OpenLDAP tree of tests/slapd_harness.py),
`unix` with a system account made with useradd and checked through PAM (root
only; removed afterwards). Each backend is warmed first (stores created,
directory connections pooled); then, through the adapter (SOAP logon +
logoff, as a gateway does it):

  * the median latency of one logon at a time;
  * logons per second with --concurrency logons in flight.

It also times the backend's own `authenticate` in-process (no SOAP) and prints
how much an LDAP logon adds to a db logon.

    python bench/logins.py [--logons 200] [--concurrency 8]
"""
from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from harness import ServerProcess  # noqa: E402
from slapd_harness import READER_DN, READER_PW, SUFFIX, Slapd, ensure_packages  # noqa: E402
from twisted.internet import defer, task  # noqa: E402

from shared.config import Config  # noqa: E402
from shared.model import Adapter  # noqa: E402

DB_USER, DB_PASSWORD = "benchuser", "bench-Password-1"
LDAP_USER, LDAP_PASSWORD = "alice", "alice-pw"


def ldap_options(slapd: Slapd) -> dict[str, str]:
    return {"user_plugin": "ldap", "ldap_uri": slapd.uri, "ldap_bind_user": READER_DN,
            "ldap_bind_passwd": READER_PW, "ldap_search_base": SUFFIX}


def groupware(server: ServerProcess, *args: str, stdin: str | None = None) -> None:
    cmd = [sys.executable, "-m", "groupware.cli", *args, "--config-dir", os.path.join(ROOT, "conf"),
           "--data-dir", server.data_dir]
    for name, value in server.options.items():
        cmd += ["--set", f"{name}={value}"]
    subprocess.run(cmd, cwd=ROOT, input=stdin, capture_output=True, text=True, check=True)


class UnixAccount:
    def __init__(self) -> None:
        self.name = "gwb" + secrets.token_hex(3)
        self.password = "Pw-" + secrets.token_urlsafe(12)
        subprocess.run(["useradd", "-M", "-K", "UID_MIN=43000", "-K", "UID_MAX=43999", "-c", "Bench User",
                        "-s", "/usr/sbin/nologin", self.name], check=True, capture_output=True)
        subprocess.run(["chpasswd"], input=f"{self.name}:{self.password}\n", text=True, check=True,
                       capture_output=True)

    def remove(self) -> None:
        subprocess.run(["userdel", self.name], capture_output=True)


async def measure(reactor, server: ServerProcess, user: str, password: str, logons: int,
                  concurrency: int) -> tuple[float, float]:
    """(median latency in ms of sequential logons, logons per second with `concurrency` in flight)."""
    cfg = Config({"server_socket": server.socket_path, "server_connections": str(concurrency)},
                 server.data_dir)
    adapter = Adapter(cfg, reactor)
    try:
        async def once() -> float:
            started = time.perf_counter()
            session = await adapter.logon(user, password, "imap", "127.0.0.1")
            await session.logoff()
            return time.perf_counter() - started

        for _ in range(5):  # warm: store created, pools filled
            await once()
        latencies = [await once() for _ in range(max(20, logons // 4))]
        remaining = logons

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await once()

        started = time.perf_counter()
        await defer.gatherResults([defer.Deferred.fromCoroutine(worker()) for _ in range(concurrency)])
        rate = logons / (time.perf_counter() - started)
        return statistics.median(latencies) * 1000, rate
    finally:
        adapter.close()


def backend_latency(options: dict[str, str], data_dir: str, user: str, password: str, runs: int = 50) -> float:
    """Median ms of the backend's own authenticate (warm), in this process, no SOAP."""
    from server.service import open_storage
    from server.users import load_user_backend

    cfg = Config({k: v for k, v in options.items() if k != "server_socket"}, data_dir)
    storage = open_storage(cfg)
    try:
        backend = load_user_backend(cfg, storage)
        backend.authenticate(user, password)
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            backend.authenticate(user, password)
            times.append(time.perf_counter() - started)
        if hasattr(backend, "close"):
            backend.close()
        return statistics.median(times) * 1000
    finally:
        storage.close()


async def run(reactor, args: argparse.Namespace) -> None:
    work = tempfile.mkdtemp(prefix="bench-logins-")
    ensure_packages()
    os.makedirs(os.path.join(work, "slapd"))
    slapd = Slapd(os.path.join(work, "slapd")).start()
    account = UnixAccount() if os.geteuid() == 0 else None
    servers: dict[str, tuple[ServerProcess, str, str]] = {}
    try:
        slapd.load()
        db = ServerProcess(os.path.join(work, "db"), {"pop3_listen": "", "imap_listen": "", "ical_listen": ""})
        db.start()
        groupware(db, "user", "add", DB_USER, "--password-stdin", stdin=DB_PASSWORD + "\n")
        servers["db"] = (db, DB_USER, DB_PASSWORD)
        ldap = ServerProcess(os.path.join(work, "ldap"), {**ldap_options(slapd), "pop3_listen": "",
                                                          "imap_listen": "", "ical_listen": ""}).start()
        servers["ldap"] = (ldap, LDAP_USER, LDAP_PASSWORD)
        if account is not None:
            unix = ServerProcess(os.path.join(work, "unix"), {"user_plugin": "unix", "pop3_listen": "",
                                                              "imap_listen": "", "ical_listen": ""}).start()
            servers["unix"] = (unix, account.name, account.password)
        results = {}
        print(f"{'backend':8} {'logon ms (median)':>18} {'logons/s x' + str(args.concurrency):>16} "
              f"{'authenticate ms':>16}")
        for name, (server, user, password) in servers.items():
            latency, rate = await measure(reactor, server, user, password, args.logons, args.concurrency)
            own = backend_latency(server.options, server.data_dir, user, password)
            results[name] = (latency, rate, own)
            print(f"{name:8} {latency:18.2f} {rate:16.1f} {own:16.2f}")
        if "ldap" in results:
            added = results["ldap"][0] - results["db"][0]
            print(f"ldap logon adds {added:+.2f} ms to a db logon (median, warm pool; db checks an argon2id hash)")
        if account is None:
            print("unix: skipped (needs root for useradd)")
    finally:
        for server, _, _ in servers.values():
            server.stop()
        slapd.stop()
        if account is not None:
            account.remove()
        subprocess.run(["rm", "-rf", work])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logons", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    task.react(lambda reactor: defer.Deferred.fromCoroutine(run(reactor, args)))


if __name__ == "__main__":
    main()
