"""Hostile input to the command parser: random bytes and mutated valid commands; and
random search programs that must parse back into the tree they were written from.

Whatever arrives, `parse_command` returns a Command or raises ParseError; nothing
else may escape, and no input takes long. The generator is seeded so a failure
names the input that caused it and reproduces.
"""
from __future__ import annotations

import datetime
import random
import time

from gateways.imap.grammar import ParseError, parse_command
from gateways.imap.grammar import commands as c
from gateways.imap.grammar import writer as w
from gateways.imap.grammar.commands import Command
from gateways.imap.grammar.sequence import SequenceSet

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


# --- random search programs: rendered, parsed, compared ---------------------------------

_FLAG_NAMES = {("\\Answered", True): "ANSWERED", ("\\Answered", False): "UNANSWERED",
               ("\\Deleted", True): "DELETED", ("\\Deleted", False): "UNDELETED",
               ("\\Draft", True): "DRAFT", ("\\Draft", False): "UNDRAFT",
               ("\\Flagged", True): "FLAGGED", ("\\Flagged", False): "UNFLAGGED",
               ("\\Seen", True): "SEEN", ("\\Seen", False): "UNSEEN",
               ("\\Recent", True): "RECENT", ("\\Recent", False): "OLD"}
_HEADER_NAMES = {"Bcc": "BCC", "Cc": "CC", "From": "FROM", "Subject": "SUBJECT", "To": "TO"}
_MONTH_NAMES = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


def _random_text(rnd: random.Random) -> str:
    return "".join(rnd.choice('ab Z"\\(){}*%]äß日~') for _ in range(rnd.randint(0, 8)))


def _random_set(rnd: random.Random) -> SequenceSet:
    def end():
        return None if rnd.random() < 0.1 else rnd.randint(1, 2**32 - 1)
    ranges = []
    for _ in range(rnd.randint(1, 4)):
        a = end()
        ranges.append((a, a) if rnd.random() < 0.5 else (a, end()))
    return SequenceSet(ranges)


def _random_key(rnd: random.Random, depth: int) -> c.SearchKey:
    kind = rnd.randrange(12 if depth < 6 else 9)
    if kind == 0:
        return c.SearchAll()
    if kind == 1:
        return c.SearchFlag(*rnd.choice(list(_FLAG_NAMES)))
    if kind == 2:
        return c.SearchFlag(rnd.choice(["$Junk", "$Forwarded", "work"]), rnd.random() < 0.5)
    if kind == 3:
        return c.SearchSequence(_random_set(rnd), uid=rnd.random() < 0.5)
    if kind == 4:
        return c.SearchDate(rnd.choice(["INTERNAL", "SENT"]), rnd.choice(["BEFORE", "ON", "SINCE"]),
                            datetime.date(rnd.randint(1970, 2100), rnd.randint(1, 12), rnd.randint(1, 28)))
    if kind == 5:
        return c.SearchSize(rnd.choice(["LARGER", "SMALLER"]), rnd.randint(0, 2**32 - 1))
    if kind == 6:
        name = rnd.choice(list(_HEADER_NAMES) + ["X-Spam", "Message-ID"])
        return c.SearchHeader(name, _random_text(rnd), address=name in ("Bcc", "Cc", "From", "To"))
    if kind == 7:
        return c.SearchText(rnd.choice(["BODY", "TEXT"]), _random_text(rnd))
    if kind == 8:
        entry = rnd.choice([None, ("/flags/\\draft", "ALL"), ("/flags/$x", "PRIV")])
        return c.SearchModseq(rnd.randint(0, 2**63 - 1), entry)
    if kind == 9:
        return c.SearchNot(_random_key(rnd, depth + 1))
    if kind == 10:
        return c.SearchOr(_random_key(rnd, depth + 1), _random_key(rnd, depth + 1))
    return c.SearchAnd(tuple(_random_key(rnd, depth + 1) for _ in range(rnd.randint(2, 3))))


def _render(key: c.SearchKey) -> bytes:
    if isinstance(key, c.SearchAll):
        return b"ALL"
    if isinstance(key, c.SearchFlag):
        name = _FLAG_NAMES.get((key.flag, key.present))
        if name:
            return name.encode()
        return (b"KEYWORD " if key.present else b"UNKEYWORD ") + key.flag.encode()
    if isinstance(key, c.SearchSequence):
        return (b"UID " if key.uid else b"") + bytes(key.sequence)
    if isinstance(key, c.SearchDate):
        prefix = b"SENT" if key.field == "SENT" else b""
        d = key.date
        return prefix + key.relation.encode() + b" %d-%s-%04d" % (
            d.day, _MONTH_NAMES[d.month - 1].encode(), d.year)
    if isinstance(key, c.SearchSize):
        return key.relation.encode() + b" %d" % key.size
    if isinstance(key, c.SearchHeader):
        if key.name in _HEADER_NAMES:
            return _HEADER_NAMES[key.name].encode() + b" " + w.astring(key.value)
        return b"HEADER " + w.astring(key.name) + b" " + w.astring(key.value)
    if isinstance(key, c.SearchText):
        return key.where.encode() + b" " + w.string(key.value)
    if isinstance(key, c.SearchModseq):
        entry = b"" if key.entry is None else w.quoted(key.entry[0]) + b" " + key.entry[1].encode() + b" "
        return b"MODSEQ " + entry + b"%d" % key.modseq
    if isinstance(key, c.SearchNot):
        return b"NOT " + _render(key.key)
    if isinstance(key, c.SearchOr):
        return b"OR " + _render(key.left) + b" " + _render(key.right)
    return b"(" + b" ".join(_render(k) for k in key.keys) + b")"


def test_random_search_programs_survive_rendering_and_parsing():
    rnd = random.Random(11)
    for _ in range(3000):
        keys = tuple(_random_key(rnd, 0) for _ in range(rnd.randint(1, 3)))
        raw = b"t UID SEARCH CHARSET UTF-8 " + b" ".join(_render(k) for k in keys)
        assert parse_command(raw).args.criteria == c.SearchAnd(keys), raw
