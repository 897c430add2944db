"""Modified UTF-7 mailbox names and sequence sets, without a network."""
from __future__ import annotations

import time

import pytest

from gateways.imap.grammar import ParseError, SequenceSet, parse_command
from gateways.imap.grammar.mutf7 import MUTF7Error, decode, encode
from gateways.imap.grammar.sequence import format_numbers, format_ranges
from shared.uidset import merge

# --- modified UTF-7 (RFC 3501 §5.1.3) ------------------------------------------------

VECTORS = [
    ("~peter/mail/台北/日本語", b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"),  # RFC 3501 §5.1.3
    ("INBOX", b"INBOX"),
    ("&", b"&-"),
    ("Tom & Jerry", b"Tom &- Jerry"),
    ("Entwürfe", b"Entw&APw-rfe"),
    ("Gelöschte Elemente", b"Gel&APY-schte Elemente"),
    ("Брошенные", b"&BBEEQAQ+BEgENQQ9BD0ESwQ1-"),
    ("😀", b"&2D3eAA-"),
    ("a\u00e9&b", b"a&AOk-&-b"),
    ("", b""),
]


@pytest.mark.parametrize("text,wire", VECTORS)
def test_mutf7_vectors(text, wire):
    assert encode(text) == wire
    assert decode(wire) == text


def test_mutf7_agrees_with_python_utf7_on_shifted_runs():
    # RFC 2152 UTF-7 differs only in "+" for "&" and "/" for "," inside a shift
    for text in ("台北", "日本語", "ü", "\u20ac", "😀", "Брошенные"):
        utf7 = text.encode("utf-7")
        assert encode(text) == b"&" + utf7[1:].replace(b"/", b",")


@pytest.mark.parametrize("bad", [
    b"&", b"&U,BT", b"&U,BTFw-&ZeVnLIqe-",  # unterminated, adjacent shifts
    b"&AGE-",            # "a" hidden in base64
    b"&U,BTFx-",         # non-zero padding bits
    b"&2D0-",            # a lone high surrogate
    b"&Jjo!-", b"&U/BTFw-",  # characters outside modified base64
    b"Entw\xc3\xbcrfe",  # raw 8-bit
    b"a\x00b", b"a\tb", b"a\x7fb",
    b"&AAA-",            # a NUL hidden in base64
    b"&AOkA-",           # bits left over that make a partial character
])
def test_mutf7_strict_decoding(bad):
    with pytest.raises(MUTF7Error):
        decode(bad)


def test_mutf7_errors_become_parse_errors():
    with pytest.raises(ParseError) as info:
        parse_command(b"t1 SELECT &AGE-")
    assert info.value.tag == "t1"


def test_mutf7_round_trip_of_many_names():
    import random
    rnd = random.Random(7)
    alphabet = "abcXYZ &/-~äöüßéñ日本語台北😀\u0430\u0431"
    for _ in range(2000):
        name = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 12)))
        assert decode(encode(name)) == name


# --- sequence sets ---------------------------------------------------------------------

def parsed(text: str) -> SequenceSet:
    return parse_command(b"t UID FETCH " + text.encode() + b" UID").args.sequence


def test_sequence_set_resolving():
    s = parsed("1:3,7,9:*")
    assert s.has_star
    assert s.resolve(20) == [(1, 3), (7, 7), (9, 20)]
    assert s.resolve(5) == [(1, 3), (5, 9)]  # "9:*" with * = 5 is 5:9 (RFC 3501 §6.4.8)
    assert s.clipped(5) == [(1, 3), (5, 5)]
    assert parsed("5:2").resolve(10) == [(2, 5)]
    assert parsed("*").resolve(0) == []
    assert parsed("1:*").resolve(0) == [(1, 1)]
    assert parsed("1:*").clipped(0) == []
    assert parsed("3,1,2,2:4").resolve(10) == [(1, 4)]
    assert bytes(parsed("1:3,7,9:*")) == b"1:3,7,9:*"
    assert str(parsed("4:2")) == "4:2"


def test_sequence_set_membership_and_counting():
    s = parsed("2:4,10,20:*")
    assert [n for n in range(1, 30) if s.contains(n, 25)] == [2, 3, 4, 10] + list(range(20, 26))
    assert s.count(25) == 3 + 1 + 6
    assert list(s.iter_numbers(21)) == [2, 3, 4, 10, 20, 21]
    assert list(s.iter_ranges(21)) == [(2, 4), (10, 10), (20, 21)]
    assert SequenceSet.of([5, 1, 2, 3, 9, 9]).ranges == ((1, 3), (5, 5), (9, 9))
    assert SequenceSet.from_ranges([(5, 6), (1, 4)]).ranges == ((1, 6),)
    with pytest.raises(ValueError):
        SequenceSet([])


def test_sequence_sets_at_100000_messages_stay_ranges():
    big = 100_000
    started = time.process_time()
    s = parsed("1:*")
    assert s.resolve(big) == [(1, big)]
    assert s.count(big) == big
    assert s.contains(big, big) and not s.contains(big + 1, big)
    iterator = s.iter_numbers(big)
    assert next(iterator) == 1  # lazy: no list of 100,000 numbers is built
    every_other = ",".join(str(n) for n in range(1, big, 2))
    odd = parse_command(b"t UID FETCH " + every_other.encode() + b" UID").args.sequence
    resolved = odd.resolve(big)
    assert len(resolved) == big // 2
    assert all(odd.contains(n, big) == (n % 2 == 1) for n in range(1, 2001))
    assert format_ranges(resolved) == every_other.encode()
    assert time.process_time() - started < 2.0


def test_compact_formatting():
    assert format_numbers([1, 2, 3, 5, 7, 8]) == b"1:3,5,7:8"
    assert format_numbers([8, 7, 1, 2, 3]) == b"1:3,7:8"
    assert format_numbers([]) == b""
    # COPYUID keeps the pairing order of source and destination
    assert format_numbers([4, 5, 6, 1, 2], keep_order=True) == b"4:6,1:2"
    assert format_numbers([10, 12, 13], keep_order=True) == b"10,12:13"
    assert format_ranges(merge([(5, 9), (1, 2), (3, 3), (20, 20)])) == b"1:3,5:9,20"
    assert format_numbers(range(1, 100_001)) == b"1:100000"
