"""envelope (RFC 5228 §5.4): tests on the SMTP/LMTP envelope."""
from __future__ import annotations

from shared.sieve.errors import SieveError
from shared.sieve.extensions.core import MATCH_GROUPS, address_values
from shared.sieve.interpreter import Runtime
from shared.sieve.matching import match, validate_match
from shared.sieve.registry import Registry, Spec
from shared.sieve.validator import Node, Validator

PARTS = ("from", "to")


def _envelope_part(runtime: Runtime, part: str) -> list[str]:
    envelope = runtime.envelope
    address = envelope.sender if part == "from" else envelope.recipient
    return [address.strip().removeprefix("<").removesuffix(">")]


def run_envelope(runtime: Runtime, node: Node) -> bool:
    """The null reverse-path is "" for :all and has no local part or domain."""
    parts, keys = node.positional
    values: list[str] = []
    for part in parts:
        part = runtime.expand(part).lower()
        if part not in PARTS:
            continue
        addresses = _envelope_part(runtime, part)
        if addresses == [""]:
            if node.groups.get("address-part", "all") == "all":
                values.append("")
            continue
        values.extend(address_values(runtime, node, addresses))
    return match(runtime, node, values, keys)


def validate_envelope(node: Node, validator: Validator) -> None:
    validate_match(node, validator)
    for part in node.positional[0]:
        if "${" not in part and part.lower() not in PARTS:
            raise SieveError(f"unknown envelope part \"{part}\" (use \"from\" or \"to\")",
                             node.line)


def register(registry: Registry) -> None:
    registry.capability("envelope")
    registry.test(Spec("envelope", "test", run_envelope, capability="envelope",
                       positional=("strings", "strings"),
                       groups=(*MATCH_GROUPS, "address-part"), validate=validate_envelope))
