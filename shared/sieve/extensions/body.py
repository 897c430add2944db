"""body (RFC 5173): tests on the message body with :raw, :content and :text transforms."""
from __future__ import annotations

from shared.sieve.extensions.core import MATCH_GROUPS
from shared.sieve.interpreter import Runtime
from shared.sieve.matching import match, validate_match
from shared.sieve.registry import Registry, Spec, TagSpec
from shared.sieve.validator import Node


def run_body(runtime: Runtime, node: Node) -> bool:
    """RFC 5173 §5: :text (default) is every text part decoded; :raw the undecoded body."""
    transform = node.groups.get("body-transform", "text")
    if transform == "raw":
        values = [runtime.message.raw_body()]
    elif transform == "content":
        types = tuple(runtime.expand(kind) for kind in node.tags["content"])
        values = runtime.message.parts(types)
    else:
        values = runtime.message.parts(("text",))
    runtime.step(1 + sum(len(value) for value in values) // 4096)
    return match(runtime, node, values, node.positional[0])


def register(registry: Registry) -> None:
    registry.capability("body")
    registry.test(Spec("body", "test", run_body, capability="body", positional=("strings",),
                       groups=MATCH_GROUPS, validate=validate_match,
                       tags={"raw": TagSpec("raw", None, "body-transform"),
                             "content": TagSpec("content", "strings", "body-transform"),
                             "text": TagSpec("text", None, "body-transform")}))
