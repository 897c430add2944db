"""mailbox (RFC 5490 §3): the mailboxexists test and fileinto :create."""
from __future__ import annotations

from shared.sieve.interpreter import Runtime
from shared.sieve.registry import Registry, Spec, TagSpec
from shared.sieve.validator import Node


def run_mailboxexists(runtime: Runtime, node: Node) -> bool:
    """True only when every named mailbox exists (RFC 5490 §3.1)."""
    for name in node.positional[0]:
        runtime.step()
        if not runtime.mailbox_exists(runtime.expand(name)):
            return False
    return True


def register(registry: Registry) -> None:
    registry.capability("mailbox")
    registry.test(Spec("mailboxexists", "test", run_mailboxexists, capability="mailbox",
                       positional=("strings",)))
    registry.extra_tag(("fileinto",), TagSpec("create", capability="mailbox"))
