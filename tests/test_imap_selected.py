"""The selected-mailbox view on its own: sequence numbers, flag cache, queued updates."""
from __future__ import annotations

import time
import tracemalloc
from types import SimpleNamespace

from gateways.imap.grammar.sequence import SequenceSet
from gateways.imap.selected import SelectedMailbox
from shared.flags import DELETED, SEEN
from shared.items import Changes, ItemChange, Message
from twisted.internet import defer


def folder(uid_next: int = 1, modseq: int = 10) -> SimpleNamespace:
    """The counters a folder listing carries; no store behind it."""
    return SimpleNamespace(id=1, uid_validity=7, uid_next=uid_next, highest_modseq=modseq, session=None)


def box_of(uids: list[int], bits: int = 0, keywords: str = "", enabled: set[str] | None = None) -> SelectedMailbox:
    messages = [Message(None, {"uid": u, "modseq": 5, "flags": bits, "keywords": keywords}) for u in uids]
    return SelectedMailbox(folder(uid_next=(uids[-1] + 1) if uids else 1), False, messages, enabled)


def seq(text: str) -> SequenceSet:
    ranges = []
    for part in text.split(","):
        lo, _, hi = part.partition(":")
        ranges.append((None if lo == "*" else int(lo), None if (hi or lo) == "*" else int(hi or lo)))
    return SequenceSet(ranges)


def test_numbers_and_uids_both_ways():
    box = box_of([3, 5, 9, 12])
    assert box.exists == 4 and box.uid(1) == 3 and box.uid(4) == 12
    assert box.msn(9) == 3 and box.msn(4) is None and box.msn(100) is None
    assert box.uid_next == 13 and box.uid_validity == 7


def test_sequence_and_uid_sets_resolve_to_index_ranges():
    box = box_of([3, 5, 9, 12])
    assert box.index_ranges(seq("1:*"), uid=False) == [(0, 3)]
    assert box.index_ranges(seq("2,4"), uid=False) == [(1, 1), (3, 3)]
    assert box.index_ranges(seq("4:6"), uid=True) == [(1, 1)]
    assert box.index_ranges(seq("10:*"), uid=True) == [(3, 3)]
    assert box.index_ranges(seq("100:*"), uid=True) == [(3, 3)]  # "n:*" names the last one
    assert box.index_ranges(seq("13:20"), uid=True) == []
    assert box.msn_beyond(seq("5")) and not box.msn_beyond(seq("1:*"))
    assert box.store_uids([(0, 1), (3, 3)]) == "3:5,12"
    assert list(box.iter_indexes([(0, 1), (3, 3)])) == [0, 1, 3]


def test_an_empty_mailbox_matches_nothing():
    box = box_of([])
    assert box.index_ranges(seq("1:*"), uid=False) == []
    assert box.index_ranges(seq("*"), uid=True) == []
    assert box.index_ranges(seq("5:1"), uid=True) == []
    assert box.first_unseen() is None and box.take_updates() == []


def test_expunged_messages_leave_the_listing_cache():
    """Their UIDs never come back: their rendered items would only crowd out live ones."""
    from gateways.imap.listing_cache import CACHE
    box = box_of([3, 5, 9])
    for uid in (3, 5, 9):
        CACHE.put((1, 7, uid), {"ENVELOPE": b"(...)"})
    box.mark_expunged([3, 9])
    assert box.take_updates() == [b"* 3 EXPUNGE\r\n", b"* 1 EXPUNGE\r\n"]
    assert CACHE.get((1, 7, 3)) is None and CACHE.get((1, 7, 9)) is None
    assert CACHE.get((1, 7, 5)) == {"ENVELOPE": b"(...)"}
    CACHE.forget(1, 7, [5])


def test_flags_cache():
    box = box_of([1, 2], bits=SEEN, keywords="$Junk")
    assert box.flags(0) == ("\\Seen", "$Junk") and box.flag_bits(1) == SEEN and box.keywords(1) == ("$Junk",)
    box.update(2, ["\\Deleted"], modseq=11)
    assert box.flags(1) == ("\\Deleted",) and box.modseq(1) == 11 and box.highest_modseq == 11
    assert box.take_updates() == []  # the session's own change is not echoed
    box.update(1, ["\\Flagged"], modseq=12, report=True)
    assert box.take_updates() == [b"* 1 FETCH (UID 1 FLAGS (\\Flagged))\r\n"]


def test_changes_from_elsewhere_wait_for_their_moment():
    box = box_of([1, 2, 3, 4], enabled={"CONDSTORE"})
    box.apply([ItemChange(5, 30, ["\\Seen"]), ItemChange(2, 31, ["\\Flagged"])], deleted=[1, 3])
    assert box.has_updates()
    # During FETCH, STORE or SEARCH: new mail and flags, but numbers stay put.
    assert box.take_updates(expunge=False) == [
        b"* 5 EXISTS\r\n", b"* 2 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ (31))\r\n"]
    assert box.exists == 5 and box.msn(3) == 3
    assert box.take_updates(expunge=True) == [b"* 3 EXPUNGE\r\n", b"* 1 EXPUNGE\r\n"]
    assert list(box.uids) == [2, 4, 5] and box.flags(2) == ("\\Seen",)
    assert box.highest_modseq == 31 and box.uid_next == 6


def test_news_seen_twice_is_told_once():
    box = box_of([1, 2])
    change = [ItemChange(2, 40, ["\\Seen"]), ItemChange(3, 41, [])]
    box.apply(change, [])
    box.apply(change, [])
    assert box.take_updates() == [b"* 3 EXISTS\r\n", b"* 2 FETCH (UID 2 FLAGS (\\Seen))\r\n"]
    box.apply(change, [2, 2])
    assert box.take_updates() == [b"* 2 EXPUNGE\r\n"]
    box.apply([], [2])
    assert box.take_updates() == []


def test_new_mail_deleted_before_it_was_announced_is_never_mentioned():
    box = box_of([1])
    box.apply([ItemChange(2, 50, [])], [])
    box.apply([], [2])
    assert box.take_updates() == []


def test_own_expunge_and_vanished_with_qresync():
    box = box_of([1, 2, 3, 4, 5], bits=DELETED)
    box.mark_expunged([2, 3, 5])
    assert box.take_updates() == [b"* 5 EXPUNGE\r\n", b"* 3 EXPUNGE\r\n", b"* 2 EXPUNGE\r\n"]
    box = box_of([1, 2, 3, 4, 5], enabled={"QRESYNC"})
    box.mark_expunged([2, 3, 5])
    assert box.take_updates() == [b"* VANISHED 2:3,5\r\n"]
    assert list(box.uids) == [1, 4]


def test_a_hundred_thousand_messages_stay_cheap():
    uids = list(range(1, 200_001, 2))
    messages = [Message(None, {"uid": u, "modseq": u, "flags": SEEN if u % 3 else 0, "keywords": ""}) for u in uids]
    tracemalloc.start()
    start = time.perf_counter()
    box = SelectedMailbox(folder(uid_next=200_001), False, messages)
    built = time.perf_counter() - start
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    # Arrays, not an object per message: about 25 bytes each.
    assert held < 4_000_000, held
    assert box.exists == 100_000 and box.msn(199_999) == 100_000
    start = time.perf_counter()
    ranges = box.index_ranges(seq("1:*"), uid=True)
    assert ranges == [(0, 99_999)] and box.store_uids(ranges) == "1:199999"
    for uid in range(1, 200_001, 97):
        box.msn(uid)
    lookups = time.perf_counter() - start
    box.mark_expunged(uids[::2])
    start = time.perf_counter()
    lines = box.take_updates()
    expunged = time.perf_counter() - start
    assert len(lines) == 50_000 and box.exists == 50_000
    assert built < 1.0 and lookups < 0.1 and expunged < 1.0, (built, lookups, expunged)


def test_a_push_of_the_sessions_own_write_asks_the_store_nothing():
    """The store tells the watchers as a write commits, often before the writer has its
    answer: that push waits for the answer, and asks for the changes only if another
    session's write came in between (every write takes the folder's next modseq)."""
    asked = []
    box = box_of([1, 2])
    box.folder.changes = lambda since: asked.append(since) or defer.succeed(
        Changes(13, False, [ItemChange(2, 12, ["\\Deleted", "\\Flagged"])], []))
    with box.writing():
        box._pushed(1, 11)
        box.update(2, ["\\Deleted"], modseq=11)
    assert asked == [] and box.highest_modseq == 11 and box.take_updates() == []
    with box.writing():
        box._pushed(1, 13)
        box.update(1, ["\\Seen"], modseq=13)  # modseq 12 was another session's write
        assert box.highest_modseq == 11
    assert asked == [11] and box.highest_modseq == 13
    assert box.take_updates() == [b"* 2 FETCH (UID 2 FLAGS (\\Flagged \\Deleted))\r\n"]
