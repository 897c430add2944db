"""index (RFC 5260 §6): :index N [:last] picks one header field for header, address, date."""
from __future__ import annotations

from typing import Any

from shared.sieve.errors import SieveError
from shared.sieve.registry import Registry, TagSpec
from shared.sieve.validator import Node, Validator

TARGETS = ("header", "address", "date")


def select(node: Node, fields: list[Any]) -> list[Any]:
    """Field N counted from the top, or from the bottom with :last; none if out of range."""
    if "index" not in node.tags:
        return fields
    index = int(str(node.tags["index"]))
    position = len(fields) - index if "last" in node.tags else index - 1
    return [fields[position]] if 0 <= position < len(fields) else []


def validate_index(node: Node, validator: Validator) -> None:
    if node.name not in TARGETS:
        return
    if "last" in node.tags and "index" not in node.tags:
        raise SieveError("':last' needs ':index'", node.line)
    if "index" in node.tags and int(str(node.tags["index"])) < 1:
        raise SieveError("':index' counts from 1", node.line)


def register(registry: Registry) -> None:
    registry.capability("index")
    registry.extra_tag(TARGETS, TagSpec("index", "number", None, "index"))
    registry.extra_tag(TARGETS, TagSpec("last", None, None, "index"))
    registry.field_filter(select)
    registry.validators.append(validate_index)
