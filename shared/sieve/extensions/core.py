"""The base language (RFC 5228): control commands, keep/discard/redirect and the core tests."""
from __future__ import annotations

from shared.sieve.comparators import ASCII_CASEMAP, OCTET
from shared.sieve.errors import SieveError, SieveRuntimeError
from shared.sieve.interpreter import Runtime, Stop
from shared.sieve.matching import match, match_contains, match_is, match_matches, validate_match
from shared.sieve.message import mailbox_address, split_address
from shared.sieve.registry import MatchType, Registry, Spec, TagSpec
from shared.sieve.validator import Node, Validator

MATCH_GROUPS = ("comparator", "match-type")


def run_if(runtime: Runtime, node: Node) -> bool:
    """RFC 5228 §3.1: the block runs when the test is true; the result ends the chain."""
    if not runtime.test(node.tests[0]):
        return False
    runtime.run_block(node.block or [])
    return True


def run_else(runtime: Runtime, node: Node) -> bool:
    runtime.run_block(node.block or [])
    return True


def run_stop(runtime: Runtime, node: Node) -> None:
    raise Stop()


def run_keep(runtime: Runtime, node: Node) -> None:
    """RFC 5228 §4.3; with imap4flags the current flags go with it (RFC 5232 §5)."""
    flags = node.tags.get("flags")
    chosen = flag_list(runtime, flags) if flags is not None else tuple(runtime.flags)
    runtime.keep(node, chosen)


def run_discard(runtime: Runtime, node: Node) -> None:
    """RFC 5228 §4.4: cancels the implicit keep only."""
    runtime.discard(node)


def run_redirect(runtime: Runtime, node: Node) -> None:
    """RFC 5228 §4.2: the target must be one valid mailbox address."""
    text = runtime.expand(str(node.positional[0]))
    address = mailbox_address(text)
    if address is None:
        raise SieveRuntimeError(f"redirect to an invalid address \"{text}\"", node.line)
    runtime.redirect(node, address, copy=bool(node.tags.get("copy")))


def validate_redirect(node: Node, validator: Validator) -> None:
    text = str(node.positional[0])
    if "${" not in text and mailbox_address(text) is None:
        raise SieveError(f"redirect to an invalid address \"{text}\"", node.line)


def flag_list(runtime: Runtime, values: object) -> tuple[str, ...]:
    """Flag strings split at spaces, each once (RFC 5232 §3)."""
    seen: dict[str, str] = {}
    for value in values if isinstance(values, tuple) else (str(values),):
        for flag in runtime.expand(value).split():
            seen.setdefault(flag.lower(), flag)
    return tuple(seen.values())


def address_values(runtime: Runtime, node: Node, addresses: list[str]) -> list[str]:
    """Each address reduced to the chosen address part (RFC 5228 §2.7.4)."""
    extract = runtime.registry.address_parts[node.groups.get("address-part", "all")]
    values = []
    for address in addresses:
        part = extract(address)
        if part is not None:
            values.append(part)
    return values


def run_address(runtime: Runtime, node: Node) -> bool:
    """RFC 5228 §5.1."""
    names, keys = node.positional
    addresses: list[str] = []
    for name in names:
        fields = runtime.select_fields(node, runtime.message.addresses(runtime.expand(name)))
        for field in fields:
            addresses.extend(field)
    return match(runtime, node, address_values(runtime, node, addresses), keys)


def run_header(runtime: Runtime, node: Node) -> bool:
    """RFC 5228 §5.7."""
    names, keys = node.positional
    values: list[str] = []
    for name in names:
        values.extend(runtime.select_fields(node, runtime.message.header(runtime.expand(name))))
    return match(runtime, node, values, keys)


def run_exists(runtime: Runtime, node: Node) -> bool:
    """RFC 5228 §5.5: true only when every named header is present."""
    return all(runtime.message.has_header(runtime.expand(name)) for name in node.positional[0])


def run_size(runtime: Runtime, node: Node) -> bool:
    """RFC 5228 §5.9."""
    limit = int(node.positional[0])
    if node.groups["size"] == "over":
        return runtime.message.size > limit
    return runtime.message.size < limit


def validate_size(node: Node, validator: Validator) -> None:
    if "size" not in node.groups:
        raise SieveError("'size' needs :over or :under", node.line)


def run_allof(runtime: Runtime, node: Node) -> bool:
    return all(runtime.test(test) for test in node.tests)


def run_anyof(runtime: Runtime, node: Node) -> bool:
    return any(runtime.test(test) for test in node.tests)


def run_not(runtime: Runtime, node: Node) -> bool:
    return not runtime.test(node.tests[0])


def register(registry: Registry) -> None:
    for capability in ("comparator-i;octet", "comparator-i;ascii-casemap"):
        registry.capability(capability)
    registry.comparator(OCTET)
    registry.comparator(ASCII_CASEMAP)
    registry.group_tag(TagSpec("comparator", "string", "comparator"))
    for match_type in (MatchType("is", match_is), MatchType("contains", match_contains, True),
                       MatchType("matches", match_matches, True)):
        registry.match_type(match_type)
        registry.group_tag(TagSpec(match_type.name, None, "match-type"))
    for name, extract in (("all", lambda address: address),
                          ("localpart", lambda address: split_address(address)[0]),
                          ("domain", lambda address: split_address(address)[1])):
        registry.address_part(name, extract)
        registry.group_tag(TagSpec(name, None, "address-part"))

    registry.command(Spec("if", "command", run_if, tests="one", block=True, chain="start"))
    registry.command(Spec("elsif", "command", run_if, tests="one", block=True, chain="continue"))
    registry.command(Spec("else", "command", run_else, block=True, chain="continue"))
    registry.command(Spec("stop", "command", run_stop))
    registry.command(Spec("keep", "command", run_keep, action=True))
    registry.command(Spec("discard", "command", run_discard, action=True))
    registry.command(Spec("redirect", "command", run_redirect, positional=("string",),
                          action=True, validate=validate_redirect))

    registry.test(Spec("address", "test", run_address, positional=("strings", "strings"),
                       groups=(*MATCH_GROUPS, "address-part"), validate=validate_match))
    registry.test(Spec("header", "test", run_header, positional=("strings", "strings"),
                       groups=MATCH_GROUPS, validate=validate_match))
    registry.test(Spec("exists", "test", run_exists, positional=("strings",)))
    registry.test(Spec("size", "test", run_size, positional=("number",),
                       tags={"over": TagSpec("over", None, "size"),
                             "under": TagSpec("under", None, "size")},
                       validate=validate_size))
    registry.test(Spec("allof", "test", run_allof, tests="list"))
    registry.test(Spec("anyof", "test", run_anyof, tests="list"))
    registry.test(Spec("not", "test", run_not, tests="one"))
    registry.test(Spec("true", "test", lambda runtime, node: True))
    registry.test(Spec("false", "test", lambda runtime, node: False))
