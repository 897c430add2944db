"""SEARCH and UID SEARCH (RFC 3501 §6.4.4), ESEARCH answers (RFC 4731), MODSEQ (RFC 7162 §3.1.5).

A program made only of flag, keyword, sequence-set, UID and MODSEQ keys is
answered from the session's view of the mailbox (`search_view`), which holds all
of those already. Any other program becomes one store restriction and one table query:
flags, keywords, sizes, internal dates, modseqs, sequence and UID sets compile
to SQL in the store; HEADER/BCC, SENT* and BODY/TEXT are restriction nodes the
store answers next to the data, reading each candidate's source in chunks there
(`server/mime/search.py`). Searching in the store rather than here means a body
search of a big folder moves a list of uids over the wire instead of every
message, and reads only the rows the rest of the program lets through.

Matching is the case-insensitive substring test of RFC 3501; FROM, TO, CC and BCC
look in the address list written in one normal form, as Dovecot does
(`server/mime/address_search.py`), HEADER in the field's decoded text. Strings arrive
decoded from the command's CHARSET (UTF-8 or US-ASCII; others are refused by
the grammar with BADCHARSET). \\Recent is the session's own (recent.py): RECENT,
NEW and OLD become a uid set of the messages it claimed. Dates of BEFORE/ON/SINCE are
days in UTC, the zone INTERNALDATE is written in; SENT* take the Date header's
own day, disregarding its time and zone.

Only messages the session has been told about are answered; mail that arrived
since gets its EXISTS first (after the SEARCH response, with the tagged OK) and
shows in the next search.
"""
from __future__ import annotations

import calendar
import datetime
from typing import TYPE_CHECKING, Any

from gateways.imap import rev2, search_view
from gateways.imap.commands import search_context
from gateways.imap.dispatch import SELECTED, capability, command
from gateways.imap.grammar import commands as c
from gateways.imap.grammar import writer as w
from shared.uidset import merge

if TYPE_CHECKING:
    from gateways.imap.connection import IMAPConnection

capability("ESEARCH")
capability("SEARCHRES")

MATCH_ALL: dict[str, Any] = {"and": []}
MATCH_NONE: dict[str, Any] = {"or": []}
_RELATIONS = {"BEFORE": "before", "ON": "on", "SINCE": "since"}
DAY = 86400


@command("SEARCH", SELECTED, uid=True, expunge_after=False)
async def search(conn: IMAPConnection, cmd: Any) -> None:
    args: c.Search = cmd.args
    if uses_modseq(args):
        conn.enable_condstore()  # RFC 7162 §3.1: SEARCH MODSEQ is a CONDSTORE-enabling command
    updating = search_context.wanted(conn, cmd)
    box = conn.selected
    saving = args.returns is not None and "SAVE" in args.returns
    try:
        found = await matching(conn, args, cmd.uid)
    except BaseException:
        if saving:
            box.saved_uids = []  # RFC 5182 §2.1: what a failed search leaves
        raise
    if found is not None and saving:
        box.saved_uids = saved_result(args.returns, found[0] if cmd.uid else [box.uid(n) for n in found[0]])
    if found is not None and not only_saved(args.returns):
        _answer(conn, cmd, *found)
        if updating:
            search_context.keep(conn, cmd, found[0], lambda: _uids(matching(conn, args, True)),
                                lambda numbers: w.esearch_response(
                                    cmd.tag, True, esearch_results(args.returns, numbers, None, args.partial)))


def saved_result(returns: tuple[str, ...], uids: list[int]) -> list[int]:
    """What `RETURN (SAVE ...)` keeps for `$` (RFC 5182 §2.4) of a result's uids in its
    order: all of them, or only the MIN and/or MAX (first and last in that order) when
    those are all that is asked for besides SAVE."""
    asked = set(returns)
    if uids and asked & {"MIN", "MAX"} and not asked & {"ALL", "COUNT", "PARTIAL"}:
        return sorted(set(([uids[0]] if "MIN" in asked else []) + ([uids[-1]] if "MAX" in asked else [])))
    return sorted(uids)


def only_saved(returns: tuple[str, ...] | None) -> bool:
    """`RETURN (SAVE)` asks for no answer, only for `$` (RFC 5182 §2.4)."""
    return returns is not None and "SAVE" in returns and set(returns) <= {"SAVE", "UPDATE", "CONTEXT"}


async def _uids(found: Any) -> list[int] | None:
    result = await found
    return None if result is None else result[0]


def uses_modseq(args: c.Search) -> bool:
    return any(isinstance(k, c.SearchModseq) for k in c.leaf_keys(args.criteria))


async def matching(conn: IMAPConnection, args: c.Search, uid: bool) -> tuple[list[int], list[int] | None] | None:
    """(uids or sequence numbers, in order, of the messages the program matches; their
    modseqs when it uses MODSEQ), None when the mailbox was closed meanwhile."""
    box = conn.selected
    with_modseq = uses_modseq(args)
    if search_view.answerable(args.criteria):
        indexes = search_view.matching_indexes(box, args.criteria)
        numbers = [box.uids[i] for i in indexes] if uid else [i + 1 for i in indexes]
        return numbers, ([box.modseq(i) for i in indexes] if with_modseq else None)
    restriction = Restriction(box).of(args.criteria)
    columns = ["uid", "modseq"] if with_modseq else ["uid"]
    if restriction == MATCH_NONE or not box.exists:
        table: dict[str, list[int]] = {"uid": [], "modseq": []}
    else:
        bounded = {"and": [{"cmp": ("uid", "le", box.uids[-1])}, restriction]}
        _, table = await box.folder.query(columns, bounded, sort=[("uid", False)])
    if conn.selected is not box:
        return None
    numbers: list[int] = []
    found: list[int] = []
    modseqs = table.get("modseq") or [0] * len(table["uid"])
    for message_uid, modseq in zip(table["uid"], modseqs):
        msn = box.msn(message_uid)
        if msn is None:
            continue  # announced later, or already expunged here
        numbers.append(message_uid if uid else msn)
        found.append(modseq or 0)
    return numbers, (found if with_modseq else None)


def _answer(conn: IMAPConnection, cmd: Any, numbers: list[int], modseqs: list[int] | None) -> None:
    """`modseqs` (those of `numbers`, in order) when the search used MODSEQ."""
    returns = cmd.args.returns
    modseq_result = None
    if modseqs and numbers:
        if returns is None or not returns or {"ALL", "COUNT"} & set(returns):
            modseq_result = max(modseqs)
        else:
            # RFC 4731 §3.2: with only MIN and/or MAX, the highest modseq of the
            # messages actually returned.
            picked = ([modseqs[0]] if "MIN" in returns else []) + ([modseqs[-1]] if "MAX" in returns else [])
            modseq_result = max(picked)
    if returns is None and not rev2.enabled(conn.enabled):
        conn.send(w.search_response(numbers, modseq_result))
        return
    if returns is None:
        returns = ("ALL",)  # RFC 9051 §6.4.4: IMAP4rev2 answers SEARCH with ESEARCH
    results = esearch_results(returns, numbers, modseq_result, cmd.args.partial)
    conn.send(w.esearch_response(cmd.tag, cmd.uid, results))


def partial_window(numbers: list[int], partial: tuple[int, int]) -> list[int]:
    """The results a PARTIAL range picks (RFC 9394 §3.1): 1:100 the first hundred,
    -1:-100 the last hundred, in the order of `numbers`."""
    first, last = partial
    if first > 0:
        return numbers[first - 1:last]
    end = len(numbers) + first + 1
    return numbers[max(0, len(numbers) + last):max(0, end)]


def esearch_results(returns: tuple[str, ...], numbers: list[int], modseq: int | None,
                    partial: tuple[int, int] | None = None, *, in_order: bool = False) -> list[tuple[str, Any]]:
    """The RETURN items of ESEARCH (RFC 4731 §3.1) and ESORT (RFC 5267 §3.1), in the
    order of `returns`: MIN, MAX and ALL only when something matched; COUNT and PARTIAL
    always. MIN and MAX are the first and last of `numbers`. ALL and PARTIAL are merged
    ranges for SEARCH, or with `in_order` (SORT) the numbers as they are, keeping the
    sort order."""
    out: list[tuple[str, Any]] = []
    for name in returns:
        if name == "COUNT":
            out.append(("COUNT", len(numbers)))
        elif name == "PARTIAL" and partial is not None:
            picked = partial_window(numbers, partial)
            out.append(("PARTIAL", (partial, picked if in_order else merge((n, n) for n in picked))))
        elif not numbers:
            continue
        elif name == "MIN":
            out.append(("MIN", numbers[0]))
        elif name == "MAX":
            out.append(("MAX", numbers[-1]))
        elif name == "ALL":
            out.append(("ALL", numbers if in_order else merge((n, n) for n in numbers)))
    if modseq is not None:
        out.append(("MODSEQ", modseq))
    return out


def _midnight(day: datetime.date) -> int:
    return calendar.timegm(day.timetuple())


class Restriction:
    """A search key tree -> the store's restriction dict (shared/codec.py)."""

    def __init__(self, box: Any) -> None:
        self.box = box

    def of(self, key: Any) -> dict[str, Any]:
        if isinstance(key, c.SearchAnd):
            parts = [self.of(k) for k in key.keys]
            if MATCH_NONE in parts:
                return MATCH_NONE
            parts = [p for p in parts if p != MATCH_ALL]
            return parts[0] if len(parts) == 1 else {"and": parts}
        if isinstance(key, c.SearchOr):
            left, right = self.of(key.left), self.of(key.right)
            if MATCH_ALL in (left, right):
                return MATCH_ALL
            return right if left == MATCH_NONE else left if right == MATCH_NONE else {"or": [left, right]}
        if isinstance(key, c.SearchNot):
            inner = self.of(key.key)
            return MATCH_NONE if inner == MATCH_ALL else MATCH_ALL if inner == MATCH_NONE else {"not": inner}
        if isinstance(key, c.SearchAll):
            return MATCH_ALL
        if isinstance(key, c.SearchFlag):
            if key.flag == "\\Recent":  # the session's own claims (recent.py)
                ranges = self.box.recent.index_ranges(self.box.uids)
                if not ranges:
                    return MATCH_NONE if key.present else MATCH_ALL
                recent = {"uids": self.box.store_uids(ranges)}
                return recent if key.present else {"not": recent}
            return {"flag": (key.flag, key.present)}
        if isinstance(key, c.SearchSequence):
            ranges = self.box.index_ranges(key.sequence, uid=key.uid)
            return {"uids": self.box.store_uids(ranges)} if ranges else MATCH_NONE
        if isinstance(key, c.SearchSize):
            return {"cmp": ("size", "gt" if key.relation == "LARGER" else "lt", key.size)}
        if isinstance(key, c.SearchDate):
            return self._date(key)
        if isinstance(key, c.SearchHeader):
            return {"address" if key.address else "header": (key.name, key.value)}
        if isinstance(key, c.SearchText):
            return {"text": (key.where.lower(), key.value)}
        if isinstance(key, c.SearchModseq):
            return {"cmp": ("modseq", "ge", key.modseq)}
        raise TypeError(f"unknown search key {key!r}")

    @staticmethod
    def _date(key: c.SearchDate) -> dict[str, Any]:
        if key.field == "SENT":
            return {"sent": (_RELATIONS[key.relation], key.date.isoformat())}
        start = _midnight(key.date)
        column = "savedDate" if key.field == "SAVED" else "internalDate"
        if key.relation == "BEFORE":
            return {"cmp": (column, "lt", start)}
        if key.relation == "SINCE":
            return {"cmp": (column, "ge", start)}
        return {"and": [{"cmp": (column, "ge", start)},
                        {"cmp": (column, "lt", start + DAY)}]}
