"""Store benchmark: the adapter against the same data read directly with SQL.

Runs a real `groupware serve` per database backend (SQLite file, MariaDB) and
prints, each as the median of several runs:

  * listing uid+flags of a 100,000-message folder through the adapter (one
    queryRows round trip) and with a direct SQL query, and their ratio;
  * saving 10,000 small messages through the adapter (messages per second) in
    createMessages batches, and (a quarter as many each) one call per message,
    one at a time and with 16 saves in flight;
  * small-call round trips per second (whoami) over the UNIX socket.

    python bench/store.py [--backends sqlite,mysql] [--big 100000] [--small 10000] [--runs 5]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from harness import ServerProcess, mysql_options, throwaway_mariadb_database  # noqa: E402
from sqlalchemy import select, update  # noqa: E402
from twisted.internet import defer, task  # noqa: E402

from server.service import open_storage  # noqa: E402
from server.storage import schema  # noqa: E402
from server.users.db import hash_password  # noqa: E402
from shared.config import Config  # noqa: E402
from shared.model import Adapter  # noqa: E402

USER, PASSWORD = "bench", "bench-password"
SMALL = (b"From: Alice <alice@example.com>\r\nTo: Bob <bob@example.com>\r\n"
         b"Subject: benchmark message %d\r\nMessage-ID: <%d@bench.example>\r\n"
         b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nHello Bob,\r\nthis is message %d.\r\n")


def create_bench_user(options: dict, data_dir: str) -> str:
    """The benchmark user in a fresh store; returns its argon2id hash, so that a peer
    server can be given the very same one and both sides do the same work at login."""
    password_hash = hash_password(PASSWORD)
    storage = open_storage(Config(options, data_dir))
    try:
        storage.create_user(USER, password_hash)
    finally:
        storage.close()
    return password_hash


def fill_big_folder(storage, folder_id: int, count: int) -> None:
    """Bulk-insert `count` rows the way create_message would leave them (one blob shared)."""
    blob_key = storage.blobs.put_bytes(SMALL % (0, 0, 0))
    rows = [{"folder_id": folder_id, "uid": uid, "modseq": uid, "size": 200, "flags": uid % 32,
             "keywords": "", "internalDate": 1795000000 + uid, "recurring": 0, "itemClass": "IPM.Note",
             "subject": f"message {uid}", "blob_key": blob_key} for uid in range(1, count + 1)]
    with storage.engine.begin() as conn:
        for start in range(0, count, 5000):
            conn.execute(schema.items.insert(), rows[start:start + 5000])
        conn.execute(update(schema.folders).where(schema.folders.c.id == folder_id)
                     .values(uidnext=count + 1, highestmodseq=count))


def direct_listing(storage, folder_id: int) -> float:
    query = (select(schema.items.c.uid, schema.items.c.flags)
             .where(schema.items.c.folder_id == folder_id).order_by(schema.items.c.uid))
    start = time.perf_counter()
    with storage.engine.connect() as conn:
        rows = conn.execute(query).all()
        uids = [r[0] for r in rows]
        flags = [r[1] for r in rows]
    elapsed = time.perf_counter() - start
    assert len(uids) == len(flags)
    return elapsed


@defer.inlineCallbacks
def measure(reactor, cfg: Config, storage, args) -> dict:
    adapter = Adapter(cfg, reactor)
    session = yield adapter.logon(USER, PASSWORD)
    store = session.store()
    inbox = yield store.inbox()
    big = yield store.create_folder("Big")
    yield storage_call(reactor, fill_big_folder, storage, big.id, args.big)
    results: dict = {}

    # Round trips per second with one call in flight at a time.
    rates = []
    for _ in range(args.runs):
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < 1.0:
            yield session.whoami()
            calls += 1
        rates.append(calls / (time.perf_counter() - start))
    results["roundtrips_per_s"] = statistics.median(rates)

    # The listing through the adapter, then directly.
    via_adapter, direct = [], []
    for _ in range(args.runs):
        start = time.perf_counter()
        total, columns = yield big.query(["uid", "flags"], sort=[("uid", False)])
        via_adapter.append(time.perf_counter() - start)
        assert total == args.big and len(columns["uid"]) == args.big
        direct.append((yield storage_call(reactor, direct_listing, storage, big.id)))
    results["list_adapter_s"] = statistics.median(via_adapter)
    results["list_direct_s"] = statistics.median(direct)

    # Saving small messages: one call each (one at a time, then 16 in flight),
    # then all of them through createMessages batches.
    n = args.small
    quarter = n // 4
    start = time.perf_counter()
    for i in range(quarter):
        yield inbox.append(SMALL % (i, i, i))
    results["save_sequential_per_s"] = quarter / (time.perf_counter() - start)

    pending = iter(range(quarter, 2 * quarter))

    @defer.inlineCallbacks
    def worker():
        for i in pending:
            yield inbox.append(SMALL % (i, i, i))

    start = time.perf_counter()
    yield defer.gatherResults([worker() for _ in range(16)], consumeErrors=True)
    results["save_parallel_per_s"] = quarter / (time.perf_counter() - start)

    start = time.perf_counter()
    uids = yield inbox.append_many([SMALL % (i, i, i) for i in range(2 * quarter, 2 * quarter + n)])
    results["save_bulk_per_s"] = n / (time.perf_counter() - start)
    assert len(uids) == n
    total, _ = yield inbox.query(["uid"])
    assert total == 2 * quarter + n, total
    yield session.logoff()
    adapter.close()
    return results


def storage_call(reactor, fn, *args):
    from twisted.internet.threads import deferToThread
    return deferToThread(fn, *args)


def run_backend(name: str, args) -> dict:
    with tempfile.TemporaryDirectory(prefix="gw-bench-") as data_dir:
        if name == "mysql":
            with throwaway_mariadb_database("gw_bench") as database:
                return _run(data_dir, mysql_options(database), args)
        return _run(data_dir, {}, args)


def _run(data_dir: str, options: dict, args) -> dict:
    options = {**options, "log_level": "warning"}
    cfg = Config(options, data_dir)
    storage = open_storage(cfg)
    storage.create_user(USER, hash_password(PASSWORD))
    server = ServerProcess(data_dir, options).start()
    try:
        client_cfg = Config({**options, "server_socket": server.socket_path}, data_dir)
        results: dict = {}
        task.react(lambda reactor: measure(reactor, client_cfg, storage, args).addCallback(results.update))
    except SystemExit as done:
        if done.code:
            raise
    finally:
        server.stop()
        storage.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,mysql")
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="run one backend, print its figures as JSON")
    args = parser.parse_args()
    if args.json:
        print(json.dumps(run_backend(args.backends, args)))
        return
    for name in args.backends.split(","):
        # A Twisted reactor runs once per process, so each backend gets its own.
        child = subprocess.run([sys.executable, __file__, "--json", "--backends", name, "--big", str(args.big),
                                "--small", str(args.small), "--runs", str(args.runs)],
                               stdout=subprocess.PIPE, text=True, check=True)
        r = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"\n== {name} ==")
        print(f"list uid+flags of {args.big:,} messages: adapter {r['list_adapter_s'] * 1000:.0f} ms, "
              f"direct SQL {r['list_direct_s'] * 1000:.0f} ms, ratio adapter/direct "
              f"{r['list_adapter_s'] / r['list_direct_s']:.2f}x")
        print(f"save {args.small:,} small messages in createMessages batches: {r['save_bulk_per_s']:.0f}/s; "
              f"one per call: {r['save_sequential_per_s']:.0f}/s one at a time, "
              f"{r['save_parallel_per_s']:.0f}/s with 16 in flight ({args.small // 4:,} each)")
        print(f"small-call round trips over the UNIX socket: {r['roundtrips_per_s']:.0f}/s")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
