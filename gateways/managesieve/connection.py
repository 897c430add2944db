"""One ManageSieve connection (RFC 5804): reading commands, their order, the states, limits.

Commands run one at a time in the order they came (a client may pipeline them); each
lives in a module of `gateways.managesieve.commands` and reaches the store only through
the user's `shared` session. The connection enforces the limits: line and literal size
(`CommandReader`), idle time, and commands before a login.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from twisted.internet import protocol
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from gateways.managesieve import commands
from gateways.managesieve.arguments import Arguments, BadArguments
from gateways.managesieve.parsing import Atom, CommandReader, InputError, Line
from gateways.managesieve.responses import QUOTA_MAXSIZE, response
from shared.endpoints import answer_at_once
from shared.serialcommands import SerialCommands

log = logging.getLogger("gateways.managesieve")


SaslStep = Callable[[Line], Any]


class ManageSieveConnection(SerialCommands, protocol.Protocol, TimeoutMixin):
    """`factory` is the `ManageSieveFactory`: login service, TLS options, limits."""

    command_log = log
    protocol_name = "managesieve"
    max_queued = 100

    def __init__(self) -> None:
        self.session: Any = None  # the user's store session once authenticated
        self.tls_active = False
        self.peer_host = ""
        self.closed = False
        self.init_commands()
        self.sasl: SaslStep | None = None  # the next step of a running AUTHENTICATE
        self.commands_before_login = 0
        self.reader: CommandReader | None = None

    # -- connection
    def connectionMade(self) -> None:
        factory = self.factory
        self.tls_active = factory.implicit_tls
        self.peer_host = getattr(self.transport.getPeer(), "host", "") or ""
        self.reader = CommandReader(factory.max_line, factory.max_script_size)
        answer_at_once(self.transport)
        self.setTimeout(self.idle_timeout())
        # RFC 5804 §1.7: the greeting is the capability list and OK.
        commands.capability.send_capabilities(self, "groupware ManageSieve ready.")

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.closed = True
        self.setTimeout(None)
        self.end_session()

    def end_session(self) -> None:
        if self.session is not None:
            session, self.session = self.session, None
            session.logoff()

    def say_goodbye(self) -> None:
        self.bye("Server shutting down.", "TRYLATER")  # RFC 5804 §1.3: come back later

    def timeoutConnection(self) -> None:
        self.send(response("BYE", None, "Disconnected for inactivity."))
        self.transport.loseConnection()

    # -- output
    def send(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)

    def ok(self, text: str | None = None, code: str | bytes | None = None) -> None:
        self.send(response("OK", code, text))

    def no(self, text: str, code: str | bytes | None = None) -> None:
        self.send(response("NO", code, text))

    def bye(self, text: str, code: str | None = None) -> None:
        self.send(response("BYE", code, text))
        self.close()

    def close(self) -> None:
        """Hang up once what was written is sent; nothing more of what is buffered runs."""
        self.transport.loseConnection()
        self.closed = True

    # -- state
    @property
    def authenticated(self) -> bool:
        return self.session is not None

    def plaintext_allowed(self) -> bool:
        return self.factory.plaintext_allowed(self.tls_active, self.peer_host)

    def idle_timeout(self) -> int:
        return self.factory.timeout if self.authenticated else self.factory.login_timeout

    def logged_in(self, session: Any) -> None:
        self.session = session
        self.setTimeout(self.idle_timeout())

    def logged_out(self) -> None:
        """Back to the non-authenticated state (UNAUTHENTICATE, RFC 5804 §2.14.1)."""
        self.end_session()
        self.commands_before_login = 0
        self.setTimeout(self.idle_timeout())

    def start_tls(self) -> None:
        """Switch to TLS now; what the client sent before the handshake is dropped, so it
        cannot run as if it came over TLS (the STARTTLS injection of CVE-2011-0411)."""
        self.reader.reset()  # type: ignore[union-attr]
        self.drop_queued()
        self.transport.startTLS(self.factory.tls_options)
        self.tls_active = True

    # -- input
    def dataReceived(self, data: bytes) -> None:
        if self.closed:
            return
        self.resetTimeout()
        self.take(self.reader.feed(data))  # type: ignore[union-attr]

    def internal_error(self) -> None:
        self.no("Internal error.")

    def dispatch(self, item: Line | InputError) -> Any:
        if self.sasl is not None:
            step, self.sasl = self.sasl, None
            if isinstance(item, InputError):
                return self.no(f"Authentication aborted: {item.message}.")
            return step(item)
        if isinstance(item, InputError):
            return self.no(item.message, QUOTA_MAXSIZE if item.literal_too_large else None)
        if not self.authenticated:
            self.commands_before_login += 1
            if self.commands_before_login > self.factory.max_login_commands:
                return self.bye("Too many commands without logging in.")
        first, *rest = item.tokens
        if not isinstance(first, Atom):
            return self.no("A command starts with its name.")
        command = commands.REGISTRY.get(first.upper())
        if command is None:
            return self.no(f"Unknown command {first[:32]!r}.")
        if command.authenticated is not None and command.authenticated != self.authenticated:
            return self.no(f"{command.name} is allowed only "
                           + ("after" if command.authenticated else "before") + " logging in.")
        try:
            return command.run(self, Arguments(command.name, rest))
        except BadArguments as bad:
            return self.no(str(bad))
