"""relational (RFC 5231): the :count and :value match types."""
from __future__ import annotations

from collections.abc import Callable, Sequence

from shared.sieve.comparators import Comparator
from shared.sieve.errors import SieveError
from shared.sieve.interpreter import Runtime
from shared.sieve.registry import MatchType, Registry, TagSpec
from shared.sieve.validator import Node, Validator

RELATIONS = {
    "gt": lambda order: order > 0, "ge": lambda order: order >= 0,
    "lt": lambda order: order < 0, "le": lambda order: order <= 0,
    "eq": lambda order: order == 0, "ne": lambda order: order != 0,
}


def _relation(argument: object) -> Callable[[int], bool]:
    relation = RELATIONS.get(str(argument).lower())
    if relation is None:
        raise ValueError(f"unknown relational match \"{argument}\"")
    return relation


def match_value(runtime: Runtime, comparator: Comparator, values: Sequence[str],
                keys: Sequence[str], argument: object) -> bool:
    """RFC 5231 §4.2: true when any value stands in the relation to any key."""
    relation = _relation(argument)
    for value in values:
        for key in keys:
            runtime.step()
            if relation(comparator.compare(value, key)):
                return True
    return False


def match_count(runtime: Runtime, comparator: Comparator, values: Sequence[str],
                keys: Sequence[str], argument: object) -> bool:
    """RFC 5231 §4.1: the number of values, compared as a decimal string."""
    return match_value(runtime, comparator, [str(len(values))], keys, argument)


def validate_relation(node: Node, validator: Validator) -> None:
    name = node.groups.get("match-type")
    if name in ("count", "value"):
        argument = str(node.tags[name])
        if "${" not in argument and argument.lower() not in RELATIONS:
            raise SieveError(f"unknown relational match \"{argument}\" "
                             f"(use gt, ge, lt, le, eq or ne)", node.line)


def register(registry: Registry) -> None:
    registry.capability("relational")
    for match_type in (MatchType("value", match_value),
                       MatchType("count", match_count)):
        registry.match_type(match_type)
        registry.group_tag(TagSpec(match_type.name, "string", "match-type", "relational"))
    registry.validators.append(validate_relation)
