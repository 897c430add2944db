"""imap4flags (RFC 5232): setflag/addflag/removeflag, hasflag, and :flags on keep/fileinto."""
from __future__ import annotations

from shared.sieve.errors import SieveError
from shared.sieve.extensions.core import MATCH_GROUPS, flag_list
from shared.sieve.interpreter import Runtime
from shared.sieve.matching import match, validate_match
from shared.sieve.registry import Registry, Spec, TagSpec
from shared.sieve.validator import Node, Validator


def _current(runtime: Runtime, node: Node) -> tuple[str | None, tuple[str, ...]]:
    """The variable the command works on (None: the internal one) and its flags."""
    if len(node.positional) == 2:
        name = runtime.expand(str(node.positional[0])).lower()
        return name, flag_list(runtime, runtime.variables.get(name, ""))
    return None, tuple(runtime.flags)


def _store(runtime: Runtime, name: str | None, flags: tuple[str, ...]) -> None:
    if name is None:
        runtime.flags = list(flags)
    else:
        runtime.variables[name] = " ".join(flags)[:runtime.limits.max_variable_size]


def run_setflag(runtime: Runtime, node: Node) -> None:
    name, _ = _current(runtime, node)
    _store(runtime, name, flag_list(runtime, node.positional[-1]))


def run_addflag(runtime: Runtime, node: Node) -> None:
    name, flags = _current(runtime, node)
    _store(runtime, name, flag_list(runtime, (*flags, *node.positional[-1])))


def run_removeflag(runtime: Runtime, node: Node) -> None:
    """Flags compare case-insensitively (RFC 5232 §3)."""
    name, flags = _current(runtime, node)
    removed = {flag.lower() for flag in flag_list(runtime, node.positional[-1])}
    _store(runtime, name, tuple(flag for flag in flags if flag.lower() not in removed))


def run_hasflag(runtime: Runtime, node: Node) -> bool:
    """RFC 5232 §4: the flags of the named variables (or the internal one) against keys."""
    if len(node.positional) == 2:
        flags: list[str] = []
        for name in node.positional[0]:
            flags.extend(flag_list(runtime, runtime.variables.get(runtime.expand(name).lower(),
                                                                  "")))
    else:
        flags = list(runtime.flags)
    if node.groups.get("match-type", "is") in ("count", "value"):
        return match(runtime, node, flags, node.positional[-1])
    keys = [flag for key in node.positional[-1] for flag in runtime.expand(key).split()]
    return match(runtime, node, flags, keys)


def validate_variable_form(node: Node, validator: Validator) -> None:
    if len(node.positional) == 2 and not validator.has("variables"):
        raise SieveError(f"'{node.name}' with a variable name needs require \"variables\"",
                         node.line)


def validate_hasflag(node: Node, validator: Validator) -> None:
    validate_variable_form(node, validator)
    validate_match(node, validator)


def register(registry: Registry) -> None:
    registry.capability("imap4flags")
    for name, run in (("setflag", run_setflag), ("addflag", run_addflag),
                      ("removeflag", run_removeflag)):
        registry.command(Spec(name, "command", run, capability="imap4flags",
                              positional=("string", "strings"), optional_leading=1,
                              validate=validate_variable_form))
    registry.test(Spec("hasflag", "test", run_hasflag, capability="imap4flags",
                       positional=("strings", "strings"), optional_leading=1,
                       groups=MATCH_GROUPS, validate=validate_hasflag))
    registry.extra_tag(("keep", "fileinto"), TagSpec("flags", "strings", None, "imap4flags"))
