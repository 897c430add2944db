"""Several sessions changing one folder at the same time, against the real server process.

Two logons of the owner (separate adapters, so separate connections) and a
colleague granted write access set different flags on the same messages and
append new ones, many calls in flight at once. Nothing may be lost, every
change gets its own modseq, and getChanges agrees with the final state.
"""
from __future__ import annotations

import random
import statistics

import pytest
from twisted.internet import defer

from adapter_client import fresh_folder
from harness import ServerProcess
from shared.config import Config
from shared.model import Adapter, Store

PASSWORD = "concurrent pw"
SEEDED = 200
APPENDS_EACH = 50
IN_FLIGHT = 6


pytestmark = pytest.mark.database_engines("sqlite", "mariadb")


@pytest.fixture(scope="module", params=["1", "2"], ids=["one-store-process", "two-store-workers"])
def server(request, database_engine, database_options, tmp_path_factory):
    from server.service import open_storage
    from server.users.db import hash_password

    data_dir = str(tmp_path_factory.mktemp("concurrency"))
    # Two store workers: the adapter's connections land on both, so writers of two
    # processes race on the same database (SQLite: WAL, busy waits, BEGIN IMMEDIATE).
    options = {"log_level": "warning", "store_workers": request.param, **database_options}
    if database_engine == "mariadb":
        options["attachment_storage"] = "database"
    storage = open_storage(Config(options, data_dir))
    try:
        for name in ("alice", "bob"):
            if storage.get_user(name) is None:  # the MariaDB database serves both params
                storage.create_user(name, hash_password(PASSWORD), name.title(), f"{name}@example.org")
    finally:
        storage.close()
    srv = ServerProcess(data_dir, options).start()
    yield srv
    srv.stop()


@pytest.fixture
def logon(reactor_thread, server):
    adapters = []
    sessions = []

    def make(user: str):
        cfg = Config({"server_socket": server.socket_path, "server_connections": "4"}, server.data_dir)
        adapter = reactor_thread.call(Adapter, cfg, reactor_thread.reactor)
        adapters.append(adapter)
        session = reactor_thread.call(adapter.logon, user, PASSWORD, "imap", "127.0.0.1")
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        reactor_thread.call(session.logoff)
    for adapter in adapters:
        reactor_thread.call(adapter.close)


def message(tag: str) -> bytes:
    return (f"From: {tag}@example.org\r\nTo: alice@example.org\r\nSubject: {tag}\r\n"
            f"Message-ID: <{tag}@example.org>\r\n\r\nbody of {tag}\r\n").encode()


async def limited(sem: defer.DeferredSemaphore, fn, *args, **kwargs):
    await sem.acquire()
    try:
        return await fn(*args, **kwargs)
    finally:
        sem.release()


def chunks(seq, n):
    return [seq[i:i + n] for i in range(0, len(seq), n)]


def test_three_writers_lose_nothing_and_modseqs_stay_unique(reactor_thread, logon):
    rt = reactor_thread
    alice1, alice2, bob = logon("alice"), logon("alice"), logon("bob")
    rng = random.Random(7)

    async def scenario():
        folder_a = await fresh_folder(alice1, "Busy")
        await folder_a.set_acl("bob", "lrswipkxte")
        folder_b = await alice2.store().folder(folder_a.id)
        # Bob reaches it through Alice's store, where only what was granted is listed.
        folder_c = await Store(bob, alice1.store_id).folder(folder_a.id)
        assert folder_c.rights == "lrswipkxte"

        seed_sem = defer.DeferredSemaphore(8)
        seeded = await defer.gatherResults([defer.Deferred.fromCoroutine(
            limited(seed_sem, folder_a.append, message(f"seed-{i}"))) for i in range(SEEDED)], consumeErrors=True)
        seed_uids = sorted(uid for uid, _ in seeded)
        assert len(set(seed_uids)) == SEEDED

        # Each actor: flag calls over every seeded uid in its own order and chunking, plus appends.
        def plan(folder, flag: str, chunk: int, order: str, tag: str):
            uids = list(seed_uids)
            if order == "reverse":
                uids.reverse()
            elif order == "random":
                rng.shuffle(uids)
            ops = [("flags", folder, part, flag) for part in chunks(uids, chunk)]
            ops += [("append", folder, f"{tag}-{i}", None) for i in range(APPENDS_EACH)]
            rng.shuffle(ops)
            return ops

        actors = {"A": plan(folder_a, "\\Seen", 10, "forward", "a"),
                  "B": plan(folder_b, "\\Flagged", 10, "reverse", "b"),
                  "C": plan(folder_c, "$Shared", 5, "random", "c")}
        # Every call that changed something, as (actor, kind, {uid: modseq}, call modseq).
        calls: list[tuple[str, str, dict[int, int], int]] = list(
            ("seed", "append", {uid: ms}, ms) for uid, ms in seeded)

        async def run_op(name, op):
            kind, folder, arg, flag = op
            if kind == "append":
                uid, modseq = await folder.append(message(arg))
                calls.append((name, "append", {uid: modseq}, modseq))
            else:
                result = await folder.set_flags(arg, "add", [flag])
                assert result.failed == []
                # Nobody else sets this actor's flag, so every uid of the call really changes.
                assert sorted(c.uid for c in result.changed) == sorted(arg)
                assert {c.modseq for c in result.changed} == {result.highest_modseq}
                assert all(flag in c.flags for c in result.changed)
                calls.append((name, "flags", {c.uid: c.modseq for c in result.changed}, result.highest_modseq))

        sems = {name: defer.DeferredSemaphore(IN_FLIGHT) for name in actors}
        work = []
        # Interleave the three actors' calls as they are issued.
        for i in range(max(len(ops) for ops in actors.values())):
            for name, ops in actors.items():
                if i < len(ops):
                    work.append(defer.Deferred.fromCoroutine(limited(sems[name], run_op, name, ops[i])))
        await defer.gatherResults(work, consumeErrors=True)
        return folder_a, seed_uids, calls

    folder, seed_uids, calls = rt.coro(scenario, timeout=120)

    # One modseq per call that changed something, never shared between calls.
    call_modseqs = [ms for _, _, _, ms in calls]
    assert len(call_modseqs) == len(set(call_modseqs)), "two changes got the same modseq"
    appended = [uid for name, kind, changed, _ in calls if kind == "append" and name != "seed" for uid in changed]
    assert len(appended) == 3 * APPENDS_EACH

    total, listed = rt.call(folder.messages, ("uid", "modseq", "flags", "keywords"), sort=[("uid", False)])
    assert total == len(listed) == SEEDED + 3 * APPENDS_EACH
    uids = [m.uid for m in listed]
    assert len(set(uids)) == len(uids)
    assert set(uids) == set(seed_uids) | set(appended)
    last_change: dict[int, int] = {}
    for _, _, changed, _ in calls:
        for uid, ms in changed.items():
            last_change[uid] = max(last_change.get(uid, 0), ms)
    by_uid = {m.uid: m for m in listed}
    for uid in seed_uids:
        flags = set(by_uid[uid].flags)
        assert {"\\Seen", "\\Flagged", "$Shared"} <= flags, f"uid {uid} lost an update: {flags}"
    for uid in appended:
        assert by_uid[uid].flags == []
    for m in listed:
        assert m.modseq == last_change[m.uid], f"uid {m.uid}: modseq is not its last change's"

    refreshed = rt.call(folder.refresh)
    assert refreshed.highest_modseq >= max(call_modseqs)
    assert refreshed.count == len(listed)
    assert refreshed.uid_next > max(uids)

    everything = rt.call(folder.changes, 0)
    assert not everything.expired and everything.deleted == []
    assert everything.highest_modseq == refreshed.highest_modseq
    assert {c.uid: c.modseq for c in everything.changed} == {m.uid: m.modseq for m in listed}
    assert {c.uid: set(c.flags) for c in everything.changed} == {m.uid: set(m.flags) for m in listed}

    final = sorted({m.modseq for m in listed})
    for mid in (int(statistics.median(final)), final[len(final) // 4], final[-2]):
        since = rt.call(folder.changes, mid)
        assert not since.expired
        assert {c.uid: c.modseq for c in since.changed} == {m.uid: m.modseq for m in listed if m.modseq > mid}


def test_unchanged_since_refuses_items_changed_later(reactor_thread, logon):
    rt = reactor_thread
    alice = logon("alice")

    async def scenario():
        folder = await fresh_folder(alice, "Conditional")
        u1, m1 = await folder.append(message("cond-1"))
        u2, m2 = await folder.append(message("cond-2"))
        assert m2 > m1
        # u2 changed after m1: refused and left alone; u1 is not newer than m1: changed.
        result = await folder.set_flags([u1, u2], "add", ["\\Answered"], unchanged_since=m1)
        assert result.failed == [u2]
        assert [c.uid for c in result.changed] == [u1]
        u1_modseq = result.highest_modseq
        assert u1_modseq > m2
        item2 = await folder.message(u2, ("uid", "modseq", "flags", "keywords"))
        assert item2.flags == [] and item2.modseq == m2
        # Now u1 is newer than what the caller last saw: refused, nothing changes, no modseq spent.
        before = (await folder.refresh()).highest_modseq
        again = await folder.set_flags([u1], "add", ["\\Deleted"], unchanged_since=m1)
        assert again.failed == [u1] and again.changed == []
        item1 = await folder.message(u1, ("uid", "modseq", "flags", "keywords"))
        assert item1.flags == ["\\Answered"] and item1.modseq == u1_modseq
        assert (await folder.refresh()).highest_modseq == before
        # With the modseq it has, the caller's change goes through.
        ok = await folder.set_flags([u1], "add", ["\\Deleted"], unchanged_since=u1_modseq)
        assert ok.failed == [] and [c.uid for c in ok.changed] == [u1]

    rt.coro(scenario)


def test_racing_conditional_stores_let_exactly_one_win(reactor_thread, logon):
    """Two sessions store to the same items with the same unchanged_since at once:
    for each item one wins and the other is told it failed."""
    rt = reactor_thread
    alice1, alice2 = logon("alice"), logon("alice")

    async def scenario():
        folder_a = await fresh_folder(alice1, "Race")
        appended = [await folder_a.append(message(f"race-{i}")) for i in range(40)]
        folder_b = await alice2.store().folder(folder_a.id)
        calls = []
        for uid, modseq in appended:
            calls.append(folder_a.set_flags([uid], "add", ["\\Seen"], unchanged_since=modseq))
            calls.append(folder_b.set_flags([uid], "add", ["\\Flagged"], unchanged_since=modseq))
        results = await defer.gatherResults(calls, consumeErrors=True)
        _, listed = await folder_a.messages(("uid", "modseq", "flags", "keywords"))
        return appended, results, {m.uid: m for m in listed}

    appended, results, by_uid = rt.coro(scenario, timeout=60)
    for i, (uid, _) in enumerate(appended):
        ra, rb = results[2 * i], results[2 * i + 1]
        won = [r for r in (ra, rb) if [c.uid for c in r.changed] == [uid]]
        lost = [r for r in (ra, rb) if r.failed == [uid] and r.changed == []]
        assert len(won) == 1 and len(lost) == 1, (uid, ra, rb)
        flags = set(by_uid[uid].flags)
        assert flags in ({"\\Seen"}, {"\\Flagged"}), flags
        assert by_uid[uid].modseq == won[0].highest_modseq
