"""Errors of the Sieve engine (RFC 5228 §2.10.6)."""
from __future__ import annotations


class _LineError(Exception):
    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message, line)
        self.message = message
        self.line = line

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class SieveError(_LineError):
    """A script that cannot run: a syntax, validation or limit error at a known line."""


class SieveRuntimeError(_LineError):
    """A problem met while a compiled script runs; the message is kept (RFC 5228 §2.10.6)."""
