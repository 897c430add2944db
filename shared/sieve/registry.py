"""What the language knows: commands, tests, tags, comparators, match types, address parts.

Each module of `shared.sieve.extensions` has a `register(registry)` function and is found by
name, so an extension is one new module and nothing else changes (Pigeonhole's plugin shape).
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.sieve.comparators import Comparator
    from shared.sieve.interpreter import Runtime
    from shared.sieve.validator import Node, Validator


@dataclass(frozen=True)
class TagSpec:
    """A tagged argument: `value` is None for a flag, else "string", "strings" or "number"."""

    name: str
    value: str | None = None
    group: str | None = None          # at most one tag of a group per command
    capability: str | None = None     # the `require` it needs


@dataclass
class Spec:
    """A command (kind "command") or a test (kind "test") and what it accepts."""

    name: str
    kind: str
    run: Callable[..., Any]
    capability: str | None = None
    positional: tuple[str, ...] = ()     # "string", "strings", "number"
    optional_leading: int = 0            # how many leading positionals may be left out
    tags: dict[str, TagSpec] = field(default_factory=dict)
    groups: tuple[str, ...] = ()         # tag groups it accepts: "comparator", "match-type", ...
    tests: str = "none"                  # "none", "one" or "list"
    block: bool = False
    chain: str | None = None             # "start" (if) or "continue" (elsif, else)
    action: bool = False                 # counts towards max_actions
    validate: Callable[[Node, Validator], None] | None = None


@dataclass(frozen=True)
class MatchType:
    """A match type (RFC 5228 §2.7.1); `run(runtime, comparator, values, keys, argument)`."""

    name: str
    run: Callable[..., bool]
    substring: bool = False       # needs a comparator that supports substring operations


class Registry:
    def __init__(self) -> None:
        self.capabilities: set[str] = set()
        self.commands: dict[str, Spec] = {}
        self.tests: dict[str, Spec] = {}
        self.group_tags: dict[str, dict[str, TagSpec]] = {}
        self.comparators: dict[str, Comparator] = {}
        self.match_types: dict[str, MatchType] = {}
        self.address_parts: dict[str, Callable[[str], str | None]] = {}
        self.string_transforms: dict[str, Callable[[str, int], str]] = {}
        self.expansions: dict[str, Callable[[Runtime, str], str]] = {}
        self.field_filters: list[Callable[[Node, list[Any]], list[Any]]] = []
        self.validators: list[Callable[[Node, Validator], None]] = []
        self._extra_tags: list[tuple[tuple[str, ...], TagSpec]] = []

    def capability(self, name: str) -> None:
        self.capabilities.add(name)

    def command(self, spec: Spec) -> None:
        self.commands[spec.name] = spec

    def test(self, spec: Spec) -> None:
        self.tests[spec.name] = spec

    def group_tag(self, tag: TagSpec) -> None:
        """A tag offered to every command or test that accepts the tag's group."""
        self.group_tags.setdefault(tag.group or "", {})[tag.name] = tag

    def extra_tag(self, targets: tuple[str, ...], tag: TagSpec) -> None:
        """A tag an extension adds to commands or tests of other modules (:copy, :flags)."""
        self._extra_tags.append((targets, tag))

    def comparator(self, comparator: Comparator) -> None:
        self.comparators[comparator.name] = comparator

    def match_type(self, match_type: MatchType) -> None:
        self.match_types[match_type.name] = match_type

    def address_part(self, name: str, extract: Callable[[str], str | None]) -> None:
        self.address_parts[name] = extract

    def string_transform(self, capability: str, transform: Callable[[str, int], str]) -> None:
        """A compile-time rewrite of every string once `capability` is required
        (encoded-character, RFC 5228 §2.4.2.4); it gets the string and its line."""
        self.string_transforms[capability] = transform

    def expansion(self, capability: str, expand: Callable[[Runtime, str], str]) -> None:
        """A run-time rewrite of strings once `capability` is required (variables)."""
        self.expansions[capability] = expand

    def field_filter(self, select: Callable[[Node, list[Any]], list[Any]]) -> None:
        """Narrows the header fields a header, address or date test looks at (index)."""
        self.field_filters.append(select)

    def finish(self) -> None:
        for targets, tag in self._extra_tags:
            for name in targets:
                for table in (self.commands, self.tests):
                    if name in table:
                        table[name].tags[tag.name] = tag

    def tags_of(self, spec: Spec) -> dict[str, TagSpec]:
        tags = dict(spec.tags)
        for group in spec.groups:
            tags.update(self.group_tags.get(group, {}))
        return tags


_registry: Registry | None = None


def registry() -> Registry:
    """The registry with every module of `shared.sieve.extensions` loaded."""
    global _registry
    if _registry is None:
        from shared.sieve import extensions
        built = Registry()
        for module in sorted(pkgutil.iter_modules(extensions.__path__), key=lambda m: m.name):
            importlib.import_module(f"{extensions.__name__}.{module.name}").register(built)
        built.finish()
        _registry = built
    return _registry
