"""The selected mailbox as one IMAP session sees it (RFC 3501 §2.3.1, §5.2, §7.4.1; RFC 7162).

A `SelectedMailbox` holds the message sequence number <-> UID map of the session
and a cache of every message's flags and modseq: its own copy of the folder's
`MailboxIndex` (from the process's `IndexCache`, which asks the store only for what
changed since another session last selected the folder). It costs a few arrays, not
an object per message: 100,000 messages take about 2 MB.

Reading (msn = message sequence number, 1-based; index = msn - 1):

    box.exists                        messages the client has been told about
    box.uid(msn) / box.msn(uid)       either way (msn None when the uid is not here)
    box.uids                          array('Q') of the uids, ascending
    box.index_ranges(seqset, uid)     [(first, last)] 0-based inclusive index ranges the
                                      `SequenceSet` names, sorted; `uid` says whether it
                                      is a UID set (numbers not present are skipped);
                                      `$` names `box.saved_uids` (RFC 5182)
    box.msn_beyond(seqset)            True when a sequence set (not UID) names a number
                                      above `exists` (the command should fail with BAD)
    box.iter_indexes(ranges)          every index in such ranges
    box.store_uids(ranges)            the same messages as a compact uid-set string for
                                      the adapter (Folder.set_flags/copy/move/delete_items)
    box.flags(index)                  tuple of flag names, system flags first (\\Recent
                                      among them for the session's recent messages)
    box.recent                        `recent.RecentRanges`: uids \\Recent to this session,
                                      taken by `claim_recent` at SELECT and as new ones come
    box.flag_bits(index), box.keywords(index), box.modseq(index)
    box.uid_validity, box.uid_next, box.highest_modseq, box.readonly, box.folder

Changing (after the session's own store calls):

    box.update(uid, flags, modseq, report=False)   new flags (names) and modseq of a message;
                                      report=True queues an untagged FETCH for it
    box.mark_expunged(uids)           messages the session itself deleted or moved away;
                                      their EXPUNGE (or VANISHED) goes out with the next
                                      `take_updates(expunge=True)`
    box.wrote(modseq)                 the modseq a write of the session took
    with box.writing(): ...           around such a write: pushes wait for its answer

Updates from elsewhere (other sessions, delivered mail) come from the store's
long-poll (`push.FolderWatches`, one `shared.watcher.ChangeWatcher` per folder
shared by every connection that has it selected; `open` joins it) and from `refresh()`,
which NOOP and CHECK call to look at once. They are queued, and the protocol
writes them before a tagged reply with `take_updates(expunge)`:
`* n EXPUNGE` (or `* VANISHED uids` once QRESYNC is enabled) only where RFC 3501
§7.4.1 allows expunges, then `* n EXISTS`, then `* n FETCH (UID u FLAGS (...))`
(with MODSEQ once CONDSTORE is enabled). Messages stay in the map, with their
numbers, until their EXPUNGE is sent. `on_change`, when set (IDLE), is called
whenever new updates are queued.
"""
from __future__ import annotations

import bisect
import contextlib
import logging
from array import array
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

from gateways.imap import listing_cache
from gateways.imap.grammar import writer as w
from gateways.imap.grammar.sequence import SavedResult, SequenceSet
from gateways.imap.mailbox_index import NO_KEYWORDS, IndexCache, MailboxIndex, full_listing, split_flag_names
from gateways.imap.recent import RecentClaims, RecentRanges
from gateways.imap import rev2
from shared import rights
from shared.flags import SEEN, flag_names, split_flags
from shared.items import ItemChange
from shared.uidset import format_ranges, runs
from gateways.imap.push import FolderWatches
from shared.watcher import ChangeWatcher

log = logging.getLogger("gateways.imap")

# Flag bytes -> 1 where \\Seen is set, 0 elsewhere: the first unseen is one find().
_SEEN_TO_ONE = bytes((b & 1) for b in range(256))


class SelectedMailbox:
    def __init__(self, folder: Any, readonly: bool, messages: Iterable[Any],
                 enabled: set[str] | None = None) -> None:
        self.folder = folder
        self.readonly = readonly
        self.enabled = enabled if enabled is not None else set()
        self.uid_validity: int = folder.uid_validity
        self.highest_modseq: int = folder.highest_modseq
        messages = list(messages)
        self._fill(MailboxIndex.from_columns(
            [m.uid for m in messages], [m.modseq for m in messages], [m.flag_bits for m in messages],
            [m.get("keywords") for m in messages], self.highest_modseq))
        self._uid_next = max(folder.uid_next, (self.uids[-1] + 1) if self.uids else 1)
        self.on_change: Callable[[], Any] | None = None
        self._stop_watching: Callable[[], Any] | None = None
        self._pending_new: dict[int, tuple[int, int, tuple[str, ...]]] = {}
        self._pending_expunge: set[int] = set()
        self._pending_flags: set[int] = set()
        self._refreshing: defer.Deferred | None = None
        self._again: list[defer.Deferred] | None = None
        # The session's own writes under way (`writing`), and the highest modseq pushed meanwhile.
        self._writes = 0
        self._held_push = 0
        self.closed = False
        self.recent = RecentRanges()
        self._claims: RecentClaims | None = None
        # What `SEARCH RETURN (SAVE)` kept for `$` (RFC 5182): uids, ascending.
        self.saved_uids: list[int] = []

    def may(self, needed: str) -> bool:
        """Whether this session may change what the rights letters `needed` guard
        here (RFC 4314 §4): never in a read-only mailbox."""
        return not self.readonly and rights.has(self.folder.rights, needed)

    @classmethod
    async def open(cls, folder: Any, readonly: bool, enabled: set[str] | None = None,
                   watches: FolderWatches | None = None, indexes: IndexCache | None = None) -> "SelectedMailbox":
        """Read the folder's messages (through `indexes`, the process's cache, when given)
        and start hearing of its changes through `watches` (the service's shared
        long-polls), or a poll of its own."""
        box = cls(folder, readonly, (), enabled)
        if indexes is None:
            index = MailboxIndex.from_columns(*await full_listing(folder), folder.highest_modseq)
        else:
            index = await indexes.load(folder)
        box._fill(index)
        box.highest_modseq = max(box.highest_modseq, index.modseq)
        box._uid_next = max(box._uid_next, (box.uids[-1] + 1) if box.uids else 1)
        if watches is None:
            watcher = ChangeWatcher(folder.session, {folder.id: box.highest_modseq}, box._pushed)
            box._stop_watching = watcher.stop
            watcher.start()
        else:
            box._stop_watching = watches.watch(folder.session, folder.id, box.highest_modseq, box._pushed)
        return box

    def _fill(self, index: MailboxIndex) -> None:
        """Take over the arrays of a private MailboxIndex."""
        self.uids = index.uids
        self._modseqs = index.modseqs
        self._bits = index.bits
        self._keywords = index.keywords

    def close(self) -> None:
        self.closed = True
        self.on_change = None
        if self._stop_watching is not None:
            stop, self._stop_watching = self._stop_watching, None
            stop()

    # -- reading
    @property
    def exists(self) -> int:
        return len(self.uids)

    @property
    def uid_next(self) -> int:
        return self._uid_next

    def uid(self, msn: int) -> int:
        return self.uids[msn - 1]

    def msn(self, uid: int) -> int | None:
        i = bisect.bisect_left(self.uids, uid)
        return i + 1 if i < len(self.uids) and self.uids[i] == uid else None

    def flag_bits(self, index: int) -> int:
        return self._bits[index]

    def keywords(self, index: int) -> tuple[str, ...]:
        return self._keywords[index]

    def flags(self, index: int) -> tuple[str, ...]:
        names = flag_names(self._bits[index], self._keywords[index])
        if self.uids[index] in self.recent and not rev2.enabled(self.enabled):
            names.insert(sum(1 for n in names if n.startswith("\\")), "\\Recent")
        return tuple(names)

    def claim_recent(self, claims: RecentClaims) -> None:
        """Take this session's \\Recent messages (recent.py): at SELECT what no session
        of the process has claimed; later, the new messages as they are announced.
        A read-only session sees what is unclaimed without taking it."""
        self._claims = claims
        first = claims.claim(self.folder.id, self.uid_validity, self._uid_next, take=not self.readonly)
        self.recent.add(first, self._uid_next)

    def modseq(self, index: int) -> int:
        return self._modseqs[index]

    def first_unseen(self) -> int | None:
        """The msn of the first message without \\Seen (SELECT's UNSEEN code)."""
        i = self._bits.tobytes().translate(_SEEN_TO_ONE).find(b"\0")
        return None if i < 0 else i + 1

    def flag_bytes(self) -> bytes:
        """Every message's system-flag bits, one byte each, in sequence order."""
        return self._bits.tobytes()

    def all_keywords(self) -> list[tuple[str, ...]]:
        """Every message's keywords, in sequence order (tuples shared between messages)."""
        return self._keywords

    def all_modseqs(self) -> array:
        return self._modseqs

    def expunge_pending_indexes(self) -> list[int]:
        """Indexes of messages gone from the store whose EXPUNGE is not yet sent."""
        out = []
        for uid in self._pending_expunge:
            i = bisect.bisect_left(self.uids, uid)
            if i < len(self.uids) and self.uids[i] == uid:
                out.append(i)
        return out

    def keywords_in_use(self) -> list[str]:
        seen: dict[str, None] = {}
        for kw in set(self._keywords):
            for k in kw:
                seen.setdefault(k, None)
        return sorted(seen)

    # -- sequence sets
    def msn_beyond(self, seqset: SequenceSet) -> bool:
        if isinstance(seqset, SavedResult):
            return False  # `$` names what is here, or nothing
        if not self.exists:
            return True  # an empty mailbox has no sequence numbers, not even "*" (Dovecot: BAD)
        return any(hi > self.exists for _, hi in seqset.resolve(self.exists))

    def index_ranges(self, seqset: SequenceSet, uid: bool) -> list[tuple[int, int]]:
        if isinstance(seqset, SavedResult):
            # RFC 5182 §2.1: the kept uids, less those expunged since, however `$` is used.
            indexes = []
            for saved in self.saved_uids:
                i = bisect.bisect_left(self.uids, saved)
                if i < len(self.uids) and self.uids[i] == saved:
                    indexes.append(i)
            return runs(indexes)
        if not uid:
            return [(lo - 1, hi - 1) for lo, hi in seqset.clipped(self.exists)]
        if not self.uids:
            return []
        out = []
        for lo, hi in seqset.resolve(self.uids[-1]):
            first = bisect.bisect_left(self.uids, lo)
            last = bisect.bisect_right(self.uids, hi) - 1
            if first <= last:
                out.append((first, last))
        return out

    @staticmethod
    def iter_indexes(ranges: Iterable[tuple[int, int]]) -> Iterator[int]:
        for first, last in ranges:
            yield from range(first, last + 1)

    def store_uids(self, ranges: Iterable[tuple[int, int]]) -> str:
        """A uid-set string naming the messages of index ranges, for the adapter."""
        return format_ranges((self.uids[a], self.uids[b]) for a, b in ranges)

    # -- the session's own changes
    def update(self, uid: int, flags: Iterable[str], modseq: int | None = None, report: bool = False) -> None:
        bits, keywords = split_flag_names(flags)
        i = bisect.bisect_left(self.uids, uid)
        if i < len(self.uids) and self.uids[i] == uid:
            changed = self._bits[i] != bits or self._keywords[i] != keywords
            self._bits[i] = bits & 0xFF
            self._keywords[i] = keywords
            if modseq is not None and modseq > self._modseqs[i]:
                self._modseqs[i] = modseq
                changed = True
            if report and changed:
                self._pending_flags.add(uid)
        elif uid in self._pending_new:
            self._pending_new[uid] = (modseq or self._pending_new[uid][0], bits, keywords)
        if modseq is not None:
            self.wrote(modseq)

    def wrote(self, modseq: int) -> None:
        """The session's own write took `modseq`. Every write takes the folder's next modseq,
        so when it follows the mailbox's highest nothing else happened in between and the
        mailbox is as new as the write; otherwise another session's change is still to be read."""
        if modseq == self.highest_modseq + 1:
            self.highest_modseq = modseq

    def appended(self, uids: list[int], flags: list[Iterable[str]], modseq: int) -> bool:
        """The session's own APPEND of new messages `uids` (with `flags`) to this mailbox took
        `modseq`: when that follows the mailbox's highest, nothing else happened in between
        and they are queued as the store would report them. False when the store has to be
        asked (another change came first; keywords, which the store may cap; \\Seen, which on
        another user's folder the store may keep per reader)."""
        split = [split_flag_names(names) for names in flags]
        if modseq != self.highest_modseq + 1 or any(keywords or bits & SEEN for bits, keywords in split) \
                or (self.uids and uids[0] <= self.uids[-1]):
            return False
        for uid, (bits, _) in zip(uids, split):
            self._pending_new[uid] = (modseq, bits & 0xFF, NO_KEYWORDS)
            self._uid_next = max(self._uid_next, uid + 1)
        self.highest_modseq = modseq
        return True

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Around the session's own write to this folder: a push that arrives before its answer
        (the store tells the watchers as it commits) waits for it, and asks the store for the
        changes only if they are more than the write's own."""
        self._writes += 1
        try:
            yield
        finally:
            self._writes -= 1
            if not self._writes and self._held_push:
                held, self._held_push = self._held_push, 0
                self._pushed(self.folder.id, held)

    def mark_expunged(self, uids: Iterable[int]) -> None:
        for uid in uids:
            if self._pending_new.pop(uid, None) is None and self.msn(uid) is not None:
                self._pending_expunge.add(uid)
                self._pending_flags.discard(uid)

    # -- changes from elsewhere
    def _pushed(self, folder_id: int, modseq: int) -> None:
        if self._writes:
            self._held_push = max(self._held_push, modseq)
            return
        if modseq > self.highest_modseq and not self.closed:
            self.refresh().addErrback(lambda f: log.info("imap refresh of folder %s failed: %s",
                                                         self.folder.id, f.getErrorMessage()))

    def refresh(self) -> defer.Deferred:
        """Ask the store what changed since the last look and queue it; fires when done.

        A call while a look is under way waits for one more look after it (the change
        it wants to see may have come too late for the running one)."""
        d: defer.Deferred = defer.Deferred()
        if self._refreshing is None:
            self._start_refresh([d])
        else:
            if self._again is None:
                self._again = []
            self._again.append(d)
        return d

    def _start_refresh(self, waiters: list[defer.Deferred]) -> None:
        def done(result: Any) -> None:
            self._refreshing = None
            for waiter in waiters:
                if isinstance(result, Failure):
                    waiter.errback(result)
                else:
                    waiter.callback(None)
            again, self._again = self._again, None
            if again and self.closed:
                for waiter in again:
                    waiter.callback(None)
            elif again:
                self._start_refresh(again)
        self._refreshing = defer.ensureDeferred(self._refresh())
        self._refreshing.addBoth(done)

    async def _refresh(self) -> None:
        if self.closed:
            return
        changes = await self.folder.changes(self.highest_modseq)
        if self.closed:
            return
        if changes.expired:
            await self._resync()
        else:
            self.apply(changes.changed, changes.deleted)
        if changes.highest_modseq > self.highest_modseq:
            self.highest_modseq = changes.highest_modseq
        if self.has_updates() and self.on_change is not None:
            self.on_change()

    def apply(self, changed: Iterable[Any], deleted: Iterable[int]) -> None:
        """Queue store changes: items (uid, modseq, flags) that changed or are new, uids deleted."""
        last = self.uids[-1] if self.uids else 0
        for item in changed:
            uid, modseq = item.uid, item.modseq or 0
            bits, keywords = split_flag_names(item.flags)
            i = bisect.bisect_left(self.uids, uid)
            if i < len(self.uids) and self.uids[i] == uid:
                if modseq < self._modseqs[i]:
                    continue  # we already know better
                if self._bits[i] != bits or self._keywords[i] != keywords:
                    self._bits[i] = bits & 0xFF
                    self._keywords[i] = keywords
                    if uid not in self._pending_expunge:
                        self._pending_flags.add(uid)
                self._modseqs[i] = max(self._modseqs[i], modseq)
            elif uid > last:
                self._pending_new[uid] = (modseq, bits & 0xFF, keywords)
                if uid >= self._uid_next:
                    self._uid_next = uid + 1
            if modseq > self.highest_modseq:
                self.highest_modseq = modseq
        for uid in deleted:
            if self._pending_new.pop(uid, None) is None and self.msn(uid) is not None:
                self._pending_expunge.add(uid)
                self._pending_flags.discard(uid)

    async def _resync(self) -> None:
        """The store no longer knows the changes since our modseq: compare everything."""
        uids, modseqs, bits, keywords = await full_listing(self.folder)
        present = set(uids)
        deleted = [uid for uid in self.uids if uid not in present]
        self.apply((ItemChange(u, m or 0, flag_names(b or 0, (k or "").split()))
                    for u, m, b, k in zip(uids, modseqs, bits, keywords)), deleted)

    # -- what the client is told
    def has_updates(self, expunge: bool = True) -> bool:
        return bool(self._pending_new or self._pending_flags or (expunge and self._pending_expunge))

    def take_updates(self, expunge: bool = True) -> list[bytes]:
        """The untagged responses owed to the client, applied to the map as they go."""
        out: list[bytes] = []
        if expunge and self._pending_expunge:
            out.extend(self._expunge())
        if self._pending_new:
            for uid in sorted(self._pending_new):
                modseq, bits, keywords = self._pending_new[uid]
                self.uids.append(uid)
                self._modseqs.append(modseq)
                self._bits.append(bits)
                self._keywords.append(keywords)
            first_new = min(self._pending_new)
            self._pending_new.clear()
            self._uid_next = max(self._uid_next, self.uids[-1] + 1)
            out.append(w.exists(self.exists))
            if self._claims is not None:
                top = self.uids[-1] + 1
                first = self._claims.claim(self.folder.id, self.uid_validity, top, take=not self.readonly)
                self.recent.add(max(first, first_new), top)
                if not rev2.enabled(self.enabled):
                    out.append(w.recent(self.recent.count(self.uids)))
        if self._pending_flags:
            condstore = "CONDSTORE" in self.enabled
            for msn in sorted(m for m in map(self.msn, self._pending_flags) if m is not None):
                i = msn - 1
                items = b"UID %d FLAGS %s" % (self.uids[i], w.flag_list(self.flags(i)))
                if condstore:
                    items += b" MODSEQ (%d)" % self._modseqs[i]
                out.append(w.fetch_line(msn, items))
            self._pending_flags.clear()
        return out

    def _expunge(self) -> list[bytes]:
        gone = self._pending_expunge
        self._pending_expunge = set()
        indexes = sorted((i for i in (bisect.bisect_left(self.uids, u) for u in gone)
                          if i < len(self.uids) and self.uids[i] in gone), reverse=True)
        listing_cache.CACHE.forget(self.folder.id, self.uid_validity, (self.uids[i] for i in indexes))
        if "QRESYNC" in self.enabled:
            out = [w.vanished(runs(sorted(self.uids[i] for i in indexes)))] if indexes else []
        else:
            # Highest first: every number sent is still valid when the client reads it.
            out = [w.expunge(i + 1) for i in indexes]
        self._remove(set(indexes))
        return out

    def _remove(self, indexes: set[int]) -> None:
        if not indexes:
            return
        if len(indexes) < 64:
            for i in sorted(indexes, reverse=True):
                del self.uids[i]
                del self._modseqs[i]
                del self._bits[i]
                del self._keywords[i]
            return
        keep = [i for i in range(len(self.uids)) if i not in indexes]
        self.uids = array("Q", (self.uids[i] for i in keep))
        self._modseqs = array("Q", (self._modseqs[i] for i in keep))
        self._bits = array("B", (self._bits[i] for i in keep))
        self._keywords = [self._keywords[i] for i in keep]

