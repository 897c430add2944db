"""SORT and UID SORT (RFC 5256 §3), ESORT (RFC 5267 §3), SORT=DISPLAY (RFC 5957),
THREAD and UID THREAD with ORDEREDSUBJECT and REFERENCES (RFC 5256 §3).

The search program becomes the same store restriction SEARCH uses (search.py); the
sort is the store's ORDER BY on columns made when each message was stored
(server/mime/sort_keys.py: base subject, first address's mailbox or display name
in the i;unicode-casemap form, sent date), ties in uid order, which is sequence
order. THREAD reads the thread columns of the matching messages in one query and
builds the threads here (thread_tree.py); no message is read for either.

As with SEARCH, only messages the session has been told about are answered. A
SORT names at most imap_max_sort_criteria keys, and a SORT or THREAD orders at most
imap_max_sort_messages messages (NO [LIMIT] beyond); the store's part of the work is
under its worker time budget, as a search's is.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import threads

from gateways.imap.commands import search_context
from gateways.imap.commands.search import MATCH_ALL, MATCH_NONE, Restriction, esearch_results, only_saved, saved_result
from gateways.imap.dispatch import SELECTED, No, capability, command
from gateways.imap.grammar import commands as c
from gateways.imap.grammar import sort_thread as g
from gateways.imap.thread_tree import ThreadColumns, ordered_subject, references

if TYPE_CHECKING:
    from gateways.imap.connection import IMAPConnection

capability("SORT")
capability("SORT=DISPLAY")
capability("ESORT")
capability("THREAD=ORDEREDSUBJECT")
capability("THREAD=REFERENCES")

# Sort key -> store column (server/storage/schema.py).
SORT_COLUMNS = {
    "ARRIVAL": "internalDate", "CC": "sortCc", "DATE": "sentDate", "FROM": "sortFrom", "SIZE": "size",
    "SUBJECT": "sortSubject", "TO": "sortTo", "DISPLAYFROM": "displayFrom", "DISPLAYTO": "displayTo",
}
# ESORT's items in Dovecot's order, whatever the request's (RFC 5267 §3.1 gives none).
_RESULT_ORDER = ("MIN", "MAX", "ALL", "PARTIAL", "COUNT")
THREAD_COLUMNS = ["uid", "sentDate", "sortSubject", "subjectReply", "threadMessageId", "threadParents"]


async def _matching(conn: IMAPConnection, search: c.Search, columns: list[str],
                    sort: list[tuple[str, bool]]) -> tuple[Any, dict[str, list[Any]]] | None:
    """(box, table) of the messages the program matches, in `sort` order then uid order,
    with `columns`; None when the mailbox was closed meanwhile. NO [LIMIT] when more
    than imap_max_sort_messages match: the store sends one row more than that at most."""
    box = conn.selected
    restriction = Restriction(box).of(search.criteria)
    if restriction == MATCH_NONE or not box.exists:
        return box, {name: [] for name in columns}
    last = {"cmp": ("uid", "le", box.uids[-1])}
    bounded = last if restriction == MATCH_ALL else {"and": [last, restriction]}
    most = conn.factory.max_sort_messages
    _, table = await box.folder.query(columns, bounded, sort=sort, limit=most + 1)
    if conn.selected is not box:
        return None
    if len(table["uid"]) > most:
        raise No(f"Too many messages to sort or thread (limit {most}).", "LIMIT")
    return box, table


def _uses_modseq(search: c.Search) -> bool:
    return any(isinstance(k, c.SearchModseq) for k in c.leaf_keys(search.criteria))


@command("SORT", SELECTED, uid=True, expunge_after=False)
async def sort(conn: IMAPConnection, cmd: Any) -> None:
    search = cmd.args.search
    if _uses_modseq(search):
        conn.enable_condstore()  # RFC 7162 §3.1: a CONDSTORE-enabling command
    updating = search_context.wanted(conn, cmd)
    box = conn.selected
    saving = search.returns is not None and "SAVE" in search.returns
    try:
        found = await sorted_numbers(conn, cmd.args, cmd.uid)
    except BaseException:
        if saving:
            box.saved_uids = []  # RFC 5182 §2.1: what a failed search leaves
        raise
    if found is None:
        return
    numbers, modseq = found
    if saving:
        box.saved_uids = saved_result(search.returns, numbers if cmd.uid else [box.uid(n) for n in numbers])
        if only_saved(search.returns):
            return
    if search.returns is None:
        conn.send(g.sort_response(numbers, modseq))
        return
    conn.send(g.esort_response(cmd.tag, cmd.uid, _esort_results(search, numbers, modseq)))
    if updating:
        search_context.keep(conn, cmd, numbers, lambda: _uids(sorted_numbers(conn, cmd.args, True)),
                            lambda numbers: g.esort_response(cmd.tag, True, _esort_results(search, numbers, None)))


async def _uids(found: Any) -> list[int] | None:
    result = await found
    return None if result is None else result[0]


async def sorted_numbers(conn: IMAPConnection, args: g.Sort, uid: bool) -> tuple[list[int], int | None] | None:
    """(uids or sequence numbers in sort order, the highest modseq among them when the
    program uses MODSEQ), None when the mailbox was closed meanwhile."""
    if len(args.criteria) > conn.factory.max_sort_criteria:
        raise No(f"Too many sort criteria (limit {conn.factory.max_sort_criteria}).", "LIMIT")
    search = args.search
    uses_modseq = _uses_modseq(search)
    order = [(SORT_COLUMNS[k.key], k.reverse) for k in args.criteria]
    columns = ["uid", "modseq"] if uses_modseq else ["uid"]
    found = await _matching(conn, search, columns, order)
    if found is None:
        return None
    box, table = found
    numbers: list[int] = []
    modseq = 0
    for i, message_uid in enumerate(table["uid"]):
        msn = box.msn(message_uid)
        if msn is None:
            continue  # announced later, or already expunged here
        numbers.append(message_uid if uid else msn)
        if uses_modseq:
            modseq = max(modseq, table["modseq"][i] or 0)
    return numbers, (modseq if uses_modseq and numbers else None)


def _esort_results(search: c.Search, numbers: list[int], modseq: int | None) -> list[tuple[str, Any]]:
    returns = tuple(n for n in _RESULT_ORDER if n in (search.returns or ()))
    return esearch_results(returns, numbers, modseq, search.partial, in_order=True)


@command("THREAD", SELECTED, uid=True, expunge_after=False)
async def thread(conn: IMAPConnection, cmd: Any) -> None:
    args: g.Thread = cmd.args
    if _uses_modseq(args.search):
        conn.enable_condstore()
    found = await _matching(conn, args.search, THREAD_COLUMNS, [("uid", False)])
    if found is None:
        return
    box, table = found
    build = references if args.algorithm == "REFERENCES" else ordered_subject
    columns = _thread_columns(box, table, cmd.uid)
    # A big mailbox takes a while to thread: not on the reactor thread.
    answer = await threads.deferToThread(lambda: g.thread_response(build(columns)))
    if conn.selected is box:
        conn.send(answer)


def _thread_columns(box: Any, table: dict[str, list[Any]], uid: bool) -> ThreadColumns:
    """The table's messages the session knows of, numbered as the answer needs."""
    uids = table["uid"]
    if len(uids) == box.exists and uids == list(box.uids):  # the whole mailbox, as the session knows it
        msns: list[int | None] = list(range(1, len(uids) + 1))
        kept = range(len(uids))
    else:
        msns = [box.msn(u) for u in uids]
        kept = [i for i, msn in enumerate(msns) if msn is not None]  # type: ignore[assignment]
    numbers = uids if uid else msns

    def column(name: str, empty: Any) -> list[Any]:
        values = table[name]
        if len(kept) == len(values) and None not in values:
            return values
        return [values[i] or empty for i in kept]
    return ThreadColumns([numbers[i] for i in kept], column("sentDate", 0), column("sortSubject", ""),
                         column("subjectReply", False), column("threadMessageId", ""), column("threadParents", ""))
