"""The ManageSieve commands (RFC 5804 §2), one module per family, and the table the
connection dispatches from."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Command", "REGISTRY", "capability"]


@dataclass(frozen=True)
class Command:
    name: str
    run: Callable[[Any, Any], Any]  # (connection, Arguments) -> None or a Deferred
    authenticated: bool | None  # True: only after a login, False: only before, None: always


REGISTRY: dict[str, Command] = {}


def command(name: str, authenticated: bool | None) -> Callable[[Callable], Callable]:
    """Registers the decorated function as the handler of `name`."""
    def register(run: Callable) -> Callable:
        REGISTRY[name] = Command(name, run, authenticated)
        return run
    return register


# Imported for their registrations.
from gateways.managesieve.commands import (  # noqa: E402
    authenticate, capability, general, putscript, scripts, starttls,
)
