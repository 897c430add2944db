"""Match types :is, :contains and :matches (RFC 5228 §2.7.1) and the shared match test.

`:matches` runs in O(len(pattern) * len(value)): segments between stars are placed
leftmost, which is both correct and what RFC 5229 §3.2 asks of the match variables
(every star as short as it can be, the last one taking the rest).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from shared.sieve.comparators import DEFAULT_COMPARATOR, Comparator
from shared.sieve.errors import SieveError, SieveRuntimeError

if TYPE_CHECKING:
    from shared.sieve.interpreter import Runtime
    from shared.sieve.validator import Node, Validator

ANY = object()    # a '?' in a pattern
STAR = object()   # a '*' in a pattern


def _pattern(pattern: str) -> list[object]:
    """Pattern to items: literal strings, STAR and ANY; a backslash quotes the next
    character (RFC 5228 §2.7.1)."""
    items: list[object] = []
    literal: list[str] = []
    escaped = False
    for char in pattern:
        if escaped:
            literal.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in "*?":
            if literal:
                items.append("".join(literal))
                literal = []
            items.append(STAR if char == "*" else ANY)
        else:
            literal.append(char)
    if literal:
        items.append("".join(literal))
    return items


def _segment_at(value: str, original: str, start: int,
                segment: list[object]) -> list[str] | None:
    """The '?' captures (from `original`) when `segment` matches the folded `value` at
    `start`, else None."""
    captures = []
    position = start
    for item in segment:
        if item is ANY:
            if position >= len(value):
                return None
            captures.append(original[position])
            position += 1
        else:
            text = str(item)
            if not value.startswith(text, position):
                return None
            position += len(text)
    return captures


def _segment_length(segment: list[object]) -> int:
    return sum(1 if item is ANY else len(str(item)) for item in segment)


def _find_segment(folded: str, value: str, start: int,
                  segment: list[object]) -> tuple[int, list[str]] | None:
    """The leftmost position from `start` where `segment` matches, and its captures."""
    length = _segment_length(segment)
    anchor = next((item for item in segment if isinstance(item, str)), None)
    while start + length <= len(folded):
        if anchor is not None and anchor is segment[0]:
            # str.find skips ahead to the literal start in C.
            found = folded.find(anchor, start)
            if found < 0:
                return None
            start = found
        captures = _segment_at(folded, value, start, segment)
        if captures is not None:
            return start, captures
        start += 1
    return None


def glob_match(value: str, pattern: str, comparator: Comparator) -> list[str] | None:
    """Match `value` against a :matches pattern; the wildcard captures or None."""
    folded = comparator.fold(value)
    items = [item if not isinstance(item, str) else comparator.fold(item)
             for item in _pattern(pattern)]
    segments: list[list[object]] = [[]]
    for item in items:
        if item is STAR:
            segments.append([])
        else:
            segments[-1].append(item)
    first, *middle_and_last = segments
    captures: list[str] = []
    head = _segment_at(folded, value, 0, first)
    if head is None:
        return None
    captures.extend(head)
    position = _segment_length(first)
    if not middle_and_last:
        return captures if position == len(folded) else None
    *middle, last = middle_and_last
    for segment in middle:
        length = _segment_length(segment)
        placed = _find_segment(folded, value, position, segment)
        if placed is None:
            return None
        start, found = placed
        captures.append(value[position:start])
        captures.extend(found)
        position = start + length
    tail_start = len(folded) - _segment_length(last)
    if tail_start < position:
        return None
    tail = _segment_at(folded, value, tail_start, last)
    if tail is None:
        return None
    captures.append(value[position:tail_start])
    captures.extend(tail)
    return captures


def match_is(runtime: Runtime, comparator: Comparator, values: Sequence[str],
             keys: Sequence[str], argument: object) -> bool:
    for value in values:
        for key in keys:
            runtime.step()
            if comparator.equals(value, key):
                return True
    return False


def match_contains(runtime: Runtime, comparator: Comparator, values: Sequence[str],
                   keys: Sequence[str], argument: object) -> bool:
    for value in values:
        folded = comparator.fold(value)
        for key in keys:
            runtime.step()
            if comparator.fold(key) in folded:
                return True
    return False


def match_matches(runtime: Runtime, comparator: Comparator, values: Sequence[str],
                  keys: Sequence[str], argument: object) -> bool:
    for value in values:
        for key in keys:
            runtime.step(1 + len(value) // 64)
            captures = glob_match(value, key, comparator)
            if captures is not None:
                runtime.set_match_variables([value, *captures])
                return True
    return False


def comparator_of(node: Node) -> str:
    return str(node.tags.get("comparator", DEFAULT_COMPARATOR))


def validate_match(node: Node, validator: Validator) -> None:
    """The comparator exists, is required, and supports the match type (RFC 5228 §2.7.3)."""
    registry = validator.registry
    name = comparator_of(node)
    comparator = registry.comparators.get(name)
    if comparator is None:
        raise SieveError(f"unknown comparator \"{name}\"", node.line)
    if comparator.capability is not None and not validator.has(comparator.capability):
        raise SieveError(f"comparator \"{name}\" needs require \"{comparator.capability}\"",
                         node.line)
    match_type = registry.match_types[node.groups.get("match-type", "is")]
    if match_type.substring and not comparator.substring:
        raise SieveError(f"comparator \"{name}\" cannot do :{match_type.name}", node.line)


def match(runtime: Runtime, node: Node, values: Sequence[str], keys: Sequence[str]) -> bool:
    """Apply the node's comparator and match type to values and keys."""
    comparator = runtime.registry.comparators[comparator_of(node)]
    name = node.groups.get("match-type", "is")
    match_type = runtime.registry.match_types[name]
    argument = node.tags.get(name)
    if isinstance(argument, str):
        argument = runtime.expand(argument)
    keys = [runtime.expand(key) for key in keys]
    try:
        return match_type.run(runtime, comparator, values, keys, argument)
    except ValueError as error:
        raise SieveRuntimeError(str(error), node.line) from error
