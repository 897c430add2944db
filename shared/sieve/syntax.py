"""The syntax tree the parser builds (RFC 5228 §8.2): commands, tests and their arguments."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Tag:
    name: str          # without the colon, lower case
    line: int


@dataclass(frozen=True)
class StringList:
    values: tuple[str, ...]
    bracketed: bool    # written as [...]: never accepted where one string is required
    line: int


@dataclass(frozen=True)
class Number:
    value: int
    line: int


Argument = Tag | StringList | Number


@dataclass
class Invocation:
    """What commands and tests share: a name, arguments and nested tests."""

    name: str
    line: int
    arguments: list[Argument] = field(default_factory=list)
    tests: list[Test] = field(default_factory=list)
    test_list: bool = False   # written as (...)


@dataclass
class Test(Invocation):
    pass


@dataclass
class Command(Invocation):
    block: list[Command] | None = None
