"""Which module answers which IMAP command, and which capabilities are advertised.

Every command or command family lives in a module of its own under
`gateways/imap/commands/` (`fetch`, `store`, `search`, `list_status`, ...) and
registers itself on import:

    from gateways.imap.dispatch import SELECTED, command, capability, No

    @command("FETCH", states=SELECTED, uid=True, expunge_after=False)
    async def fetch(conn: "IMAPConnection", cmd: Command) -> Reply | None:
        ...

    capability("CONDSTORE")

`command(name, states, uid=False, expunge_after=True)` registers a handler for the
upper-case command `name` (as `Command.name`, without the UID prefix):

- `states`: the connection states it is allowed in (`NOT_AUTHENTICATED`,
  `AUTHENTICATED`, `SELECTED`, or the unions `ANY`, `AUTHENTICATED_OR_SELECTED`);
  elsewhere the protocol answers `BAD` without calling it.
- `uid`: whether the `UID` prefix is accepted (`cmd.uid` tells which form came).
- `expunge_after`: whether pending EXPUNGE (or VANISHED) responses may be sent
  when the command completes. RFC 3501 §7.4.1 forbids them after FETCH, STORE and
  SEARCH; their UID forms may have them, so for those commands pass
  `expunge_after=False` and the protocol allows expunges when `cmd.uid` is set.

The handler gets the connection (`gateways.imap.connection.IMAPConnection`, imported
under `TYPE_CHECKING` so that the command modules and the connection do not import
each other) and the
parsed `gateways.imap.grammar.Command`. It may be a plain function or `async def`
(awaiting Deferreds). It writes untagged data with `conn.untagged(...)` /
`conn.send(...)`, pacing long output with `await conn.writer.writable()`, and
returns None (tagged `OK <NAME> completed`) or a `Reply` for another OK text or
response code. Failures are raised: `No(text, code)` / `Bad(text, code)`. Store
errors (`shared.errors`) that escape a handler are mapped once, by the protocol:
Unavailable -> `NO [UNAVAILABLE]`, NotFound -> `NO [NONEXISTENT]`, Forbidden ->
`NO [NOPERM]`, Quota and StorageFull (a full disk) -> `NO [OVERQUOTA]`, TooLarge ->
`NO [TOOBIG]`, anything else -> `NO [SERVERBUG]`. Before the tagged reply the protocol flushes the selected
mailbox's pending untagged updates (see `gateways.imap.selected`).

`capability(name, when=None)` adds a capability to CAPABILITY and the greeting;
`when(conn) -> bool | str` decides per connection and moment (e.g. STARTTLS only before
TLS); a str from `when` is advertised in place of `name` (`APPENDLIMIT=1000`).
Register a capability in the module that makes it work, so nothing is
advertised that is not there.

`after_command(name, hook)` has `hook(conn, cmd)` called after each command `name`
that completed with OK, before the next one runs (NOTIFY tells other sessions of a
CREATE or SUBSCRIBE this way, without the command knowing). `after_updates(hook)` has
`hook(conn, top_uid)` called whenever the selected mailbox's updates were written
(`top_uid` the highest uid the client knew before them): NOTIFY's MessageNew fetches
and the updates of kept searches (CONTEXT=SEARCH) start there.

The modules in `COMMAND_MODULES` are imported by `load()` when the gateway starts;
a new command family adds its module name there. Helpers that several families use
(the selected-mailbox view `selected`, `tree`, `output`, `framing`) stay in
`gateways.imap`; the command grammar is `gateways.imap.grammar`.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateways.imap.connection import IMAPConnection

NOT_AUTHENTICATED = "not authenticated"
AUTHENTICATED = "authenticated"
SELECTED = "selected"
LOGOUT = "logout"
ANY = frozenset({NOT_AUTHENTICATED, AUTHENTICATED, SELECTED})
AUTHENTICATED_OR_SELECTED = frozenset({AUTHENTICATED, SELECTED})

COMMAND_MODULES = (
    "gateways.imap.commands.general",
    "gateways.imap.commands.auth",
    "gateways.imap.commands.list_status",
    "gateways.imap.commands.mailboxes",
    "gateways.imap.commands.select",
    "gateways.imap.commands.expunge",
    "gateways.imap.commands.fetch",
    "gateways.imap.commands.store",
    "gateways.imap.commands.idle",
    "gateways.imap.qresync",
    "gateways.imap.commands.search",
    "gateways.imap.commands.append",
    "gateways.imap.commands.copy_move",
    "gateways.imap.commands.replace",
    "gateways.imap.objectid",
    "gateways.imap.commands.compress",
    "gateways.imap.utf8",
    "gateways.imap.commands.sort_thread",
    "gateways.imap.commands.quota",
    "gateways.imap.commands.notify",
    "gateways.imap.commands.search_context",
    "gateways.imap.commands.acl",
)


@dataclass(frozen=True)
class Reply:
    """A tagged completion: status OK, NO or BAD, optional response code, text."""
    status: str = "OK"
    text: str = ""
    code: str | None = None


class CommandFailed(Exception):
    status = "NO"

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code

    def reply(self) -> Reply:
        return Reply(self.status, self.text, self.code)


class No(CommandFailed):
    """The command was understood but failed: tagged NO."""
    status = "NO"


def unavailable() -> No:
    """The store could not answer: the client should try again, nothing is wrong with it."""
    return No("Temporary failure, please try again later.", "UNAVAILABLE")


class Bad(CommandFailed):
    """The command was not acceptable: tagged BAD."""
    status = "BAD"


Handler = Callable[["IMAPConnection", Any], Any]


@dataclass(frozen=True)
class CommandSpec:
    name: str
    handler: Handler
    states: frozenset[str]
    uid: bool
    expunge_after: bool


COMMANDS: dict[str, CommandSpec] = {}
AFTER_COMMAND: dict[str, list[Handler]] = {}
AFTER_UPDATES: list[Callable[["IMAPConnection", int], Any]] = []
CAPABILITIES: list[tuple[str, Callable[["IMAPConnection"], bool | str] | None]] = []


def command(name: str, states: frozenset[str] | str, uid: bool = False,
            expunge_after: bool = True) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of `name` (see the module doc)."""
    allowed = frozenset({states}) if isinstance(states, str) else frozenset(states)

    def register(handler: Handler) -> Handler:
        COMMANDS[name.upper()] = CommandSpec(name.upper(), handler, allowed, uid, expunge_after)
        return handler
    return register


def after_command(name: str, hook: Handler) -> None:
    """Call `hook(conn, cmd)` whenever the command `name` completes with OK."""
    AFTER_COMMAND.setdefault(name.upper(), []).append(hook)


def after_updates(hook: Callable[["IMAPConnection", int], Any]) -> None:
    """Call `hook(conn, top_uid)` after the selected mailbox's updates are written."""
    AFTER_UPDATES.append(hook)


def capability(name: str, when: Callable[["IMAPConnection"], bool | str] | None = None) -> None:
    """Advertise `name`, always or when `when(conn)` is true; registering again replaces."""
    for i, (existing, _) in enumerate(CAPABILITIES):
        if existing == name:
            CAPABILITIES[i] = (name, when)
            return
    CAPABILITIES.append((name, when))


def capabilities(conn: "IMAPConnection") -> list[str]:
    """What this connection may use right now, in registration order."""
    out = []
    for name, when in CAPABILITIES:
        shown = True if when is None else when(conn)
        if shown:
            out.append(shown if isinstance(shown, str) else name)
    return out


def advertised(conn: "IMAPConnection", name: str) -> bool:
    return any(existing == name and (when is None or when(conn)) for existing, when in CAPABILITIES)


def load() -> None:
    """Import every command module once, so each registers its commands."""
    for module in COMMAND_MODULES:
        importlib.import_module(module)
