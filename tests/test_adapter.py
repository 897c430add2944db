"""The adapter (shared/) against the real store server running as a separate process."""
from __future__ import annotations

import hashlib
import time

import psutil
import pytest
from twisted.internet import defer, task
from twisted.internet.interfaces import IConsumer
from zope.interface import implementer

from shared.errors import AuthFailed, BadRequest, Conflict, Forbidden, NotFound, Unavailable
from shared.model import ChangeWatcher
from shared.uidset import format_uidset, uid_list as parse_uidset

from adapter_client import PASSWORD, fresh_folder, logon, make_adapter, message, start_store_server
from debian import email_corpus
from waiting import wait_until


# -- logon ---------------------------------------------------------------------------------

def test_logon_good_bad_unknown(reactor_thread, adapter):
    session = logon(reactor_thread, adapter)
    assert session.user.name == "alice" and session.user.email == "alice@example.org"
    assert session.has_feature("imap") and session.store_id and session.public_store_id
    who, store_id, _ = reactor_thread.call(session.whoami)
    assert who.name == "alice" and store_id == session.store_id
    with pytest.raises(AuthFailed):
        reactor_thread.call(adapter.logon, "alice", "wrong", "imap", "192.0.2.1")
    with pytest.raises(AuthFailed):
        reactor_thread.call(adapter.logon, "nobody", PASSWORD, "imap", "192.0.2.1")
    # carol has POP3 switched off: refused, and distinguishable from a bad password.
    with pytest.raises(Forbidden):
        logon(reactor_thread, adapter, "carol", "pop3")
    carol = logon(reactor_thread, adapter, "carol", "imap")
    assert not carol.has_feature("pop3")
    reactor_thread.call(carol.logoff)
    reactor_thread.call(session.logoff)


# -- folders -----------------------------------------------------------------------------------

def test_folders_list_create_rename_delete(reactor_thread, adapter):
    session = logon(reactor_thread, adapter)

    async def scenario():
        store = session.store()
        folders = await store.folders()
        roles = {f.role for f in folders}
        assert {"inbox", "drafts", "sent", "trash", "junk", "archive"} <= roles
        inbox = await store.inbox()
        assert inbox.name == "Inbox" and inbox.uid_validity > 0
        assert (await store.by_role("sent")).name == "Sent"
        assert await store.by_role("nonexistent") is None

        projects = await fresh_folder(session, "Projects")
        assert projects.container_class == "mail" and projects.parent_id is None
        child = await store.create_folder("Alpha", parent=projects)
        assert child.parent_id == projects.id
        with pytest.raises(Conflict):
            await store.create_folder("Alpha", parent=projects)
        with pytest.raises(BadRequest):
            await store.create_folder("a/b")

        await child.rename("Beta")
        assert child.name == "Beta" and child.parent_id == projects.id
        await child.rename(parent=None)  # to the top level, name kept
        assert child.parent_id is None and child.name == "Beta"
        await child.rename("Gamma", parent=projects)
        again = await store.folder(child.id)
        assert (again.name, again.parent_id) == ("Gamma", projects.id)

        cal = await store.create_folder("Team calendar", container_class="calendar")
        assert cal.container_class == "calendar"
        await cal.delete()
        await projects.delete()  # recursive
        ids = {f.id for f in await store.folders()}
        assert projects.id not in ids and child.id not in ids
        with pytest.raises(NotFound):
            await store.folder(child.id)
        public = session.public_store()
        assert isinstance(await public.folders(), list)

    reactor_thread.coro(scenario)


def test_folder_acl_through_the_adapter(reactor_thread, adapter):
    alice, bob = logon(reactor_thread, adapter, "alice"), logon(reactor_thread, adapter, "bob")

    async def scenario():
        team = await fresh_folder(alice, "Team acl")
        sub = await alice.store().create_folder("Sub", parent=team)
        assert team.rights == "lrswipkxtea"
        assert await team.set_acl("bob", "lrs") == "lrs"
        assert await team.set_acl("bob", "+wi") == "lrswi"
        assert await team.set_acl("$nobody-here", "l") == "l"  # a group nobody is in yet
        entries = await team.acl()
        assert [(e.identifier, e.rights, e.inherited) for e in entries] == [
            ("alice", "lrswipkxtea", False), ("bob", "lrswi", False), ("$nobody-here", "l", False)]
        assert ("bob", "lrswi", True) in [(e.identifier, e.rights, e.inherited) for e in await sub.acl()]
        assert await team.list_rights("alice") == ("lrswipkxtea", [])
        assert (await team.list_rights("bob"))[0] == ""
        shared = {f.id: f for f in await bob.shared_folders(counts=False)}
        assert shared[team.id].rights == "lrswi" and shared[team.id].owner == "alice"
        assert shared[sub.id].rights == "lrswi"
        seen_by_bob = shared[team.id]
        assert [(e.identifier, e.rights) for e in await seen_by_bob.acl()] == [("bob", "lrswi")]
        with pytest.raises(Forbidden):
            await seen_by_bob.set_acl("bob", "+a")
        assert await team.delete_acl("bob") is True
        with pytest.raises(NotFound):
            await seen_by_bob.my_rights()
        await team.delete()

    reactor_thread.coro(scenario)


def test_subscriptions_are_names_of_the_own_store(reactor_thread, adapter):
    session = logon(reactor_thread, adapter)

    async def scenario():
        store = session.store()
        assert {"INBOX", "Sent", "Drafts", "Trash"} <= set(await store.subscriptions(["INBOX", "Sent", "Drafts",
                                                                                       "Trash"]))
        await store.subscribe(["Sub scribed/Ünï", "Later"])
        await store.unsubscribe(["Later", "never subscribed"])
        names = await store.subscriptions()
        assert "Sub scribed/Ünï" in names and "Later" not in names and names == sorted(names)
        await store.unsubscribe(["Sub scribed/Ünï"])
        with pytest.raises(BadRequest):
            await session.public_store().subscriptions()

    reactor_thread.coro(scenario)


# -- items --------------------------------------------------------------------------------------

def test_append_query_and_read_back_byte_identical(reactor_thread, adapter):
    session = logon(reactor_thread, adapter)
    sources = [message("plain one"), message("binary-ish", b"caf\xc3\xa9 \xff\x00 tail\r\n")]
    for path in email_corpus()[:20]:
        with open(path, "rb") as fp:
            sources.append(fp.read())

    async def scenario():
        folder = await fresh_folder(session, "ReadBack")
        uids = []
        for i, src in enumerate(sources):
            uid, modseq = await folder.append(src, flags=["\\Seen"] if i % 2 else (), internal_date=1700000000 + i)
            assert modseq > 0
            uids.append(uid)
        assert uids == sorted(uids) and len(set(uids)) == len(uids)

        total, cols = await folder.query(["uid", "size", "subject", "internalDate", "flags"],
                                         sort=[("uid", False)])
        assert total == len(sources) and cols["uid"] == uids
        assert cols["size"] == [len(s) for s in sources]
        assert cols["subject"][0] == "plain one"
        assert cols["internalDate"][1] == 1700000001

        total, cols = await folder.query(["uid"], restriction={"flag": ("\\Seen", True)}, limit=3)
        assert total == len(sources) // 2 and len(cols["uid"]) == 3

        total, page = await folder.messages(["uid", "subject", "envelope", "size"], sort=[("uid", True)],
                                            offset=1, limit=2)
        assert [m.uid for m in page] == [uids[-2], uids[-3]]
        first = (await folder.messages(["uid", "envelope"], restriction={"uids": str(uids[0])}))[1][0]
        assert first.envelope["subject"] == "plain one"

        for uid, src in zip(uids, sources):
            msg = await folder.message(uid, ["uid", "size", "flags", "subject"])
            assert await msg.source() == src
            pieces: list[bytes] = []
            assert await msg.read(pieces.append) == len(src)
            assert b"".join(pieces) == src
        # A partial read, as IMAP BODY[]<start.length> needs.
        msg = await folder.message(uids[1], ["uid", "size"])
        pieces = []
        await msg.read(pieces.append, 6, 16)
        assert b"".join(pieces) == sources[1][6:16]
        with pytest.raises(NotFound):
            await folder.message(999999)

    reactor_thread.coro(scenario, timeout=60)


def test_sources_of_many_items_in_one_stream(reactor_thread, adapter):
    session = logon(reactor_thread, adapter)
    sources = [message(f"batch {i}", b"x" * (i * 37) + b"\r\n") for i in range(12)] + [b""]

    async def scenario():
        folder = await fresh_folder(session, "Batch")
        uids = [(await folder.append(src))[0] for src in sources]
        await folder.delete([uids[3], uids[4]])
        wanted = uids + [uids[-1] + 100]  # gone and never-existing uids are left out
        href, parts = await folder.open_sources(wanted)
        kept = [u for u in uids if u not in (uids[3], uids[4])]
        assert [u for u, _ in parts] == kept
        assert [n for _, n in parts] == [len(sources[uids.index(u)]) for u in kept]
        whole = b"".join(sources[uids.index(u)] for u in kept)
        chunks: list[bytes] = []
        assert await folder.stream(href, chunks.append) == len(whole)
        assert b"".join(chunks) == whole
        # A range that crosses from one source into the next.
        cut = len(sources[0]) - 5
        chunks = []
        await folder.stream(href, chunks.append, cut, cut + 60)
        assert b"".join(chunks) == whole[cut:cut + 60]
        href, parts = await folder.open_sources(f"{uids[3]}:{uids[4]}")
        assert parts == []
        with pytest.raises(BadRequest):
            await folder.open_sources("1:x")

    reactor_thread.coro(scenario, timeout=60)


def test_flags(reactor_thread, adapter):
    session = logon(reactor_thread, adapter)

    async def scenario():
        folder = await fresh_folder(session, "Flags")
        uids = [(await folder.append(message(f"m{i}")))[0] for i in range(5)]
        result = await folder.set_flags(uids[:3], "add", ["\\Seen", "$Important"])
        assert sorted(c.uid for c in result.changed) == uids[:3]
        assert all("\\Seen" in c.flags and "$Important" in c.flags for c in result.changed)
        modseq = result.highest_modseq
        # Nothing changes: nothing reported, modseq kept.
        again = await folder.set_flags(uids[:3], "add", ["\\Seen"])
        assert again.changed == []
        result = await folder.set_flags(f"{uids[0]}:{uids[1]}", "remove", ["$Important"])
        assert {c.uid for c in result.changed} == set(uids[:2]) and result.highest_modseq > modseq
        await folder.set_flags(uids, "replace", ["\\Flagged"])
        by_uid = {m.uid: m.flags for m in await folder.uids_and_flags()}
        assert all(by_uid[u] == ["\\Flagged"] for u in uids)
        # CONDSTORE: rows changed after unchangedSince fail untouched.
        old = (await folder.changes(0)).highest_modseq
        await folder.set_flags([uids[4]], "add", ["\\Answered"])
        result = await folder.set_flags(uids[3:], "add", ["\\Seen"], unchanged_since=old)
        assert result.failed == [uids[4]] and [c.uid for c in result.changed] == [uids[3]]

    reactor_thread.coro(scenario)


def test_copy_move_delete_and_changes(reactor_thread, adapter):
    session = logon(reactor_thread, adapter)

    async def scenario():
        src = await fresh_folder(session, "Source")
        dst = await fresh_folder(session, "Target")
        uids = [(await src.append(message(f"c{i}")))[0] for i in range(6)]
        base = (await src.changes(0)).highest_modseq

        pairs = await src.copy(uids[:2], dst)
        assert [p[0] for p in pairs] == uids[:2]
        assert len({p[1] for p in pairs}) == 2 and pairs.uid_validity == dst.uid_validity
        moved = await src.move(uids[2:4], dst.id)
        assert [p[0] for p in moved] == uids[2:4]
        assert min(p[1] for p in moved) > max(p[1] for p in pairs)
        _, cols = await dst.query(["uid", "subject"], sort=[("uid", False)])
        assert cols["subject"] == ["c0", "c1", "c2", "c3"]
        remaining = [m.uid for m in await src.uids_and_flags()]
        assert remaining == [uids[0], uids[1], uids[4], uids[5]]

        assert await src.delete([uids[4]]) == [uids[4]]
        assert await src.copy([], dst) == []  # no round trip for nothing
        await src.set_flags([uids[5]], "add", ["\\Seen"])
        changes = await src.changes(base)
        assert not changes.expired
        assert set(changes.deleted) == {uids[2], uids[3], uids[4]}
        assert [c.uid for c in changes.changed] == [uids[5]] and "\\Seen" in changes.changed[0].flags
        assert changes.highest_modseq > base
        assert (await src.changes(changes.highest_modseq)).changed == []
        assert await dst.empty() > 0
        assert (await dst.query(["uid"]))[0] == 0

    reactor_thread.coro(scenario)


def test_calendar_item(reactor_thread, adapter):
    session = logon(reactor_thread, adapter)
    ical = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:evt-1@example.org\r\n"
            "DTSTAMP:20240101T000000Z\r\nDTSTART:20240301T100000Z\r\nDTEND:20240301T110000Z\r\n"
            "SUMMARY:Planning\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")

    async def scenario():
        cal = await session.store().create_folder(f"Cal {time.time()}", container_class="calendar")
        saved = await cal.save_calendar_item("evt-1.ics", ical, if_none_match=True)
        assert saved["created"] and saved["etag"]
        with pytest.raises(Conflict):
            await cal.save_calendar_item("evt-1.ics", ical, if_none_match=True)
        with pytest.raises(Conflict):
            await cal.save_calendar_item("evt-1.ics", ical, if_match='"stale"')
        again = await cal.save_calendar_item("evt-1.ics", ical.replace("Planning", "Review"), if_match=saved["etag"])
        assert again["uid"] == saved["uid"] and not again["created"]
        _, items = await cal.messages(["uid", "name", "summary", "etag", "dtstart"])
        assert items[0].summary == "Review" and items[0].name == "evt-1.ics"
        assert items[0].dtstart == 1709287200
        assert (await items[0].ical()).replace("Review", "Planning") == ical
        await cal.delete()

    reactor_thread.coro(scenario)


def test_large_append_goes_through_upload(reactor_thread, adapter, tmp_path):
    session = logon(reactor_thread, adapter)
    big = message("large", b"0123456789abcdef" * 1024 * 200)  # ~3 MB, over the inline limit
    path = tmp_path / "large.eml"
    path.write_bytes(big)

    async def scenario():
        folder = await fresh_folder(session, "Large")
        uid, _ = await folder.append(big)
        uid2, _ = await folder.append(str(path), flags=["\\Draft"])
        for u in (uid, uid2):
            msg = await folder.message(u, ["uid", "size"])
            assert msg.size == len(big)
            assert await msg.source() == big

    reactor_thread.coro(scenario, timeout=60)


def test_append_many_in_batches(reactor_thread, adapter, monkeypatch):
    from shared.model import mail_items
    # Small batches so one call crosses several of them, an upload included.
    monkeypatch.setattr(mail_items, "APPEND_BATCH_MESSAGES", 7)
    session = logon(reactor_thread, adapter)
    sources = [message(f"bulk {i}") for i in range(30)]
    sources[11] = message("bulk big", b"x" * (2 * 1024 * 1024))  # over the inline limit
    for path in email_corpus()[:10]:
        with open(path, "rb") as fp:
            sources.append(fp.read())

    async def scenario():
        folder = await fresh_folder(session, "Bulk")
        uids = await folder.append_many(sources, flags=["\\Seen", "$Imported"], internal_date=1700000000)
        assert uids == list(range(1, len(sources) + 1))
        total, cols = await folder.query(["uid", "size", "flags", "keywords", "internalDate"], sort=[("uid", False)])
        assert total == len(sources) and cols["size"] == [len(s) for s in sources]
        assert set(cols["flags"]) == {1} and set(cols["keywords"]) == {"$Imported"}
        assert set(cols["internalDate"]) == {1700000000}
        for uid in (1, 12, len(sources)):
            assert await (await folder.message(uid, ["uid"])).source() == sources[uid - 1]

    reactor_thread.coro(scenario, timeout=60)


# -- push ----------------------------------------------------------------------------------------

def test_change_watcher_fires_fast(reactor_thread, adapter):
    watcher_session = logon(reactor_thread, adapter)
    writer = logon(reactor_thread, adapter, protocol="pop3")

    async def scenario():
        folder = await fresh_folder(writer, "Watched")
        folder = await watcher_session.store().folder(folder.id)
        seen: list[tuple[int, int, float]] = []
        fired = defer.Deferred()

        def changed(folder_id: int, modseq: int) -> None:
            seen.append((folder_id, modseq, time.perf_counter()))
            if not fired.called:
                fired.callback(None)

        watcher = ChangeWatcher(watcher_session, [folder], changed).start()
        try:
            # Nothing reports a change while the poll is parked: 0.2 s of silence is the check.
            await task.deferLater(reactor_thread.reactor, 0.2, lambda: None)
            assert seen == []
            target = await writer.store().folder(folder.id)
            t0 = time.perf_counter()
            _, modseq = await target.append(message("ping"))
            t_done = time.perf_counter()
            await fired.addTimeout(5, reactor_thread.reactor)
            folder_id, got, t1 = seen[0]
            assert folder_id == folder.id and got >= modseq
            print(f"change reported {1000 * (t1 - t_done):.1f} ms after the append returned")
            assert t1 - t_done < 0.1, f"change reported {1000 * (t1 - t_done):.0f} ms after the append"
            assert t1 - t0 < 0.5
        finally:
            watcher.stop()

    reactor_thread.coro(scenario)


# -- big streams ---------------------------------------------------------------------------------

@implementer(IConsumer)
class HashingConsumer:
    """Hashes what it gets and pauses its producer now and then, like a slow client socket."""

    def __init__(self, reactor) -> None:
        self.reactor = reactor
        self.sha = hashlib.sha256()
        self.size = 0
        self.producer = None
        self.writes = 0

    def registerProducer(self, producer, streaming) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def write(self, data: bytes) -> None:
        self.sha.update(data)
        self.size += len(data)
        self.writes += 1
        if self.writes % 50 == 0 and self.producer is not None:
            producer = self.producer
            producer.pauseProducing()
            self.reactor.callLater(0.001, producer.resumeProducing)


def test_stream_50mb_with_bounded_memory(reactor_thread, adapter, tmp_path):
    session = logon(reactor_thread, adapter)
    path = tmp_path / "huge.eml"
    line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    sha = hashlib.sha256()
    with open(path, "wb") as fp:
        head = message("huge", b"")
        fp.write(head)
        sha.update(head)
        written = len(head)
        while written < 50 * 1024 * 1024:
            block = line * 1000
            fp.write(block)
            sha.update(block)
            written += len(block)
    proc = psutil.Process()
    baseline = proc.memory_info().rss
    peak = [baseline]

    def sample() -> None:
        peak[0] = max(peak[0], proc.memory_info().rss)

    async def scenario():
        sampler = task.LoopingCall(sample)
        sampler.clock = reactor_thread.reactor
        sampler.start(0.01)
        try:
            folder = await fresh_folder(session, "Huge")
            uid, _ = await folder.append(str(path))
            msg = await folder.message(uid, ["uid", "size"])
            assert msg.size == written
            consumer = HashingConsumer(reactor_thread.reactor)
            assert await msg.read(consumer) == written
            assert consumer.sha.hexdigest() == sha.hexdigest()
            # And a range from the middle of it.
            pieces: list[bytes] = []
            await msg.read(pieces.append, 30_000_000, 30_000_100)
            with open(path, "rb") as fp:
                fp.seek(30_000_000)
                assert b"".join(pieces) == fp.read(100)
        finally:
            sampler.stop()
        sample()

    reactor_thread.coro(scenario, timeout=120)
    growth = peak[0] - baseline
    print(f"RSS growth while uploading and streaming 50 MB: {growth / 1e6:.1f} MB")
    assert growth < 20 * 1024 * 1024, f"RSS grew by {growth / 1e6:.1f} MB"


# -- outages -------------------------------------------------------------------------------------

def test_server_stop_and_restart(reactor_thread, tmp_path):
    srv = start_store_server(str(tmp_path))
    adapter = make_adapter(reactor_thread, srv)
    try:
        session = logon(reactor_thread, adapter)
        writer = logon(reactor_thread, adapter, "alice", "pop3")
        inbox = reactor_thread.call(session.store().inbox)
        seen: list[tuple[int, int]] = []
        watcher = reactor_thread.call(lambda: ChangeWatcher(session, [inbox], lambda f, m: seen.append((f, m))).start())
        old_id = session.id

        srv.stop()
        with pytest.raises(Unavailable):
            reactor_thread.call(session.whoami)
        with pytest.raises(Unavailable):
            reactor_thread.call(adapter.logon, "alice", PASSWORD, "imap", "192.0.2.1")
        with pytest.raises(Unavailable):
            reactor_thread.call(adapter.logon, "alice", "wrong password", "imap", "192.0.2.1")

        srv.start()
        # The server forgot every session; the adapter logs on again by itself.
        who, _, _ = reactor_thread.call(session.whoami)
        assert who.name == "alice" and session.id != old_id
        folders = reactor_thread.call(session.store().folders)
        assert any(f.role == "inbox" for f in folders)
        # The watcher rode out the outage and reports new mail again.
        target = reactor_thread.call(writer.store().inbox)
        _, modseq = reactor_thread.call(target.append, message("after restart"))
        wait_until(lambda: any(m >= modseq for _, m in seen), message="no change reported after the restart")
        assert any(f == inbox.id and m >= modseq for f, m in seen)
        reactor_thread.call(watcher.stop)
    finally:
        reactor_thread.call(adapter.close)
        srv.stop()


# -- helpers without a server ----------------------------------------------------------------------

def test_uidset_helpers():
    assert format_uidset([5, 1, 2, 3, 9, 10, 3]) == "1:3,5,9:10"
    assert format_uidset("1:*") == "1:*"
    assert parse_uidset("1:3,5,9:10") == [1, 2, 3, 5, 9, 10]
    assert parse_uidset("7:*", max_uid=9) == [7, 8, 9]
    assert parse_uidset("") == []
    with pytest.raises(BadRequest):
        format_uidset("1;2")
