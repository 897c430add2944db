"""SORT (RFC 5256 §4, ESORT RFC 5267 §3, SORT=DISPLAY RFC 5957) and THREAD (RFC 5256 §4):
their arguments, parsing and responses. Importing this module adds both commands to
the parser.

    sort   = ["UID" SP] "SORT" [SP "RETURN" SP return-opts] SP sort-criteria SP search-criteria
    thread = ["UID" SP] "THREAD" SP thread-alg SP search-criteria
    search-criteria = charset 1*(SP search-key)
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gateways.imap.grammar import commands as c
from gateways.imap.grammar import parser
from gateways.imap.grammar.reader import Reader
from gateways.imap.grammar.writer import CRLF, quoted
from gateways.imap.thread_tree import Forest

SORT_KEYS = frozenset({"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"})
THREAD_ALGORITHMS = ("ORDEREDSUBJECT", "REFERENCES")


@dataclass(frozen=True)
class SortCriterion:
    key: str
    reverse: bool = False


@dataclass(frozen=True)
class Sort:
    """`criteria` the sort keys in order; `search` the search program, `returns` and
    `partial` as for SEARCH (None: the plain `* SORT` answer)."""
    criteria: tuple[SortCriterion, ...]
    search: c.Search


@dataclass(frozen=True)
class Thread:
    algorithm: str
    search: c.Search


def _sort(r: Reader, uid: bool) -> Sort:
    r.sp()
    returns, partial = None, None
    if r.maybe_word(b"RETURN"):
        r.sp()
        returns, partial = parser.return_options(r)
        r.sp()

    def criterion() -> SortCriterion:
        name = r.atom("a sort key").upper().decode("ascii")
        reverse = name == "REVERSE"
        if reverse:
            r.sp()
            name = r.atom("a sort key").upper().decode("ascii")
        if name not in SORT_KEYS:
            raise r.fail(f"unknown sort key {name[:40]}")
        return SortCriterion(name, reverse)

    criteria = tuple(r.paren_list(criterion, empty_ok=False))
    r.sp()
    charset, keys = parser.search_criteria(r, charset_required=True)
    return Sort(criteria, c.Search(keys, charset, returns, partial))


def _thread(r: Reader, uid: bool) -> Thread:
    r.sp()
    algorithm = r.atom("a thread algorithm").upper().decode("ascii")
    if algorithm not in THREAD_ALGORITHMS:
        raise r.fail(f"unknown thread algorithm {algorithm[:40]}")
    r.sp()
    charset, keys = parser.search_criteria(r, charset_required=True)
    return Thread(algorithm, c.Search(keys, charset))


parser.COMMANDS.update({b"SORT": _sort, b"THREAD": _thread})
parser.UID_COMMANDS = parser.UID_COMMANDS | {b"SORT", b"THREAD"}


# --- responses -------------------------------------------------------------------

def sort_response(numbers: Iterable[int], modseq: int | None = None) -> bytes:
    """`* SORT 5 3 4` (RFC 5256 §4), with the `(MODSEQ n)` of RFC 7162 §3.1.5."""
    out = b"* SORT" + b"".join(b" %d" % n for n in numbers)
    if modseq is not None:
        out += b" (MODSEQ %d)" % modseq
    return out + CRLF


def ordered_set(numbers: Sequence[int]) -> bytes:
    """A sequence-set that keeps the order of `numbers` (ESORT ALL and PARTIAL,
    RFC 5267 §3.1): only runs that ascend by one become ranges."""
    parts: list[bytes] = []
    i = 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        parts.append(b"%d:%d" % (numbers[i], numbers[j]) if j > i else b"%d" % numbers[i])
        i = j + 1
    return b",".join(parts)


def esort_response(tag: str, uid: bool, results: Iterable[tuple[str, object]]) -> bytes:
    """`* ESEARCH (TAG "a") UID MIN 3 ALL 5,3:4 PARTIAL (1:10 5,3)`: `results` pairs an
    option with an int, the ordered numbers (ALL) or (range, numbers) (PARTIAL)."""
    out = [b"* ESEARCH (TAG " + quoted(tag) + b")"]
    if uid:
        out.append(b"UID")
    for name, value in results:
        if name == "ALL":
            out.append(b"ALL " + ordered_set(value))  # type: ignore[arg-type]
        elif name == "PARTIAL":
            (first, last), numbers = value  # type: ignore[misc]
            shown = ordered_set(numbers) or b"NIL"
            out.append(b"PARTIAL (%d:%d %s)" % (first, last, shown))
        else:
            out.append(name.encode("ascii") + b" %d" % value)  # type: ignore[operator]
    return b" ".join(out) + CRLF


def thread_response(forest: Forest) -> bytes:
    """`* THREAD (2)(3 6 (4 23)(44 7 96))` (RFC 5256 §4) from a gateways.imap.thread_tree forest."""
    out: list[str] = ["* THREAD "]
    children = forest.children
    labels = list(map(str, forest.numbers))  # "0" for a dummy
    for root in forest.roots:
        _thread_list(root, children, labels, out)
    return "".join(out).rstrip(" ").encode("ascii") + CRLF


def _thread_list(root: int, children: list[list[int]], labels: list[str], out: list[str]) -> None:
    """One "(...)": a chain of single children as numbers, then each of several children
    as a nested list ("0" labels a dummy). Iterative: a chain can be thousands deep."""
    stack = [root]
    while stack:
        node = stack.pop()
        if node < 0:
            out.append(")")
            continue
        numbers: list[str] = []
        while True:
            if labels[node] != "0":
                numbers.append(labels[node])
            kids = children[node]
            if len(kids) != 1:
                break
            node = kids[0]
        out.append("(" + " ".join(numbers) + (" " if kids and numbers else ""))
        stack.append(-1)
        stack.extend(reversed(kids))
