"""The Sieve lexer: script text to tokens with line numbers (RFC 5228 §2, §8.1)."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from shared.sieve.errors import SieveError

# RFC 5228 §8.1 quantifiers; numbers beyond 2^63-1 are refused rather than wrapped.
_QUANTIFIERS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
_MAX_NUMBER = (1 << 63) - 1
_PUNCTUATION = ";,()[]{}"


class Kind(Enum):
    IDENTIFIER = "identifier"
    TAG = "tag"
    NUMBER = "number"
    STRING = "string"
    PUNCT = "punctuation"
    END = "end of script"


@dataclass(frozen=True)
class Token:
    kind: Kind
    value: str | int
    line: int

    def describe(self) -> str:
        if self.kind is Kind.END:
            return "the end of the script"
        if self.kind is Kind.STRING:
            return "a string"
        if self.kind is Kind.TAG:
            return f"tag ':{self.value}'"
        return f"'{self.value}'"


def _is_alpha(char: str) -> bool:
    return ("a" <= char <= "z") or ("A" <= char <= "Z") or char == "_"


def _is_digit(char: str) -> bool:
    return "0" <= char <= "9"


class Lexer:
    """Splits a script into tokens; every error names the line it starts on."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1

    def tokens(self) -> list[Token]:
        result = []
        while True:
            token = self._next()
            result.append(token)
            if token.kind is Kind.END:
                return result

    def _next(self) -> Token:
        self._skip_space_and_comments()
        text, pos = self.text, self.pos
        if pos >= len(text):
            return Token(Kind.END, "", self.line)
        char = text[pos]
        line = self.line
        if char in _PUNCTUATION:
            self.pos += 1
            return Token(Kind.PUNCT, char, line)
        if char == '"':
            return Token(Kind.STRING, self._quoted(), line)
        if char == ":":
            self.pos += 1
            if self.pos >= len(text) or not _is_alpha(text[self.pos]):
                raise SieveError("':' must start a tag such as ':is'", line)
            return Token(Kind.TAG, self._identifier().lower(), line)
        if _is_digit(char):
            return Token(Kind.NUMBER, self._number(), line)
        if _is_alpha(char):
            word = self._identifier()
            if word.lower() == "text" and self.text.startswith(":", self.pos):
                self.pos += 1
                return Token(Kind.STRING, self._multiline(line), line)
            return Token(Kind.IDENTIFIER, word.lower(), line)
        shown = char if char.isprintable() else f"U+{ord(char):04X}"
        raise SieveError(f"unexpected character '{shown}'", line)

    def _skip_space_and_comments(self) -> None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char == "\n":
                self.line += 1
                self.pos += 1
            elif char in " \t\r":
                self.pos += 1
            elif char == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            elif text.startswith("/*", self.pos):
                end = text.find("*/", self.pos + 2)
                if end < 0:
                    raise SieveError("comment '/*' is never closed with '*/'", self.line)
                self.line += text.count("\n", self.pos, end)
                self.pos = end + 2
            else:
                return

    def _identifier(self) -> str:
        start = self.pos
        text = self.text
        while self.pos < len(text) and (_is_alpha(text[self.pos]) or _is_digit(text[self.pos])):
            self.pos += 1
        return text[start:self.pos]

    def _number(self) -> int:
        start = self.pos
        text = self.text
        while self.pos < len(text) and _is_digit(text[self.pos]):
            self.pos += 1
        if self.pos - start > len(str(_MAX_NUMBER)):  # int() refuses 4,300 digits and more
            raise SieveError(f"number {text[start:start + 20]}... is too large", self.line)
        value = int(text[start:self.pos])
        if self.pos < len(text) and text[self.pos].upper() in _QUANTIFIERS:
            value *= _QUANTIFIERS[text[self.pos].upper()]
            self.pos += 1
        if value > _MAX_NUMBER:
            raise SieveError(f"number {text[start:self.pos]} is too large", self.line)
        if self.pos < len(text) and (_is_alpha(text[self.pos]) or _is_digit(text[self.pos])):
            raise SieveError(f"bad number '{text[start:self.pos + 1]}'", self.line)
        return value

    def _quoted(self) -> str:
        """RFC 5228 §2.4.2: only \\" and \\\\ are escapes; any other backslash is dropped."""
        start_line = self.line
        text = self.text
        self.pos += 1
        parts = []
        while True:
            if self.pos >= len(text):
                raise SieveError("string is never closed with '\"'", start_line)
            char = text[self.pos]
            if char == '"':
                self.pos += 1
                return "".join(parts)
            if char == "\\":
                if self.pos + 1 >= len(text):
                    raise SieveError("string is never closed with '\"'", start_line)
                char = text[self.pos + 1]
                self.pos += 1
            if char == "\n":
                self.line += 1
            parts.append(char)
            self.pos += 1

    def _multiline(self, start_line: int) -> str:
        """RFC 5228 §2.4.2: `text:` then lines up to a lone '.', with dot-stuffing."""
        text = self.text
        while self.pos < len(text) and text[self.pos] in " \t":
            self.pos += 1
        if text.startswith("#", self.pos):
            end = text.find("\n", self.pos)
            self.pos = len(text) if end < 0 else end
        if text.startswith("\r\n", self.pos):
            self.pos += 2
        elif text.startswith("\n", self.pos):
            self.pos += 1
        else:
            raise SieveError("'text:' must be followed by the end of the line", start_line)
        self.line += 1
        lines = []
        while True:
            if self.pos >= len(text):
                raise SieveError("multi-line string is never closed with a line holding only '.'",
                                 start_line)
            end = text.find("\n", self.pos)
            end = len(text) if end < 0 else end
            raw = text[self.pos:end]
            self.pos = min(end + 1, len(text))
            self.line += 1
            content = raw[:-1] if raw.endswith("\r") else raw
            if content == ".":
                return "".join(lines)
            if content.startswith("."):
                content = content[1:]
            lines.append(content + "\r\n")
