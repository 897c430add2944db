"""Sieve (RFC 5228) mail filtering: compile a user's script once, evaluate it per message.

Stages as in Pigeonhole: `lexer` -> `parser` (syntax tree) -> `validator` (commands, tags,
`require`, limits) -> `interpreter`; every extension is a module of `extensions/`.
No I/O: the delivery pipeline supplies the message, the envelope and a mailbox lookup,
and carries out the returned `Outcome`.
"""
from __future__ import annotations

from shared.sieve.errors import SieveError
from shared.sieve.interpreter import evaluate
from shared.sieve.limits import SieveLimits
from shared.sieve.outcome import Envelope, FileInto, Outcome, Vacation
from shared.sieve.parser import parse
from shared.sieve.registry import registry
from shared.sieve.validator import Script, Validator


def compile_script(text: str | bytes, limits: SieveLimits | None = None) -> Script:
    """Check a whole script; SieveError(message, line) for the first problem."""
    limits = limits or SieveLimits()
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            line = text[:error.start].count(b"\n") + 1
            raise SieveError("script is not valid UTF-8", line) from None
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise SieveError("script is not valid UTF-8", text[:error.start].count("\n") + 1) \
            from None
    size = len(encoded)
    if size > limits.max_script_size:
        line = encoded[:limits.max_script_size].count(b"\n") + 1
        raise SieveError(f"script is {size} bytes, more than the limit of "
                         f"{limits.max_script_size}", line)
    text = text.removeprefix("\ufeff")   # a byte order mark some editors write
    try:
        return Validator(registry(), limits).validate(parse(text, limits.max_nesting))
    except RecursionError:
        raise SieveError("script is nested too deeply", 0) from None


def capabilities() -> list[str]:
    """The `require` names this engine knows, for ManageSieve's SIEVE capability."""
    return sorted(registry().capabilities)


__all__ = ["Envelope", "FileInto", "Outcome", "Script", "SieveError", "SieveLimits",
           "Vacation", "capabilities", "compile_script", "evaluate"]
