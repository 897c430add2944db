"""comparator-i;ascii-numeric (RFC 4790 §9.1, RFC 5228 §2.7.3)."""
from __future__ import annotations

from shared.sieve.comparators import ASCII_NUMERIC
from shared.sieve.registry import Registry


def register(registry: Registry) -> None:
    registry.capability("comparator-i;ascii-numeric")
    registry.comparator(ASCII_NUMERIC)
