"""The lexical layer of the command parser: a cursor over one command's bytes that
reads the primitives of RFC 3501 §9 (atoms, quoted strings, literals, numbers,
sequence sets, flags, dates, mailbox names). Every mistake raises ParseError with
the command's tag once it is known.
"""
from __future__ import annotations

import datetime
import re
from collections.abc import Callable

from gateways.imap.grammar.errors import ParseError
from gateways.imap.grammar.mutf7 import MUTF7Error, decode as mutf7_decode
from gateways.imap.grammar.sequence import SAVED_RESULT, SequenceSet

MAX_NUMBER = 2**32 - 1      # number, nz-number (RFC 3501 §9)
MAX_MODSEQ = 2**63 - 1      # mod-sequence-value (RFC 7162 §7)

# Character classes of RFC 3501 §9, as regular expressions over bytes.
_CTL = bytes(range(0x20)) + b"\x7f"
_ATOM_SPECIALS = b'(){ %*"\\]' + _CTL
_ATOM_CHARS = bytes(b for b in range(1, 0x80) if b not in _ATOM_SPECIALS)


def _class(chars: bytes) -> re.Pattern[bytes]:
    return re.compile(b"[" + b"".join(b"\\x%02x" % b for b in chars) + b"]+")


_ATOM = _class(_ATOM_CHARS)
_ASTRING = _class(_ATOM_CHARS + b"]")
TAG = _class(bytes(b for b in _ATOM_CHARS + b"]" if b != ord("+")))
_LIST_MAILBOX = _class(_ATOM_CHARS + b"%*]")
_DIGITS = re.compile(rb"[0-9]+")
_QUOTED_PLAIN = re.compile(rb'[^"\\\r\n\x00]*')
_TIME_ZONE = re.compile(rb'([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"')

_MONTHS = {m: i for i, m in enumerate(
    (b"JAN", b"FEB", b"MAR", b"APR", b"MAY", b"JUN",
     b"JUL", b"AUG", b"SEP", b"OCT", b"NOV", b"DEC"), start=1)}

SYSTEM_FLAGS = {f.upper(): f for f in
                ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "\\Recent")}


def _utf8_name(raw: bytes) -> str:
    """A mailbox name under UTF8=ACCEPT (RFC 6855 §3): UTF-8 as sent."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MUTF7Error("mailbox name is not UTF-8") from None


class Reader:
    """A cursor over one command; every failure raises ParseError carrying the tag."""

    __slots__ = ("data", "pos", "tag", "view", "utf8")

    def __init__(self, data: bytes, utf8: bool = False) -> None:
        # UTF8=ACCEPT (RFC 6855) is on: mailbox names are UTF-8, not modified UTF-7.
        self.utf8 = utf8
        self.data = data
        self.pos = 0
        self.tag: str | None = None
        self.view: memoryview | None = None

    # --- basics -------------------------------------------------------------------

    def fail(self, text: str, code: str | None = None) -> ParseError:
        return ParseError(text, self.tag, code)

    def peek(self) -> int:
        """The next octet, or -1 at the end."""
        return self.data[self.pos] if self.pos < len(self.data) else -1

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def expect(self, char: bytes, what: str | None = None) -> None:
        if self.data.startswith(char, self.pos):
            self.pos += len(char)
        else:
            raise self.fail(f"expected {what or repr(char.decode())} at octet {self.pos}")

    def sp(self) -> None:
        if self.peek() != 0x20:
            raise self.fail(f"expected a space at octet {self.pos}")
        self.pos += 1

    def maybe(self, char: bytes) -> bool:
        if self.data.startswith(char, self.pos):
            self.pos += len(char)
            return True
        return False

    def maybe_word(self, word: bytes) -> bool:
        """Consume `word` (case-insensitive) when it stands alone as an atom."""
        end = self.pos + len(word)
        if self.data[self.pos:end].upper() == word:
            nxt = self.data[end] if end < len(self.data) else -1
            if nxt in (-1, 0x20, 0x28, 0x29):  # end, SP, "(", ")"
                self.pos = end
                return True
        return False

    def match(self, pattern: re.Pattern[bytes], what: str) -> bytes:
        m = pattern.match(self.data, self.pos)
        if m is None:
            raise self.fail(f"expected {what} at octet {self.pos}")
        self.pos = m.end()
        return m.group()

    def end(self) -> None:
        if not self.at_end():
            raise self.fail(f"unexpected characters at octet {self.pos}")

    # --- numbers ------------------------------------------------------------------

    def number(self, maximum: int = MAX_NUMBER, what: str = "a number") -> int:
        digits = self.match(_DIGITS, what)
        if len(digits) > 19 or int(digits) > maximum:
            raise self.fail(f"number out of range: {digits[:24].decode()}")
        return int(digits)

    def nz_number(self, maximum: int = MAX_NUMBER, what: str = "a non-zero number") -> int:
        value = self.number(maximum, what)
        if value == 0:
            raise self.fail(f"{what} must not be 0")
        return value

    def partial_range(self) -> tuple[int, int]:
        """partial-range of RFC 9394 §4 (RFC 5267 §4.4 has the first form only): "5:10" is
        (5, 10), "-1:-100" is (-1, -100), the last 100 results; either order of the two ends."""
        negative = self.maybe(b"-")
        first = self.nz_number(MAX_NUMBER, "a partial range")
        self.expect(b":")
        if negative:
            self.expect(b"-")
        second = self.nz_number(MAX_NUMBER, "a partial range")
        low, high = min(first, second), max(first, second)
        return (-low, -high) if negative else (low, high)

    def modseq(self, zero: bool = False) -> int:
        """mod-sequence-value (non-zero) or, with `zero`, mod-sequence-valzer."""
        if zero:
            return self.number(MAX_MODSEQ, "a mod-sequence")
        return self.nz_number(MAX_MODSEQ, "a mod-sequence")

    # --- strings ------------------------------------------------------------------

    def atom(self, what: str = "an atom") -> bytes:
        return self.match(_ATOM, what)

    def quoted(self) -> bytes:
        self.expect(b'"')
        parts = []
        while True:
            parts.append(self.match(_QUOTED_PLAIN, "a quoted string"))
            ch = self.peek()
            if ch == 0x22:  # closing quote
                self.pos += 1
                return b"".join(parts)
            if ch == 0x5C:  # backslash
                nxt = self.data[self.pos + 1:self.pos + 2]
                if nxt not in (b'"', b"\\"):
                    raise self.fail("only \\\" and \\\\ may be escaped in a quoted string")
                parts.append(nxt)
                self.pos += 2
                continue
            if ch == -1:
                raise self.fail("unterminated quoted string")
            raise self.fail("NUL, CR or LF in a quoted string")

    def literal_view(self, binary_ok: bool = False) -> tuple[memoryview, bool]:
        """A literal's octets as a memoryview into the command, and whether it was `~{N}`."""
        binary = self.maybe(b"~")
        if binary and not binary_ok:
            raise self.fail("a binary literal is not allowed here")
        self.expect(b"{")
        if self.peek() == 0x2D:  # "-"
            raise self.fail("negative literal size")
        size = self.number(what="a literal size")
        self.maybe(b"+")
        self.expect(b"}")
        self.expect(b"\r\n", "CRLF after literal size")
        start = self.pos
        if len(self.data) - start < size:
            raise self.fail("literal is shorter than announced")
        self.pos = start + size
        if self.view is None:
            self.view = memoryview(self.data)
        body = self.view[start:self.pos]
        if not binary and 0 in body:
            raise self.fail("NUL in a literal (use a binary literal)")
        return body, binary

    def literal(self) -> bytes:
        return bytes(self.literal_view()[0])

    def string(self) -> bytes:
        ch = self.peek()
        if ch == 0x22:
            return self.quoted()
        if ch == 0x7B or self.data.startswith(b"~{", self.pos):
            return self.literal()
        raise self.fail(f"expected a string at octet {self.pos}")

    def astring(self, what: str = "a string") -> bytes:
        ch = self.peek()
        if ch == 0x22 or ch == 0x7B or self.data.startswith(b"~{", self.pos):
            return self.string()
        return self.match(_ASTRING, what)

    def nstring(self) -> bytes | None:
        if self.maybe_word(b"NIL"):
            return None
        return self.string()

    def text(self, raw: bytes, charset: str = "UTF-8") -> str:
        try:
            return raw.decode("ascii" if charset == "US-ASCII" else "utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"string is not valid {charset}") from None

    # --- mailboxes ----------------------------------------------------------------

    def mailbox(self) -> str:
        return self.mailbox_name(self.astring("a mailbox name"))

    def mailbox_name(self, raw: bytes) -> str:
        try:
            name = _utf8_name(raw) if self.utf8 else mutf7_decode(raw)
        except MUTF7Error as e:
            # An astring is a valid mailbox argument; it just names no mailbox (NO, not BAD).
            raise ParseError(str(e), self.tag, status="NO") from None
        head = name[:6].upper()
        if head == "INBOX" or head == "INBOX/":
            name = head + name[6:]
        return name

    def list_mailbox(self) -> str:
        ch = self.peek()
        raw = self.string() if ch in (0x22, 0x7B) else self.match(_LIST_MAILBOX, "a mailbox pattern")
        try:
            return _utf8_name(raw) if self.utf8 else mutf7_decode(raw)
        except MUTF7Error:
            # A pattern that is not modified UTF-7 matches no mailbox: LIST answers
            # nothing, as Dovecot does. No name holds NUL, so this matches none.
            return "\0" + raw.decode("latin-1")

    # --- lists, flags, sets, dates ------------------------------------------------

    def paren_list(self, item: Callable[[], object], empty_ok: bool = True) -> list:
        """"(" [item *(SP item)] ")"."""
        self.expect(b"(")
        items = []
        if self.maybe(b")"):
            if not empty_ok:
                raise self.fail("empty list")
            return items
        while True:
            items.append(item())
            if self.maybe(b")"):
                return items
            self.sp()

    def flag(self) -> str:
        """flag (RFC 3501 §9) for STORE and APPEND: no \\Recent, no unknown system flags."""
        if self.maybe(b"\\"):
            name = "\\" + self.atom("a flag name").decode("ascii")
            canonical = SYSTEM_FLAGS.get(name.upper())
            if canonical is None or canonical == "\\Recent":
                raise self.fail(f"invalid system flag {name}")
            return canonical
        return self.atom("a flag").decode("ascii")

    def flag_list(self) -> tuple[str, ...]:
        return unique(self.paren_list(self.flag))

    def sequence_set(self) -> SequenceSet:
        if self.maybe(b"$"):
            return SAVED_RESULT  # RFC 5182: seq-set =/ "$"
        ranges = []
        while True:
            lo = self.seq_number()
            hi = self.seq_number() if self.maybe(b":") else lo
            ranges.append((lo, hi))
            if not self.maybe(b","):
                return SequenceSet(ranges)

    def seq_number(self) -> int | None:
        if self.maybe(b"*"):
            return None
        return self.nz_number(what="a sequence number")

    def date(self) -> datetime.date:
        """date = date-text / DQUOTE date-text DQUOTE; date-text = d[d]-Mon-yyyy."""
        quoted = self.maybe(b'"')
        day = self.match(_DIGITS, "a day")
        self.expect(b"-")
        month = self.month()
        self.expect(b"-")
        year = self.match(_DIGITS, "a year")
        if quoted:
            self.expect(b'"')
        return self._date(day, month, year)

    def month(self) -> int:
        month = _MONTHS.get(self.data[self.pos:self.pos + 3].upper())
        if month is None:
            raise self.fail(f"expected a month name at octet {self.pos}")
        self.pos += 3
        return month

    def _date(self, day: bytes, month: int, year: bytes) -> datetime.date:
        if len(day) > 2 or len(year) != 4:
            raise self.fail("bad date")
        try:
            return datetime.date(int(year), month, int(day))
        except ValueError:
            raise self.fail("bad date") from None

    def date_time(self) -> datetime.datetime:
        """date-time = DQUOTE date-day-fixed "-" month "-" year SP time SP zone DQUOTE."""
        self.expect(b'"')
        self.maybe(b" ")  # date-day-fixed pads one-digit days with a space
        day = self.match(_DIGITS, "a day")
        self.expect(b"-")
        month = self.month()
        self.expect(b"-")
        date = self._date(day, month, self.match(_DIGITS, "a year"))
        self.sp()
        m = _TIME_ZONE.match(self.data, self.pos)
        if m is None:
            raise self.fail("bad time or zone in date-time")
        self.pos = m.end()
        hh, mm, ss, sign, zh, zm = m.groups()
        if int(zm) > 59 or int(zh) > 23:
            raise self.fail("bad zone in date-time")
        offset = datetime.timedelta(hours=int(zh), minutes=int(zm))
        try:
            return datetime.datetime(date.year, date.month, date.day, int(hh), int(mm), int(ss),
                                     tzinfo=datetime.timezone(-offset if sign == b"-" else offset))
        except ValueError:
            raise self.fail("bad time in date-time") from None


def unique(items: list) -> tuple:
    return tuple(dict.fromkeys(items))
