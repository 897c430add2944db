"""The ManageSieve input grammar (RFC 5804 §4): lines of atoms, quoted strings and
literals, read incrementally from whatever the network delivers.

`CommandReader.feed(data)` returns the complete lines it could read: a `Line` holds the
tokens of one command (or of one SASL response, which is a single string), an
`InputError` says why a line was refused. A refused line is read to its end, literals
included, so the next command starts where the client thinks it does.

Tokens are `Atom` (a str: command names, numbers) or `bytes` (the content of a quoted
string or a literal, escapes removed).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# RFC 5804 §4: quoted = DQUOTE *1024QUOTED-CHAR DQUOTE
MAX_QUOTED = 1024
# ATOM-SPECIALS = "(" / ")" / "{" / SP / CTL / QUOTED-SPECIALS
_ATOM = re.compile(rb'[^(){ \x00-\x1f\x7f"\\]+')
# literal-c2s = "{" number "+}" CRLF; a synchronizing "{" number "}" is read the same way.
_LITERAL_MARK = re.compile(rb"\{([0-9]{1,10})(\+?)\}$")
_QUOTED_PLAIN = re.compile(rb'[^"\\\r\n\x00]*')


class Atom(str):
    """An atom of the grammar (command names, numbers, SASL's bare words)."""


Token = Atom | bytes


@dataclass
class Line:
    """One command as the client sent it."""

    tokens: list[Token] = field(default_factory=list)


@dataclass
class InputError:
    """A line that was refused, and why; `literal_too_large` when a literal broke the limit
    (RFC 5804 §2.6: answered as QUOTA/MAXSIZE by PUTSCRIPT)."""

    message: str
    literal_too_large: bool = False


class SyntaxProblem(ValueError):
    pass


def tokenize(text: bytes) -> list[Token]:
    """The tokens of one line segment (no CRLF, no literal marker), separated by spaces."""
    tokens: list[Token] = []
    pos, end = 0, len(text)
    while pos < end:
        char = text[pos:pos + 1]
        if char == b" ":
            pos += 1
            continue
        if char == b'"':
            value, pos = _quoted(text, pos + 1)
            tokens.append(value)
        else:
            match = _ATOM.match(text, pos)
            if match is None:
                raise SyntaxProblem(f"unexpected character {char!r}")
            tokens.append(Atom(match.group().decode("utf-8", "replace")))
            pos = match.end()
        if pos < end and text[pos:pos + 1] != b" ":
            raise SyntaxProblem("arguments must be separated by a space")
    return tokens


def _quoted(text: bytes, pos: int) -> tuple[bytes, int]:
    """A quoted string's content from just after its opening quote (RFC 5804 §4:
    QUOTED-CHAR = SAFE-UTF8-CHAR / "\\" QUOTED-SPECIALS)."""
    out = bytearray()
    while True:
        plain = _QUOTED_PLAIN.match(text, pos)
        assert plain is not None
        out += plain.group()
        pos = plain.end()
        char = text[pos:pos + 1]
        if char == b'"':
            break
        if char == b"\\" and text[pos + 1:pos + 2] in (b'"', b"\\"):
            out += text[pos + 1:pos + 2]
            pos += 2
            continue
        if char == b"\\":
            raise SyntaxProblem("only \\\" and \\\\ may be escaped in a quoted string")
        raise SyntaxProblem("unterminated quoted string" if not char else "NUL in a quoted string")
    if len(out) > MAX_QUOTED:
        raise SyntaxProblem(f"quoted string longer than {MAX_QUOTED} octets; send a literal")
    return bytes(out), pos + 1


class CommandReader:
    """Splits the client's bytes into commands.

    `max_line` bounds a line outside literals, `max_literal` one literal, and one command
    holds at most `max_line + max_literal` octets in all (no command needs more than a name
    and one script). A literal over a limit is read and dropped, never held in memory.
    """

    def __init__(self, max_line: int, max_literal: int) -> None:
        self.max_line = max_line
        self.max_literal = max_literal
        self.reset()

    def reset(self) -> None:
        """Forget everything buffered (after STARTTLS, nothing sent before it may run)."""
        self.buffer = b""
        self.tokens: list[Token] = []
        self.problem: InputError | None = None  # the refused line's reason, read to its end
        self.literal_left = 0  # octets of the current literal still to come
        self.literal: bytearray | None = None  # None while a literal is dropped
        self.command_size = 0  # octets the command being read holds so far
        self.overlong_tail = b""  # the end of a line too long to keep, for its literal mark

    def feed(self, data: bytes) -> list[Line | InputError]:
        self.buffer += data
        out: list[Line | InputError] = []
        while self.buffer:
            if self.literal_left:
                self._read_literal()
                continue
            nl = self.buffer.find(b"\n")
            if nl < 0:
                if len(self.buffer) > self.max_line:
                    self._overlong(self.buffer)
                    self.buffer = b""
                break
            raw, self.buffer = self.buffer[:nl], self.buffer[nl + 1:]
            if self.overlong_tail or len(raw) > self.max_line + 1:
                raw = self._overlong(raw, ended=True)
            done = self._segment(raw[:-1] if raw.endswith(b"\r") else raw)
            if done is not None:
                out.append(done)
        return out

    def _overlong(self, raw: bytes, ended: bool = False) -> bytes:
        """Drop an overlong line, keeping only enough of its end to see a literal mark."""
        if self.problem is None:
            self.problem = InputError(f"line longer than {self.max_line} octets")
        self.overlong_tail = (self.overlong_tail + raw)[-16:]
        if not ended:
            return b""
        tail, self.overlong_tail = self.overlong_tail, b""
        return tail

    def _segment(self, text: bytes) -> Line | InputError | None:
        """One line segment: tokens, then either a literal mark (more follows) or the end."""
        mark = _LITERAL_MARK.search(text)
        body = text[:mark.start()] if mark else text
        if self.problem is None:
            try:
                if self.tokens and body and not body.startswith(b" "):
                    raise SyntaxProblem("a literal must be followed by a space or the line end")
                self.tokens.extend(tokenize(body))
            except SyntaxProblem as problem:
                self.problem = InputError(str(problem))
        self.command_size += len(body)
        if mark is not None:
            size = int(mark.group(1))
            self.command_size += size
            if size > self.max_literal and self.problem is None:
                self.problem = InputError(f"literal of {size} octets, more than {self.max_literal}",
                                          literal_too_large=True)
            elif self.command_size > self.max_line + self.max_literal and self.problem is None:
                self.problem = InputError(f"command of more than {self.max_line + self.max_literal} octets",
                                          literal_too_large=True)
            self.literal_left = size
            self.literal = bytearray() if self.problem is None else None
            if size == 0:
                self._literal_done()
            return None
        return self._finish()

    def _read_literal(self) -> None:
        chunk, self.buffer = self.buffer[:self.literal_left], self.buffer[self.literal_left:]
        self.literal_left -= len(chunk)
        if self.literal is not None:
            self.literal += chunk
        if not self.literal_left:
            self._literal_done()

    def _literal_done(self) -> None:
        if self.literal is not None:
            self.tokens.append(bytes(self.literal))
        self.literal = None

    def _finish(self) -> Line | InputError | None:
        tokens, problem = self.tokens, self.problem
        self.tokens, self.problem, self.command_size = [], None, 0
        if problem is not None:
            return problem
        return Line(tokens) if tokens else None
