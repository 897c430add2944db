"""Comparators (RFC 4790 §9, RFC 5228 §2.7.3): equality, ordering and substring folding."""
from __future__ import annotations

from dataclasses import dataclass

_ASCII_UPPER = {code: code + 32 for code in range(ord("A"), ord("Z") + 1)}


@dataclass(frozen=True)
class Comparator:
    name: str
    capability: str | None = None     # None: usable without `require` (RFC 5228 §2.7.3)
    substring: bool = True            # supports :contains and :matches

    def key(self, value: str) -> object:
        """What equality and ordering compare."""
        return value

    def fold(self, value: str) -> str:
        """The form substring operations compare (only when `substring`)."""
        return value

    def equals(self, left: str, right: str) -> bool:
        return self.key(left) == self.key(right)

    def compare(self, left: str, right: str) -> int:
        a, b = self.key(left), self.key(right)
        return (a > b) - (a < b)  # type: ignore[operator]


class Octet(Comparator):
    """i;octet: code points compared as they are (RFC 4790 §9.3)."""


class AsciiCasemap(Comparator):
    """i;ascii-casemap: a-z and A-Z are equal, nothing else folds (RFC 4790 §9.2)."""

    def key(self, value: str) -> object:
        return value.translate(_ASCII_UPPER)

    def fold(self, value: str) -> str:
        return value.translate(_ASCII_UPPER)


class AsciiNumeric(Comparator):
    """i;ascii-numeric: the leading digits as a number; no digits is positive infinity
    (RFC 4790 §9.1). It has no substring operations."""

    def key(self, value: str) -> object:
        digits = 0
        while digits < len(value) and "0" <= value[digits] <= "9":
            digits += 1
        if digits == 0:
            return (1, 0, "")
        number = value[:digits].lstrip("0")
        # Compared as digit strings: no int() of an arbitrarily long header value.
        return (0, len(number), number)


OCTET = Octet("i;octet")
ASCII_CASEMAP = AsciiCasemap("i;ascii-casemap")
ASCII_NUMERIC = AsciiNumeric("i;ascii-numeric", capability="comparator-i;ascii-numeric",
                             substring=False)
DEFAULT_COMPARATOR = "i;ascii-casemap"
