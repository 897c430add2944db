"""The per-process mailbox index: a SELECT of a folder seen before asks the store only
for what changed since, and sees exactly what a full listing would show."""
from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from twisted.internet import defer

from gateways.imap.mailbox_index import IndexCache, MailboxIndex
from shared.flags import FLAGGED, SEEN, flag_names
from shared.items import Changes, ItemChange
from imap_env import MESSAGE

pytestmark = pytest.mark.gateway_env("imap")


def index_of(uids, modseq=10, bits=0, keywords=None):
    return MailboxIndex.from_columns(list(uids), [5] * len(uids), [bits] * len(uids),
                                     [keywords] * len(uids), modseq)


def rows(index):
    return list(zip(index.uids, index.modseqs, index.bits, index.keywords))


def test_changes_update_append_and_delete_in_uid_order():
    index = index_of([1, 2, 3, 5])
    index.apply([ItemChange(2, 11, ["\\Seen", "$Junk"]), ItemChange(8, 12, ["\\Flagged"]),
                 ItemChange(4, 12, [])], deleted=[3, 99], modseq=12)
    assert rows(index) == [(1, 5, 0, ()), (2, 11, SEEN, ("$Junk",)), (4, 12, 0, ()), (5, 5, 0, ()),
                           (8, 12, FLAGGED, ())]
    assert index.modseq == 12


def test_changes_applied_twice_or_late_change_nothing():
    index = index_of([1, 2])
    change = [ItemChange(2, 11, ["\\Seen"]), ItemChange(3, 11, [])]
    index.apply(change, [], 11)
    once = rows(index)
    index.apply(change, [], 11)
    index.apply([ItemChange(2, 9, ["\\Deleted"])], [], 11)  # older than what is known
    assert rows(index) == once and index.modseq == 11


def test_unknown_system_flags_from_the_store_are_left_out():
    index = index_of([1])
    index.apply([ItemChange(1, 11, ["\\Seen", "\\Whatever", "Custom"])], [], 11)
    assert rows(index) == [(1, 11, SEEN, ("Custom",))]


class FakeFolder(SimpleNamespace):
    """The listing and change calls a folder answers, counted; no store behind it."""

    def __init__(self, uids, modseq):
        super().__init__(id=4, uid_validity=9, highest_modseq=modseq, listings=0, change_calls=[],
                         uids=list(uids), expired=False, pending=[],
                         store=SimpleNamespace(id=1), session=SimpleNamespace(store_id=1))  # the user's own

    def query(self, columns, restriction=None, sort=()):
        if "keywords" in columns:
            return defer.succeed((0, {"uid": [], "keywords": []}))
        self.listings += 1
        n = len(self.uids)
        return defer.succeed((n, {"uid": list(self.uids), "modseq": [1] * n, "flags": [0] * n}))

    def changes(self, since):
        self.change_calls.append(since)
        return defer.succeed(Changes(self.highest_modseq, self.expired, self.pending, []))


def load(cache, folder):
    d = defer.ensureDeferred(cache.load(folder))
    assert d.called
    return d.result


def test_a_second_select_asks_only_for_changes_and_gets_a_private_copy():
    cache, folder = IndexCache(1 << 20), FakeFolder([1, 2, 3], modseq=5)
    first = load(cache, folder)
    assert folder.listings == 1 and list(first.uids) == [1, 2, 3]
    first.uids.append(77)  # a session's own view does not leak into the cache
    assert list(load(cache, folder).uids) == [1, 2, 3]
    assert folder.listings == 1 and folder.change_calls == []  # nothing moved: no store call at all
    folder.highest_modseq, folder.pending = 7, [ItemChange(4, 7, ["\\Seen"])]
    assert list(load(cache, folder).uids) == [1, 2, 3, 4]
    assert folder.listings == 1 and folder.change_calls == [5]


def test_changes_read_before_another_sessions_newer_ones_are_not_applied_over_them():
    cache, folder = IndexCache(1 << 20), FakeFolder([1, 2, 3], modseq=5)
    load(cache, folder)
    slow = defer.Deferred()
    folder.changes = lambda since: slow  # the first look's answer is late
    folder.highest_modseq = 7
    first = defer.ensureDeferred(cache.load(folder))
    # Meanwhile message 4 arrived (modseq 7) and was deleted (modseq 8); a second session
    # hears of both and brings the cache to modseq 8.
    folder.changes = lambda since: defer.succeed(Changes(8, False, [], [4]))
    folder.highest_modseq = 8
    assert list(load(cache, folder).uids) == [1, 2, 3]
    slow.callback(Changes(7, False, [ItemChange(4, 7, [])], []))
    assert first.called and list(first.result.uids) == [1, 2, 3]


def test_an_expired_snapshot_is_listed_again():
    cache, folder = IndexCache(1 << 20), FakeFolder([1, 2], modseq=5)
    load(cache, folder)
    folder.highest_modseq, folder.expired, folder.uids = 9, True, [2, 6]
    assert list(load(cache, folder).uids) == [2, 6] and folder.listings == 2


def test_the_cache_stays_within_its_bytes():
    one = index_of(range(1, 1001)).nbytes
    cache = IndexCache(max_bytes=int(one * 2.5))
    for folder_id in range(5):
        folder = FakeFolder(range(1, 1001), modseq=3)
        folder.id = folder_id
        load(cache, folder)
        assert cache.bytes <= cache.max_bytes
    assert len(cache) == 2
    tiny = IndexCache(max_bytes=100)
    assert list(load(tiny, FakeFolder([1], modseq=1)).uids) == [1] and len(tiny) == 0


# -- against the real server ----------------------------------------------------------------

def flag_view(m) -> dict[int, set[str]]:
    """{uid: flags} as `UID FETCH 1:* (UID FLAGS)` tells it."""
    typ, data = m.uid("FETCH", "1:*", "(UID FLAGS)")
    assert typ == "OK"
    out = {}
    for line in data:
        match = re.search(rb"UID (\d+) FLAGS \(([^)]*)\)", line)
        out[int(match.group(1))] = set(match.group(2).decode().split()) - {"\\Recent"}  # the session's own
    return out


def store_view(env, folder) -> dict[int, set[str]]:
    _, columns = env.rt.call(folder.query, ("uid", "flags", "keywords"), sort=[("uid", False)])
    return {uid: set(flag_names(bits, (keywords or "").split()))
            for uid, bits, keywords in zip(columns["uid"], columns["flags"], columns["keywords"])}


def test_reselect_after_changes_elsewhere_shows_what_the_store_holds(env):
    folder = env.fresh("indexed", 30)
    first = env.imap()
    assert first.select("indexed")[0] == "OK"
    assert flag_view(first) == store_view(env, folder)
    first.logout()

    async def change_elsewhere():
        await folder.set_flags("3:5", "add", ["\\Seen", "$Label1"])
        await folder.set_flags("6", "replace", ["\\Flagged"])
        await folder.delete_items("1,7:9")
        await folder.append_many([MESSAGE % (i, i) for i in range(100, 103)], flags=["\\Answered"])
    env.rt.coro(change_elsewhere)

    for _ in range(2):  # once bringing the kept index up to date, once from it unchanged
        second = env.imap()
        typ, data = second.select("indexed")
        assert typ == "OK" and data == [b"29"]
        view = flag_view(second)
        second.logout()
        assert view == store_view(env, folder)
        assert 1 not in view and 7 not in view and view[5] == {"\\Seen", "$Label1"}
        assert view[6] == {"\\Flagged"} and view[31] == {"\\Answered"}


def test_flag_listing_tells_recent_messages_from_others_with_the_same_flags(env):
    folder = env.fresh("recent-mix", 3)
    first = env.imap()
    assert first.select("recent-mix")[0] == "OK"  # new to the process: 1-3 are old
    first.logout()
    env.rt.call(folder.append_many, [MESSAGE % (9, 9)])
    second = env.imap()
    assert second.select("recent-mix")[0] == "OK"
    typ, data = second.uid("FETCH", "1:*", "(UID FLAGS)")
    assert data == [b"1 (UID 1 FLAGS ())", b"2 (UID 2 FLAGS ())", b"3 (UID 3 FLAGS ())",
                    b"4 (UID 4 FLAGS (\\Recent))"]
    second.logout()
