"""Hostile input to the command parser: random bytes and mutated valid commands.

Whatever arrives, `parse_command` returns a Command or raises ParseError; nothing
else may escape, and no input takes long. The generator is seeded so a failure
names the input that caused it and reproduces.
"""
from __future__ import annotations

import random
import time

from gateways.imap.grammar import ParseError, parse_command
from gateways.imap.grammar.commands import Command

VALID = [
    b"a1 CAPABILITY", b"a NOOP", b"a LOGOUT", b"a STARTTLS", b"a NAMESPACE", b"a IDLE",
    b"a LOGIN joe {6+}\r\nsecret", b'a LOGIN "joe" "se\\"cret"',
    b"a AUTHENTICATE PLAIN AGpvZQBzZWNyZXQ=", b"a AUTHENTICATE PLAIN =",
    b"a ENABLE CONDSTORE QRESYNC", b'a ID ("name" "x" "version" NIL)', b"a ID NIL",
    b"a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211 (1,3:5 41,43:45)))",
    b"a EXAMINE Entw&APw-rfe (CONDSTORE)", b"a CREATE Drafts (USE (\\Drafts))",
    b"a DELETE x", b"a RENAME a b", b"a SUBSCRIBE x", b"a UNSUBSCRIBE x",
    b'a LIST (SUBSCRIBED RECURSIVEMATCH) "" ("INBOX" "%") RETURN (CHILDREN STATUS (MESSAGES))',
    b'a LIST "" *', b'a LSUB "" %', b"a STATUS INBOX (MESSAGES UIDNEXT HIGHESTMODSEQ)",
    b'a APPEND x (\\Seen) " 5-Jan-2024 10:00:00 +0100" {5}\r\nhello',
    b"a APPEND x ~{3}\r\na\x00b", b"a CHECK", b"a CLOSE", b"a UNSELECT", b"a EXPUNGE",
    b"a UID EXPUNGE 1:5",
    b'a SEARCH RETURN (MIN COUNT) CHARSET UTF-8 OR (FROM joe UNSEEN) NOT 1:5 HEADER X "y" '
    b'SINCE 1-Feb-2024 MODSEQ "/flags/\\\\Seen" all 5 LARGER 10 UID 3:* KEYWORD $x',
    b"a UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (From To)]<0.100> BINARY[1.2]<5.6> "
    b"BODY[1.2.MIME] BINARY.SIZE[1]) (CHANGEDSINCE 5 VANISHED)",
    b"a FETCH 1:3 FULL", b"a STORE 1 (UNCHANGEDSINCE 5) +FLAGS.SILENT (\\Seen $Junk)",
    b"a UID COPY 1:* Trash", b"a MOVE 1,2 Archive",
]

ALPHABET = b' ()[]<>{}*%"\\+-~.:,0123456789\r\n\x00\x7f\xffNILaAzZ&'


def _check(raw: bytes) -> None:
    try:
        result = parse_command(raw)
    except ParseError as e:
        assert isinstance(e.text, str) and e.text
        assert e.tag is None or isinstance(e.tag, str)
        return
    except Exception as e:  # pragma: no cover - the failure message is the point
        raise AssertionError(f"{type(e).__name__}: {e} for input {raw!r}") from e
    assert isinstance(result, Command), raw


def _mutate(rnd: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.randrange(6)
        pos = rnd.randint(0, len(b))
        if op == 0 and b:  # flip a byte
            b[min(pos, len(b) - 1)] = rnd.randrange(256)
        elif op == 1:  # insert interesting bytes
            b[pos:pos] = bytes(rnd.choice(ALPHABET) for _ in range(rnd.randint(1, 5)))
        elif op == 2:  # delete a run
            del b[pos:pos + rnd.randint(1, 8)]
        elif op == 3:  # truncate
            del b[pos:]
        elif op == 4:  # duplicate a run
            b[pos:pos] = b[pos:pos + rnd.randint(1, 12)]
        else:  # swap in a hostile token
            b[pos:pos] = rnd.choice([b"{-1}\r\n", b"{4294967296}\r\n", b"~{2}\r\n",
                                     b"(" * 200, b"NOT " * 100, b"9" * 40, b"*:*",
                                     b'"\\', b"&AGE-", b"\r\n", b"{3+}\r\n"])
    return bytes(b)


def test_valid_corpus_parses():
    for raw in VALID:
        assert isinstance(parse_command(raw), Command), raw


def test_random_bytes():
    rnd = random.Random(20260611)
    for _ in range(20_000):
        n = rnd.randint(0, 60)
        if rnd.random() < 0.5:
            raw = bytes(rnd.randrange(256) for _ in range(n))
        else:
            raw = b"t " + bytes(rnd.choice(ALPHABET) for _ in range(n))
        _check(raw)


def test_mutated_valid_commands():
    rnd = random.Random(4)
    started = time.process_time()
    for _ in range(40_000):
        _check(_mutate(rnd, rnd.choice(VALID)))
    assert time.process_time() - started < 6


def test_every_prefix_of_every_valid_command():
    for raw in VALID:
        for i in range(len(raw)):
            _check(raw[:i])


def test_large_hostile_inputs_are_quick():
    # CPU time of this process, so that other work on the machine does not count
    started = time.process_time()
    for raw in (b"a SEARCH " + b"(" * 1_000_000, b"a SEARCH " + b"NOT " * 300_000 + b"ALL",
                b"a FETCH " + b"1," * 300_000 + b"1 UID", b"a LOGIN {" + b"9" * 100_000 + b"}",
                b"a " + b"X" * 1_000_000, b"a LOGIN " + b'"' + b"x" * 1_000_000,
                b"a SEARCH " + b"ALL " * 200_000 + b"ALL", b"\xff" * 1_000_000):
        _check(raw)
    assert time.process_time() - started < 3
