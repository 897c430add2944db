"""The interpreter: runs a compiled script against one message (RFC 5228 §2.10, §4).

Runtime holds what a run accumulates: variables, the imap4flags internal variable, the
actions and the step count. The action rules of RFC 5228 §2.10.6 / §4.2 and RFC 5429 §2.3
are enforced here so that every extension gets them the same way.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from shared.sieve.errors import SieveRuntimeError
from shared.sieve.limits import SieveLimits
from shared.sieve.message import MessageView
from shared.sieve.outcome import Envelope, FileInto, Outcome, Vacation
from shared.sieve.registry import registry
from shared.sieve.validator import Node, Script


class Stop(Exception):
    """The `stop` command (RFC 5228 §3.3)."""


def _mailbox_key(mailbox: str) -> str:
    return "INBOX" if mailbox.upper() == "INBOX" else mailbox


class Runtime:
    def __init__(self, script: Script, message: bytes, envelope: Envelope,
                 mailbox_exists: Callable[[str], bool], now: datetime,
                 limits: SieveLimits) -> None:
        self.registry = registry()
        self.requires = script.requires
        self.message = MessageView(message)
        self.envelope = envelope
        self.mailbox_exists = mailbox_exists
        self.now = now
        self.limits = limits
        self.variables: dict[str, str] = {}
        self.match_variables: list[str] = []
        self.flags: list[str] = []
        self.steps = 0
        self.actions = 0
        self.implicit_keep = True
        self.explicit_keep: tuple[str, ...] | None = None
        self.fileinto: dict[str, FileInto] = {}
        self.redirects: list[str] = []
        self.reject: str | None = None
        self.ereject = False
        self.vacation: Vacation | None = None
        self.line = 0

    # -- running

    def step(self, count: int = 1) -> None:
        self.steps += count
        if self.steps > self.limits.max_steps:
            raise SieveRuntimeError(f"script stopped after {self.limits.max_steps} steps",
                                    self.line)

    def run_block(self, nodes: Sequence[Node]) -> None:
        branch_taken = False
        for node in nodes:
            self.line = node.line
            self.step()
            chain = node.spec.chain
            if chain == "continue" and branch_taken:
                continue
            result = node.spec.run(self, node)
            if chain is not None:
                branch_taken = bool(result)

    def test(self, node: Node) -> bool:
        self.line = node.line
        self.step()
        return bool(node.spec.run(self, node))

    def expand(self, value: str) -> str:
        for capability, expand in self.registry.expansions.items():
            if capability in self.requires:
                value = expand(self, value)
        return value

    def set_match_variables(self, values: list[str]) -> None:
        self.match_variables = values

    def select_fields(self, node: Node, fields: list) -> list:
        for select in self.registry.field_filters:
            fields = select(node, fields)
        return fields

    # -- actions

    def _action(self, node: Node) -> None:
        self.actions += 1
        if self.actions > self.limits.max_actions:
            raise SieveRuntimeError(f"more than {self.limits.max_actions} actions", node.line)

    def _no_reject(self, node: Node, what: str) -> None:
        if self.reject is not None:
            raise SieveRuntimeError(f"{what} cannot be combined with reject (RFC 5429 §2.3)",
                                    node.line)

    def keep(self, node: Node, flags: tuple[str, ...]) -> None:
        self._action(node)
        self._no_reject(node, "keep")
        previous = self.explicit_keep or ()
        self.explicit_keep = tuple(dict.fromkeys((*previous, *flags)))

    def discard(self, node: Node) -> None:
        self._action(node)
        self.implicit_keep = False

    def file_into(self, node: Node, mailbox: str, flags: tuple[str, ...], create: bool,
                  copy: bool) -> None:
        """Duplicate targets collapse into one (RFC 5228 §2.10.3)."""
        self._action(node)
        self._no_reject(node, "fileinto")
        if not mailbox:
            raise SieveRuntimeError("fileinto needs a mailbox name", node.line)
        key = _mailbox_key(mailbox)
        earlier = self.fileinto.get(key)
        if earlier is not None:
            mailbox = earlier.mailbox
            flags = tuple(dict.fromkeys((*earlier.flags, *flags)))
            create = create or earlier.create
        self.fileinto[key] = FileInto(mailbox, flags, create)
        if not copy:
            self.implicit_keep = False

    def redirect(self, node: Node, address: str, copy: bool) -> None:
        self._action(node)
        self._no_reject(node, "redirect")
        if address.lower() not in (known.lower() for known in self.redirects):
            if len(self.redirects) >= self.limits.max_redirects:
                raise SieveRuntimeError(f"more than {self.limits.max_redirects} redirects",
                                        node.line)
            self.redirects.append(address)
        if not copy:
            self.implicit_keep = False

    def reject_message(self, node: Node, reason: str, extended: bool) -> None:
        """RFC 5429 §2.3: one reject, never with a delivery or another response."""
        self._action(node)
        if self.reject is not None:
            raise SieveRuntimeError("only one reject or ereject may run", node.line)
        if self.explicit_keep is not None or self.fileinto or self.redirects:
            raise SieveRuntimeError("reject cannot be combined with keep, fileinto or redirect",
                                    node.line)
        if self.vacation is not None:
            raise SieveRuntimeError("reject cannot be combined with vacation", node.line)
        self.reject = reason
        self.ereject = extended
        self.implicit_keep = False

    def set_vacation(self, node: Node, vacation: Vacation) -> None:
        """RFC 5230 §4.7: at most one vacation response per delivery."""
        self._action(node)
        if self.vacation is not None:
            raise SieveRuntimeError("only one vacation action may run", node.line)
        if self.reject is not None:
            raise SieveRuntimeError("vacation cannot be combined with reject", node.line)
        self.vacation = vacation

    def outcome(self) -> Outcome:
        """RFC 5228 §2.10.3: keep and fileinto "INBOX" together store the message once."""
        keep = self.explicit_keep is not None or self.implicit_keep
        targets = dict(self.fileinto)
        if self.explicit_keep is not None:
            inbox = targets.pop("INBOX", None)
            extra = inbox.flags if inbox is not None else ()
            keep_flags = tuple(dict.fromkeys((*self.explicit_keep, *extra)))
        else:
            keep_flags = tuple(self.flags) if keep else ()
        return Outcome(keep=keep, keep_flags=keep_flags, fileinto=list(targets.values()),
                       redirects=list(self.redirects), reject=self.reject, ereject=self.ereject,
                       vacation=self.vacation)


def evaluate(script: Script, message: bytes, envelope: Envelope,
             mailbox_exists: Callable[[str], bool] | None = None, now: datetime | None = None,
             limits: SieveLimits | None = None) -> Outcome:
    """Run `script`; any run-time problem cancels every action and keeps the message
    (RFC 5228 §2.10.6), with the problem in `errors`."""
    moment = now or datetime.now(timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    runtime = Runtime(script, message, envelope, mailbox_exists or (lambda name: False), moment,
                      limits or script.limits)
    try:
        runtime.run_block(script.commands)
    except Stop:
        pass
    except SieveRuntimeError as error:
        return Outcome(keep=True, errors=[str(error)])
    except RecursionError:
        return Outcome(keep=True, errors=[f"line {runtime.line}: script nested too deeply"])
    except Exception as error:  # noqa: BLE001 - a script must never lose the message
        return Outcome(keep=True, errors=[f"line {runtime.line}: internal error: "
                                          f"{type(error).__name__}: {error}"])
    return runtime.outcome()
