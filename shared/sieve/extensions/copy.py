"""copy (RFC 3894): fileinto and redirect with :copy leave the implicit keep alone."""
from __future__ import annotations

from shared.sieve.registry import Registry, TagSpec


def register(registry: Registry) -> None:
    registry.capability("copy")
    registry.extra_tag(("fileinto", "redirect"), TagSpec("copy", capability="copy"))
