"""CANCELUPDATE and the update responses of CONTEXT=SEARCH / CONTEXT=SORT (RFC 5267 §4,
§5). Importing this module adds CANCELUPDATE to the parser.

    cancelupdate = "CANCELUPDATE" 1*(SP quoted)
    ret-data     =/ ("ADDTO" SP "(" context-position SP sequence-set
                     *(SP context-position SP sequence-set) ")") /
                    ("REMOVEFROM" SP "(" context-position SP sequence-set ...")")
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateways.imap.grammar import parser
from gateways.imap.grammar.reader import Reader
from gateways.imap.grammar.sequence import format_ranges
from gateways.imap.grammar.writer import CRLF, quoted

MAX_TAGS = 100


@dataclass(frozen=True)
class CancelUpdate:
    """The tags of the searches whose updates stop."""
    tags: tuple[str, ...]


def _cancel_update(r: Reader, uid: bool) -> CancelUpdate:
    tags = []
    while not r.at_end() or not tags:
        r.sp()
        tags.append(r.text(r.quoted()))
        if len(tags) > MAX_TAGS:
            raise r.fail("too many tags")
    return CancelUpdate(tuple(tags))


def update_response(tag: str, uid: bool, name: str,
                    positions: Iterable[tuple[int, Iterable[tuple[int, int]]]]) -> bytes:
    """`* ESEARCH (TAG "t") UID ADDTO (0 5:7)`, or REMOVEFROM; `positions` pairs a
    position (0: none, an unordered SEARCH) with resolved (low, high) ranges."""
    pairs = b" ".join(b"%d %s" % (position, format_ranges(ranges)) for position, ranges in positions)
    return (b"* ESEARCH (TAG " + quoted(tag) + b")" + (b" UID" if uid else b"")
            + b" " + name.encode("ascii") + b" (" + pairs + b")" + CRLF)


parser.COMMANDS[b"CANCELUPDATE"] = _cancel_update
