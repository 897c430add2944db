"""subaddress (RFC 5233): the :user and :detail address parts, "+" separated."""
from __future__ import annotations

from shared.sieve.message import split_address
from shared.sieve.registry import Registry, TagSpec

SEPARATOR = "+"


def user_part(address: str) -> str:
    return split_address(address)[0].split(SEPARATOR, 1)[0]


def detail_part(address: str) -> str | None:
    """None (never matches) without a separator; "" for "user+@domain" (RFC 5233 §4)."""
    local = split_address(address)[0]
    if SEPARATOR not in local:
        return None
    return local.split(SEPARATOR, 1)[1]


def register(registry: Registry) -> None:
    registry.capability("subaddress")
    registry.address_part("user", user_part)
    registry.address_part("detail", detail_part)
    registry.group_tag(TagSpec("user", None, "address-part", "subaddress"))
    registry.group_tag(TagSpec("detail", None, "address-part", "subaddress"))
