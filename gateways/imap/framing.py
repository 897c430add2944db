"""Cutting the client's byte stream into IMAP commands (RFC 3501 §2.2.1, §7.5; RFC 7888).

`CommandFramer` is fed bytes as they arrive and hands out one event at a time
when the protocol asks for it (`next_event`), so a command that is still running
holds the next one back without the framer reading ahead into memory.

A command is its line(s) with every literal kept inline exactly as sent: the
`{N}` / `{N+}` / `~{N}` marker, CRLF, the N octets, then the rest of the line,
without the final CRLF. That is what `gateways.imap.grammar.parse_command` reads.

Limits, answered without dropping the connection:

- a line (or all lines of one command) longer than `max_line`: `BAD [TOOBIG]`,
  the rest of the line is skipped;
- a literal over the limit (`max_literal` for each APPEND message, whose
  literals together stay within `max_append_total`; `max_line` for all literals
  of any other command, `UNAUTHENTICATED_LITERAL` before login): a synchronizing one is
  refused before the client sends it (`NO [TOOBIG]` for APPEND as RFC 7889 asks,
  `BAD [TOOBIG]` otherwise); a non-synchronizing one is read and thrown away,
  then refused with `BAD [TOOBIG]`;
- before login, non-synchronizing literals over 4096 octets are refused
  (LITERAL-, RFC 7888 §5).

Overlong lines and refused non-synchronizing literals count as abuse; after
`MAX_ABUSE` of them, or a non-synchronizing literal too large even to skip, the
refusal asks the protocol to close the connection.

In line mode (`line_mode = True`) each line comes back as a `LineReady`, for
AUTHENTICATE's continuation responses and IDLE's `DONE`.

APPEND messages need not be held in memory: with `spool_threshold` set, an
APPEND (or REPLACE, RFC 8508) literal larger than it is written, as it arrives, to a temporary file
(kept in memory up to `SPOOL_IN_MEMORY` octets), its marker in the command
becomes an empty literal (`{0}`), and the files come with the command in
`CommandReady.spooled`, in order. An over-limit non-synchronizing APPEND
literal (LITERAL+) is read and thrown away and answered `NO [TOOBIG]`, so the
connection stays usable, unless it is too large even to skip.
"""
from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from typing import IO

LITERAL_MARKER = re.compile(rb"(~?)\{(\d+)(\+?)\}$")
# tag = 1*<any ASTRING-CHAR except "+"> (RFC 3501 §9)
TAG = re.compile(rb"^[!#$&',./0-9:;<=>?@A-Z\[\]^_`a-z|}~-]+")
# LITERAL- (RFC 7888 §5): the largest non-synchronizing literal before login.
NONSYNC_LIMIT_UNAUTHENTICATED = 4096
# Before login only LOGIN and AUTHENTICATE take strings; nothing honest is larger.
UNAUTHENTICATED_LITERAL = 8192
MAX_ABUSE = 3
COMPACT_AFTER = 65536
# A spooled APPEND literal stays in memory up to this size, then goes to disk.
SPOOL_IN_MEMORY = 256 * 1024
# Over-limit LITERAL+ APPEND messages up to this many times the limit are skipped.
DRAIN_FACTOR = 4


@dataclass(frozen=True)
class CommandReady:
    """One complete command, literals inline, without the final CRLF; `spooled` holds
    the APPEND literals written to temporary files, positioned at their start."""
    raw: bytes
    spooled: tuple[IO[bytes], ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class LineReady:
    """One line in line mode, without its line end."""
    line: bytes


@dataclass(frozen=True)
class LiteralWanted:
    """A synchronizing literal was accepted: send a `+` continuation, then ask again."""
    size: int


@dataclass(frozen=True)
class Refused:
    """Answer `<tag or *> <status> [<code>] <text>`; with `close`, then say BYE and hang up."""
    tag: str | None
    status: str
    code: str | None
    text: str
    close: bool = False

    def response(self) -> bytes:
        code = f"[{self.code}] " if self.code else ""
        return f"{self.tag or '*'} {self.status} {code}{self.text}\r\n".encode("utf-8", "replace")


Event = CommandReady | LineReady | LiteralWanted | Refused


def _literal_size(marker: re.Match[bytes]) -> int:
    """The octet count of a literal marker; more digits than any limit has reads as 2**63
    (int() would refuse thousands of them), which every limit then refuses."""
    digits = marker.group(2)
    return int(digits) if len(digits) <= 18 else 1 << 63

_LINE, _LITERAL, _SKIP_LINE, _SKIP_COMMAND = range(4)


class CommandFramer:
    """Incremental framer; `feed` bytes, then call `next_event` until it returns None."""

    def __init__(self, max_line: int = 65536, max_literal: int = 64 * 1024 * 1024,
                 max_append_total: int | None = None) -> None:
        self.max_line = max_line
        self.max_literal = max_literal
        # All messages of one MULTIAPPEND (RFC 3502) together.
        self.max_append_total = max(max_literal, max_append_total or max_literal)
        self.authenticated = False
        self.line_mode = False
        self.abuse = 0
        self._buf = bytearray()
        self._pos = 0
        self._state = _LINE
        self._parts: list[bytes] = []
        self._text_size = 0
        self._literal_size = 0
        self._literal_left = 0
        self._skip_literal = False
        self._pending: Refused | None = None
        self._first_line: bytes | None = None
        self.spool_threshold: int | None = None
        self._spooled: list[IO[bytes]] = []
        self._sink: IO[bytes] | None = None

    # -- input
    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes received but not yet cut into events (what a paused protocol holds)."""
        return len(self._buf) - self._pos

    @property
    def mid_command(self) -> bool:
        """Part of a command has arrived (a line announcing a literal, some of the literal)."""
        return self._first_line is not None

    def discard_buffered(self) -> None:
        """Forget everything received and not yet handed out (STARTTLS: plaintext
        pipelined before the handshake must never run as if it came over TLS)."""
        self._buf = bytearray()
        self._pos = 0
        self._reset_command()
        self._state = _LINE

    # -- output
    def next_event(self) -> Event | None:
        """The next event, or None until more bytes arrive."""
        try:
            return self._next()
        finally:
            if self._pos > COMPACT_AFTER or self._pos == len(self._buf):
                del self._buf[:self._pos]
                self._pos = 0

    def _next(self) -> Event | None:
        while True:
            if self._state == _LITERAL:
                if not self._take_literal():
                    return None
                self._state = _SKIP_COMMAND if self._skip_literal else _LINE
                continue
            if self._state == _SKIP_LINE:
                nl = self._buf.find(b"\n", self._pos)
                if nl < 0:
                    self._pos = len(self._buf)
                    return None
                self._pos = nl + 1
                self._state = _LINE
                continue
            line = self._read_line()
            if line is None:
                return None
            if isinstance(line, Refused):
                return line
            if self._state == _SKIP_COMMAND:
                event = self._skip_rest(line)
                if event is not None:
                    return event
                continue
            if self.line_mode and not self._parts:
                return LineReady(line)
            event = self._command_line(line)
            if event is not None:
                return event

    def _read_line(self) -> bytes | Refused | None:
        nl = self._buf.find(b"\n", self._pos)
        if nl < 0:
            if len(self._buf) - self._pos > self.max_line:
                # Never hold an endless line: refuse now, drop up to its end.
                tag = self._tag(self._first_line or self._buf[self._pos:self._pos + 200])
                self._pos = len(self._buf)
                self._state = _SKIP_LINE
                return self._overlong(tag)
            return None
        end = nl - 1 if nl > self._pos and self._buf[nl - 1] == 0x0D else nl
        line = bytes(self._buf[self._pos:end])
        self._pos = nl + 1
        if len(line) > self.max_line or self._text_size + len(line) > self.max_line:
            return self._overlong(self._tag(self._first_line or line))
        return line

    def _command_line(self, line: bytes) -> Event | None:
        if self._first_line is None:
            self._first_line = line
        marker = LITERAL_MARKER.search(line)
        if marker is None:
            self._parts.append(line)
            raw = b"".join(self._parts)
            spooled, self._spooled = tuple(self._spooled), []
            for fp in spooled:
                fp.seek(0)
            self._reset_command()
            return CommandReady(raw, spooled)
        size = _literal_size(marker)
        synchronizing = not marker.group(3)
        limit = self._literal_limit()
        too_big = self._literal_size + size > limit
        if self.authenticated and self._is_append():
            # APPENDLIMIT (RFC 7889) is per message; the command as a whole has its own bound.
            too_big = size > limit or self._literal_size + size > self.max_append_total
        if not synchronizing and not self.authenticated and size > NONSYNC_LIMIT_UNAUTHENTICATED:
            too_big = True
        if too_big:
            tag = self._tag(self._first_line)
            if synchronizing:
                # The client waits for "+" and sends nothing more of this command.
                status = "NO" if self._is_append() else "BAD"
                self._reset_command()
                return Refused(tag, status, "TOOBIG", f"Literal too large (limit {limit} octets)")
            if self.authenticated and self._is_append() and size <= self.max_literal * DRAIN_FACTOR:
                return self._drain(tag, size, limit)
            return self._skip_nonsync(tag, size, limit)
        if self.spool_threshold is not None and size > self.spool_threshold and self._is_append():
            self._sink = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
            self._spooled.append(self._sink)
            line = line[:marker.start()] + marker.group(1) + b"{0}"
        self._parts.append(line + b"\r\n")
        self._text_size += len(line)
        self._literal_size += size
        self._literal_left = size
        self._skip_literal = False
        self._state = _LITERAL
        return LiteralWanted(size) if synchronizing else None

    def _skip_nonsync(self, tag: str | None, size: int, limit: int) -> Refused | None:
        self.abuse += 1
        refusal = Refused(tag, "BAD", "TOOBIG", f"Literal too large (limit {limit} octets)",
                          close=self.abuse >= MAX_ABUSE or size > max(self.max_literal, limit))
        self._reset_command()
        if refusal.close:
            return refusal
        # The octets are already on their way: read past them, then past the rest
        # of the command, and answer once it is over.
        self._pending = refusal
        self._literal_left = size
        self._skip_literal = True
        self._state = _LITERAL
        return None

    def _drain(self, tag: str | None, size: int, limit: int) -> None:
        """Skip an over-limit LITERAL+ message (RFC 7889 §4: NO [TOOBIG]); not abuse."""
        self._reset_command()
        self._pending = Refused(tag, "NO", "TOOBIG", f"Message too large (limit {limit} octets)")
        self._literal_left = size
        self._skip_literal = True
        self._state = _LITERAL
        return None

    def _skip_rest(self, line: bytes) -> Refused | None:
        marker = LITERAL_MARKER.search(line)
        if marker is not None and marker.group(3):
            size = _literal_size(marker)
            if size > max(self.max_literal, self.max_line):
                self._state = _LINE
                pending, self._pending = self._pending, None
                return Refused(pending.tag if pending else None, "BAD", "TOOBIG",
                               "Literal too large", close=True)
            self._literal_left = size
            self._skip_literal = True
            self._state = _LITERAL
            return None
        # A synchronizing marker here gets no "+": the client gives up with the command.
        self._state = _LINE
        pending, self._pending = self._pending, None
        return pending

    def _take_literal(self) -> bool:
        available = len(self._buf) - self._pos
        take = min(available, self._literal_left)
        if take and not self._skip_literal:
            if self._sink is not None:
                self._sink.write(bytes(self._buf[self._pos:self._pos + take]))
            else:
                self._parts.append(bytes(self._buf[self._pos:self._pos + take]))
        self._pos += take
        self._literal_left -= take
        if self._literal_left == 0:
            self._sink = None
            return True
        return False

    # -- helpers
    def _overlong(self, tag: str | None) -> Refused:
        self.abuse += 1
        self._reset_command()
        self._pending = None
        if self._state == _SKIP_COMMAND:
            self._state = _LINE
        return Refused(tag, "BAD", "TOOBIG", f"Line too long (limit {self.max_line} octets)",
                       close=self.abuse >= MAX_ABUSE)

    def _literal_limit(self) -> int:
        if not self.authenticated:
            return UNAUTHENTICATED_LITERAL
        return self.max_literal if self._is_append() else self.max_line

    def _is_append(self) -> bool:
        """APPEND, REPLACE or UID REPLACE (RFC 8508): commands whose literals are messages."""
        words = [word.upper() for word in (self._first_line or b"").split(b" ", 3)[:3]]
        if len(words) > 2 and words[1] == b"UID":
            return words[2] == b"REPLACE"
        return len(words) > 1 and words[1] in (b"APPEND", b"REPLACE")

    @staticmethod
    def _tag(line: bytes | bytearray | None) -> str | None:
        match = TAG.match(bytes(line or b""))
        if match is None or not line[match.end():match.end() + 1] in (b" ", b""):  # type: ignore[index]
            return None
        return match.group(0).decode("ascii")

    def _reset_command(self) -> None:
        for fp in self._spooled:  # a command that never completed
            fp.close()
        self._spooled = []
        self._sink = None
        self._parts = []
        self._text_size = 0
        self._literal_size = 0
        self._first_line = None
