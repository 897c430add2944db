"""LMTP commands, one module per family; each registers its verbs here.

A handler takes the connection (`gateways.lmtp.server.LMTPServer`) and the
argument text, and returns a Reply, a list of Replies, or a Deferred of either.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

Handler = Callable[[Any, str], Any]
COMMANDS: dict[str, Handler] = {}


def command(*verbs: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for verb in verbs:
            COMMANDS[verb] = handler
        return handler
    return register


def load() -> dict[str, Handler]:
    """Every command module imported, so each has registered itself."""
    from gateways.lmtp.commands import data, envelope, hello, misc  # noqa: F401
    return COMMANDS
