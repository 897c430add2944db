"""vacation (RFC 5230) and vacation-seconds (RFC 6131): the action; replies are composed by
`shared.sieve.vacation`."""
from __future__ import annotations

import hashlib

from shared.sieve.errors import SieveError, SieveRuntimeError
from shared.sieve.interpreter import Runtime
from shared.sieve.message import mailbox_address
from shared.sieve.outcome import Vacation
from shared.sieve.registry import Registry, Spec, TagSpec
from shared.sieve.validator import Node, Validator

DAY = 86400
DEFAULT_DAYS = 7
MAX_SECONDS = 365 * DAY     # a longer period is clamped (RFC 5230 §4.1 lets sites bound it)


def _period(node: Node) -> int:
    """RFC 5230 §4.1: :days at least 1; RFC 6131: :seconds may be 0."""
    if "seconds" in node.tags:
        seconds = int(str(node.tags["seconds"]))
    else:
        seconds = max(1, int(str(node.tags.get("days", DEFAULT_DAYS)))) * DAY
    return min(seconds, MAX_SECONDS)


def default_handle(reason: str, subject: str | None, from_: str | None, mime: bool) -> str:
    """RFC 5230 §4.2: without :handle, a changed reason, subject or :from is a new response."""
    digest = hashlib.sha256("\0".join((reason, subject or "", from_ or "", str(mime)))
                            .encode("utf-8", "surrogatepass"))
    return "auto-" + digest.hexdigest()[:32]


def run_vacation(runtime: Runtime, node: Node) -> None:
    reason = runtime.expand(str(node.positional[0]))
    subject = node.tags.get("subject")
    subject = runtime.expand(str(subject)) if subject is not None else None
    from_ = node.tags.get("from")
    from_ = runtime.expand(str(from_)) if from_ is not None else None
    if from_ is not None and mailbox_address(from_) is None:
        raise SieveRuntimeError(f"vacation :from \"{from_}\" is not an address", node.line)
    addresses = tuple(runtime.expand(address)
                      for address in node.tags.get("addresses", ()))  # type: ignore[union-attr]
    mime = bool(node.tags.get("mime"))
    handle = node.tags.get("handle")
    handle = runtime.expand(str(handle)) if handle is not None else \
        default_handle(reason, subject, from_, mime)
    runtime.set_vacation(node, Vacation(reason=reason, subject=subject, from_=from_,
                                        addresses=addresses, seconds=_period(node),
                                        handle=handle, mime=mime))


def validate_vacation(node: Node, validator: Validator) -> None:
    from_ = node.tags.get("from")
    if from_ is not None and "${" not in str(from_) and mailbox_address(str(from_)) is None:
        raise SieveError(f"vacation :from \"{from_}\" is not an address", node.line)


def register(registry: Registry) -> None:
    registry.capability("vacation")
    registry.capability("vacation-seconds")
    registry.command(Spec(
        "vacation", "command", run_vacation, capability="vacation", positional=("string",),
        action=True, validate=validate_vacation,
        tags={"days": TagSpec("days", "number", "period"),
              "seconds": TagSpec("seconds", "number", "period", "vacation-seconds"),
              "subject": TagSpec("subject", "string"),
              "from": TagSpec("from", "string"),
              "addresses": TagSpec("addresses", "strings"),
              "mime": TagSpec("mime"),
              "handle": TagSpec("handle", "string")}))
