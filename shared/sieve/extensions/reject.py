"""reject and ereject (RFC 5429 §2.1, §2.2): refuse the message with a reason."""
from __future__ import annotations

from shared.sieve.interpreter import Runtime
from shared.sieve.registry import Registry, Spec
from shared.sieve.validator import Node


def run_reject(runtime: Runtime, node: Node) -> None:
    runtime.reject_message(node, runtime.expand(str(node.positional[0])), extended=False)


def run_ereject(runtime: Runtime, node: Node) -> None:
    runtime.reject_message(node, runtime.expand(str(node.positional[0])), extended=True)


def register(registry: Registry) -> None:
    registry.capability("reject")
    registry.capability("ereject")
    registry.command(Spec("reject", "command", run_reject, capability="reject",
                          positional=("string",), action=True))
    registry.command(Spec("ereject", "command", run_ereject, capability="ereject",
                          positional=("string",), action=True))
