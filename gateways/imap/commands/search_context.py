"""CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4): `UID SEARCH RETURN (... UPDATE)` and
`UID SORT RETURN (... UPDATE)` keep their result up to date, and CANCELUPDATE ends that.

A search with UPDATE is answered as ever, and then kept with the selected mailbox
(contexts end when it is closed). Whenever the mailbox's updates are written (after
every command, and at once under IDLE or NOTIFY), each context whose mailbox moved
(new, expunged or changed messages: its modseq, size or last uid differ from the last
look) runs its program again, as its own command would, and says what changed:

- with ALL or PARTIAL asked for, or nothing but UPDATE: `* ESEARCH (TAG "t") UID
  REMOVEFROM (...)` then `ADDTO (...)`; positions are 0 for SEARCH (unordered, §4.3)
  and the place in the sort order for SORT (§4.4), one `position uid` pair each;
- with only MIN, MAX or COUNT: the ESEARCH answer again with the new values.

Only the UID forms may ask for UPDATE (sequence numbers shift under every expunge);
`SEARCH RETURN (UPDATE)` is BAD. A session keeps at most `imap_max_search_contexts`;
beyond that the search is answered without updates and `* NO [NOUPDATE "t"]` says so.
"""
from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet import reactor

from gateways.imap import dispatch
from gateways.imap.commands.notify import when_free
from gateways.imap.dispatch import SELECTED, Bad, capability, command
from gateways.imap.grammar import context as grammar
from gateways.imap.grammar.writer import quoted
from shared.uidset import runs

if TYPE_CHECKING:
    from gateways.imap.connection import IMAPConnection

capability("CONTEXT=SEARCH")
capability("CONTEXT=SORT")

Rerun = Callable[[], Awaitable[list[int] | None]]


@dataclass
class SearchContext:
    tag: str
    ordered: bool  # SORT: positions count
    listed: bool  # ADDTO/REMOVEFROM, else the answer again (only MIN, MAX, COUNT asked)
    numbers: list[int]  # the uids of the result, in its order
    rerun: Rerun
    render: Callable[[list[int]], bytes]
    stamp: tuple[int, int, int] = (0, 0, 0)
    running: bool = False  # a look is under way

    def changes(self, numbers: list[int]) -> list[bytes]:
        """What to tell of the move from `self.numbers` to `numbers`."""
        before, after = self.numbers, numbers
        if before == after:
            return []
        if not self.listed:
            return [self.render(after)]
        gone, kept = set(before) - set(after), set(before) & set(after)
        out = []
        if gone:
            if self.ordered:
                pairs, removed = [], 0
                for position, uid in enumerate(before, 1):
                    if uid in gone:
                        pairs.append((position - removed, [(uid, uid)]))
                        removed += 1
            else:
                pairs = [(0, runs(sorted(gone)))]
            out.append(grammar.update_response(self.tag, True, "REMOVEFROM", pairs))
        added = [(position, uid) for position, uid in enumerate(after, 1) if uid not in kept]
        if added:
            if self.ordered:
                pairs = [(position, [(uid, uid)]) for position, uid in added]
            else:
                pairs = [(0, runs(sorted(uid for _, uid in added)))]
            out.append(grammar.update_response(self.tag, True, "ADDTO", pairs))
        return out


# The contexts of each selected mailbox: they go when it is closed.
CONTEXTS: "weakref.WeakKeyDictionary[Any, dict[str, SearchContext]]" = weakref.WeakKeyDictionary()


def _stamp(box: Any) -> tuple[int, int, int]:
    return (box.highest_modseq, box.exists, box.uids[-1] if box.uids else 0)


def wanted(conn: IMAPConnection, cmd: Any) -> bool:
    """Whether the SEARCH or SORT asks for updates (BAD where it may not)."""
    search = getattr(cmd.args, "search", cmd.args)
    if not search.returns or "UPDATE" not in search.returns:
        return False
    if not cmd.uid:
        raise Bad("RETURN (UPDATE) needs UID SEARCH or UID SORT.")
    return True


def keep(conn: IMAPConnection, cmd: Any, numbers: list[int], rerun: Rerun, render: Callable[[list[int]], bytes]) -> None:
    """Keep the answered result of `cmd` up to date from now on."""
    box = conn.selected
    if box is None:
        return
    contexts = CONTEXTS.setdefault(box, {})
    contexts.pop(cmd.tag, None)
    if len(contexts) >= conn.factory.max_search_contexts:
        conn.send(b"* NO [NOUPDATE " + quoted(cmd.tag) + b"] Too many searches kept up to date\r\n")
        return
    search = getattr(cmd.args, "search", cmd.args)
    returns = set(search.returns)
    listed = bool(returns & {"ALL", "PARTIAL"}) or not returns & {"MIN", "MAX", "COUNT"}
    contexts[cmd.tag] = SearchContext(cmd.tag, cmd.name == "SORT", listed, list(numbers), rerun, render,
                                      _stamp(box))


def _updates_written(conn: IMAPConnection, top_uid: int) -> None:
    box = conn.selected
    contexts = CONTEXTS.get(box)
    if not contexts:
        return
    stamp = _stamp(box)
    for context in list(contexts.values()):
        if context.stamp != stamp and not context.running:
            context.running = True
            reactor.callLater(0, when_free, conn, lambda context=context: _refresh(conn, box, context))


async def _refresh(conn: IMAPConnection, box: Any, context: SearchContext) -> None:
    try:
        while conn.selected is box and CONTEXTS.get(box, {}).get(context.tag) is context \
                and context.stamp != _stamp(box):
            stamp = _stamp(box)
            numbers = await context.rerun()
            if numbers is None or conn.selected is not box:
                return
            for line in context.changes(numbers):
                conn.send(line)
            context.numbers, context.stamp = numbers, stamp
    finally:
        context.running = False


dispatch.after_updates(_updates_written)


@command("CANCELUPDATE", SELECTED)
def cancel_update(conn: IMAPConnection, cmd: Any) -> None:
    contexts = CONTEXTS.get(conn.selected, {})
    unknown = [tag for tag in cmd.args.tags if tag not in contexts]
    if unknown:
        raise Bad(f"No search is kept up to date under the tag {unknown[0][:40]}.")
    for tag in cmd.args.tags:
        contexts.pop(tag, None)
