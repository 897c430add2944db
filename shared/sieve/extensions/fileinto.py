"""fileinto (RFC 5228 §4.1), with :copy (RFC 3894), :create (RFC 5490) and :flags (RFC 5232)."""
from __future__ import annotations

from shared.sieve.extensions.core import flag_list
from shared.sieve.interpreter import Runtime
from shared.sieve.registry import Registry, Spec
from shared.sieve.validator import Node


def run_fileinto(runtime: Runtime, node: Node) -> None:
    mailbox = runtime.expand(str(node.positional[0]))
    flags = node.tags.get("flags")
    chosen = flag_list(runtime, flags) if flags is not None else tuple(runtime.flags)
    runtime.file_into(node, mailbox, chosen, create=bool(node.tags.get("create")),
                      copy=bool(node.tags.get("copy")))


def register(registry: Registry) -> None:
    registry.capability("fileinto")
    registry.command(Spec("fileinto", "command", run_fileinto, capability="fileinto",
                          positional=("string",), action=True))
