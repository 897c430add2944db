"""The LMTP protocol (RFC 2033) on one connection: framing, pipelining, the command loop.

Commands run one at a time in the order they came (PIPELINING, RFC 2920): while
one waits for the store, later input is held (and reading paused once much is
held), so replies always come in command order. DATA and BDAT switch the
connection to message data until the message ends. The command modules in
`gateways.lmtp.commands` do the work; this module only moves bytes.
"""
from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, protocol
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from gateways.lmtp import commands
from gateways.lmtp.grammar import MAX_COMMAND_LINE, Reply, SyntaxProblem, parse_command
from gateways.lmtp.session import Limits
from shared.authguard import in_networks
from shared.endpoints import answer_at_once
from shared.spool import BUFFER

log = logging.getLogger("gateways.lmtp")

MAX_HELD_INPUT = 1024 * 1024  # pipelined input held while a command waits; beyond it reading pauses
HANDLERS = commands.load()


class _MessageReceiver:
    """DATA: everything goes to the message until its final "."."""

    def __init__(self, content: Any, complete: Callable[[], Any]) -> None:
        self.content = content
        self.complete = complete

    needs_input = True

    def take(self, buffer: bytearray) -> bytes | None:
        rest = self.content.feed(bytes(buffer))
        buffer.clear()
        return rest


class _OctetReceiver:
    """BDAT: exactly `remaining` octets go to the message (or nowhere, for a refused chunk)."""

    def __init__(self, remaining: int, content: Any, complete: Callable[[], Any]) -> None:
        self.remaining = remaining
        self.content = content
        self.complete = complete

    @property
    def needs_input(self) -> bool:
        return self.remaining > 0

    def take(self, buffer: bytearray) -> bytes | None:
        piece = bytes(buffer[:self.remaining])
        del buffer[:len(piece)]
        self.remaining -= len(piece)
        if self.content is not None and piece:
            self.content.feed(piece)
        return bytes(buffer) if self.remaining == 0 else None


class LMTPServer(protocol.Protocol, TimeoutMixin):
    """One client connection; `factory` is the `LMTPFactory` (deliverer, limits, spool)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.client_name: str | None = None
        self.transaction: Any = None
        self.receiver: _MessageReceiver | _OctetReceiver | None = None
        self.busy = False
        self.closing = False
        self.closed = False
        self.discarding = False  # inside an overlong command line: drop up to its end
        self.bad_commands = 0
        self.paused = False
        self.processing = False
        self.counted = False  # this connection is in factory.connections
        self.peer = ""
        self.limits = Limits()

    # -- connection
    def connectionMade(self) -> None:
        answer_at_once(self.transport)
        self.limits = self.factory.limits
        peer = self.transport.getPeer()
        self.peer = getattr(peer, "host", "") or "local"
        if not self.factory.peer_trusted(peer):
            log.warning("lmtp: refused untrusted client %s", self.peer)
            self.send(Reply(554, "5.7.1", f"{self.factory.hostname} Not a trusted client"))
            self.close()
            return
        self.factory.connections += 1
        self.counted = True
        if self.factory.connections > self.limits.max_connections:
            log.warning("lmtp: too many connections, refused %s", self.peer)
            self.send(Reply(421, "4.3.2", f"{self.factory.hostname} Too many connections, try again later"))
            self.close()
            return
        self.setTimeout(self.limits.timeout or None)
        self.send(Reply(220, "", f"{self.factory.hostname} groupware LMTP ready"))

    def connectionLost(self, reason: Any = None) -> None:
        if self.counted:
            self.counted = False
            self.factory.connections -= 1
        self.closed = True
        self.setTimeout(None)
        self.reset_transaction()  # a message not ended by "." or BDAT LAST is never stored

    def timeoutConnection(self) -> None:
        self.send(Reply(421, "4.4.2", f"{self.factory.hostname} Idle timeout, closing connection"))
        self.close()

    def send(self, reply: Reply) -> None:
        if not self.closed:
            self.transport.write(reply.encode())

    def close(self) -> None:
        self.closing = True
        self.transport.loseConnection()

    # -- what command modules call
    def bad(self, reply: Reply) -> Reply:
        """Count a client error; too many close the connection after this reply."""
        self.bad_commands += 1
        return reply

    def reset_transaction(self) -> None:
        if self.transaction is not None:
            self.transaction.discard()
        self.transaction = None

    def expect_message(self, content: Any, complete: Callable[[], Any]) -> None:
        """After this command's reply, input is message data until its end."""
        self.receiver = _MessageReceiver(content, complete)

    def expect_octets(self, count: int, content: Any, complete: Callable[[], Any]) -> None:
        """The next `count` octets belong to the message (`content`, or dropped when None)."""
        self.receiver = _OctetReceiver(count, content, complete)

    def log_failure(self, failure: Any, doing: str) -> None:
        log.warning("lmtp: %s failed for %s: %s", doing, self.peer, failure.getErrorMessage())

    # -- input
    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        self.buffer += data
        if self.busy and len(self.buffer) > MAX_HELD_INPUT and not self.paused:
            self.paused = True
            self.transport.pauseProducing()
        self.process()

    def process(self) -> None:
        if self.processing:
            return  # a command that finished at once: the loop below goes on by itself
        self.processing = True
        try:
            self._process()
        finally:
            self.processing = False

    def _process(self) -> None:
        while not self.busy and not self.closing and not self.closed:
            if self.receiver is not None:
                receiver = self.receiver
                if not self.buffer and receiver.needs_input:
                    return
                rest = receiver.take(self.buffer)
                if rest is None:
                    return
                self.buffer[:] = rest
                self.receiver = None
                self.respond(defer.maybeDeferred(receiver.complete))
                continue
            end = self.buffer.find(b"\n")
            if end < 0:
                if len(self.buffer) > MAX_COMMAND_LINE:
                    self.buffer.clear()
                    if not self.discarding:
                        self.discarding = True
                        self.send(self.bad(Reply(500, "5.5.2", "Line too long")))
                        self.check_errors()
                return
            line = bytes(self.buffer[:end]).rstrip(b"\r")
            del self.buffer[:end + 1]
            if self.discarding:
                self.discarding = False
                continue
            self.respond(self.run(line))

    def run(self, line: bytes) -> defer.Deferred:
        try:
            cmd = parse_command(line)
        except SyntaxProblem as problem:
            return defer.succeed(self.bad(problem.reply))
        handler = HANDLERS.get(cmd.verb)
        if handler is None:
            return defer.succeed(self.bad(Reply(500, "5.5.1", "Command unrecognized")))
        return defer.maybeDeferred(handler, self, cmd.argument)

    def respond(self, result: defer.Deferred) -> None:
        """Write the replies of a command once it has them, then go on with held input."""
        self.busy = True
        self.setTimeout(None)  # waiting for the store is not the client being idle
        result.addBoth(self.finished)

    def finished(self, value: Any) -> None:
        self.busy = False
        if isinstance(value, Failure):  # a bug, not the client's fault
            log.error("lmtp: command failed for %s: %s", self.peer, value.getTraceback())
            value = Reply(451, "4.3.0", "Internal error, try again later")
        for reply in value if isinstance(value, list) else [value] if value is not None else []:
            self.send(reply)
        if self.closed:
            return
        if self.closing:
            self.transport.loseConnection()
            return
        self.check_errors()
        self.setTimeout(self.limits.timeout or None)
        if self.paused:
            self.paused = False
            self.transport.resumeProducing()
        self.process()

    def check_errors(self) -> None:
        if self.bad_commands >= self.limits.max_bad_commands:
            self.send(Reply(421, "4.7.0", f"{self.factory.hostname} Too many errors, closing connection"))
            self.close()


class LMTPFactory(protocol.ServerFactory):
    """What connections of one listener share. `trusted_networks` applies to TCP peers;
    UNIX socket peers are held back by the socket's file mode instead."""

    protocol = LMTPServer

    def __init__(self, deliverer: Any, limits: Limits, spool_dir: str,
                 trusted_networks: list[Any], hostname: str | None = None, spool_memory: int = BUFFER) -> None:
        self.deliverer = deliverer
        self.limits = limits
        self.spool_dir = spool_dir
        self.spool_memory = spool_memory  # octets of a message held in memory before it is spooled
        self.trusted_networks = trusted_networks
        self.hostname = hostname or socket.getfqdn()
        self.connections = 0

    def peer_trusted(self, peer: Any) -> bool:
        if not isinstance(peer, (IPv4Address, IPv6Address)):
            return True
        return in_networks(peer.host, self.trusted_networks)
