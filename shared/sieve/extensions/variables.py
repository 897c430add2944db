"""variables (RFC 5229): ${name} and ${N} in strings, `set` with modifiers, the string test."""
from __future__ import annotations

import re

from shared.sieve.errors import SieveError
from shared.sieve.extensions.core import MATCH_GROUPS
from shared.sieve.interpreter import Runtime
from shared.sieve.matching import match, validate_match
from shared.sieve.registry import Registry, Spec, TagSpec
from shared.sieve.validator import Node, Validator

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.]*|[0-9]+)\}")


def expand(runtime: Runtime, value: str) -> str:
    """RFC 5229 §3: one pass, unknown names expand to ""; `${` without a name stays."""
    if "${" not in value:
        return value

    def replace(found: re.Match[str]) -> str:
        name = found.group(1)
        if name.isdigit():
            index = int(name) if len(name) < 6 else -1
            matched = runtime.match_variables
            return matched[index] if 0 <= index < len(matched) else ""
        return runtime.variables.get(name.lower(), "")

    # A short string naming a long variable many times must not grow without bound.
    limit = len(value) + 4 * runtime.limits.max_variable_size
    return _REFERENCE.sub(replace, value)[:limit]


def _quote_wildcards(value: str) -> str:
    return re.sub(r"([*?\\])", r"\\\1", value)


# RFC 5229 §4.1: applied from the highest precedence down.
_MODIFIERS = (
    ("lower", str.lower), ("upper", str.upper),
    ("lowerfirst", lambda value: value[:1].lower() + value[1:]),
    ("upperfirst", lambda value: value[:1].upper() + value[1:]),
    ("quotewildcard", _quote_wildcards),
    ("length", lambda value: str(len(value))),
)
_GROUPS = {"lower": "case", "upper": "case", "lowerfirst": "first", "upperfirst": "first",
           "quotewildcard": "quote", "length": "length"}


def run_set(runtime: Runtime, node: Node) -> None:
    name, value = str(node.positional[0]).lower(), runtime.expand(str(node.positional[1]))
    for modifier, apply in _MODIFIERS:
        if modifier in node.tags:
            value = apply(value)
    runtime.variables[name] = value[:runtime.limits.max_variable_size]


def validate_set(node: Node, validator: Validator) -> None:
    name = str(node.positional[0])
    if not _IDENTIFIER.match(name):
        raise SieveError(f"\"{name}\" is not a variable name", node.line)


def run_string(runtime: Runtime, node: Node) -> bool:
    """RFC 5229 §5: with :count, only non-empty strings count."""
    sources, keys = node.positional
    values = [runtime.expand(source) for source in sources]
    if node.groups.get("match-type") == "count":
        values = [value for value in values if value]
    return match(runtime, node, values, keys)


def register(registry: Registry) -> None:
    registry.capability("variables")
    registry.expansion("variables", expand)
    registry.command(Spec("set", "command", run_set, capability="variables",
                          positional=("string", "string"), validate=validate_set,
                          tags={name: TagSpec(name, None, f"modifier-{group}")
                                for name, group in _GROUPS.items()}))
    registry.test(Spec("string", "test", run_string, capability="variables",
                       positional=("strings", "strings"), groups=MATCH_GROUPS,
                       validate=validate_match))
