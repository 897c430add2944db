"""The arguments of one command, taken in order as its RFC 5804 syntax names them."""
from __future__ import annotations

from gateways.managesieve.parsing import Atom, Token
from shared.sieve.names import script_name_problem

MAX_NUMBER = 2**32 - 1  # RFC 5804 §4: number = 1*DIGIT, "0" to "4294967295"


class BadArguments(ValueError):
    """The command's arguments do not fit its syntax; answered NO, the connection stays."""


class Arguments:
    def __init__(self, command: str, tokens: list[Token]) -> None:
        self.command = command
        self.tokens = list(tokens)

    def _next(self, what: str) -> Token:
        if not self.tokens:
            raise BadArguments(f"{self.command} expects {what}.")
        return self.tokens.pop(0)

    def string(self, what: str = "a string") -> bytes:
        """A quoted string or a literal (RFC 5804 §4: string)."""
        token = self._next(what)
        if isinstance(token, Atom):
            raise BadArguments(f"{self.command} expects {what} as a quoted string or literal.")
        return token

    def text(self, what: str = "a string") -> str:
        """A string that must be UTF-8 (RFC 5804 §1.6 names, scripts, SASL data)."""
        try:
            return self.string(what).decode("utf-8")
        except UnicodeDecodeError:
            raise BadArguments(f"{self.command}: {what} is not UTF-8.") from None

    def script_name(self, allow_empty: bool = False) -> str:
        """A script name (RFC 5804 §1.6): UTF-8 without control characters, at most 128."""
        name = self.text("a script name")
        if not name and allow_empty:
            return name
        problem = script_name_problem(name)
        if problem is not None:
            raise BadArguments(problem[0].upper() + problem[1:] + ".")
        return name

    def number(self, what: str = "a number") -> int:
        token = self._next(what)
        if not isinstance(token, Atom) or not token.isdigit() or not token.isascii() \
                or len(token) > len(str(MAX_NUMBER)) or int(token) > MAX_NUMBER:
            raise BadArguments(f"{self.command} expects {what}.")
        return int(token)

    def optional_string(self) -> bytes | None:
        return self.string() if self.tokens else None

    def end(self) -> None:
        if self.tokens:
            raise BadArguments(f"Too many arguments for {self.command}.")
