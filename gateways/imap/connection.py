"""One IMAP client connection: state, command dispatch, output pacing (RFC 3501 §3, §5.5).

Our own Twisted protocol (not `twisted.mail.imap4.IMAP4Server`). Bytes go through
`framing.CommandFramer`; each complete command is parsed by
`grammar.parse_command` and handed to the handler registered for its name in
`dispatch` (one module per command family). One command runs at a time; later
pipelined commands wait in the framer, and when that backlog or the unsent output
(`output.ResponseWriter`) grows, the connection stops reading from the socket.

Attributes command modules use:

- `state`: `dispatch.NOT_AUTHENTICATED`, `AUTHENTICATED`, `SELECTED` or `LOGOUT`.
- `session` (`shared.model.Session`) and `store` (`shared.model.Store`) once logged in.
- `selected`: the `selected.SelectedMailbox` in the selected state, else None.
- `enabled`: capabilities the client turned on with ENABLE (`CONDSTORE`, `QRESYNC`);
  `enable_condstore()` for the commands that turn CONDSTORE on by being used.
- `writer`: the `ResponseWriter`; `send(bytes)`, `untagged(bytes)` write through it.
- `read_line()` -> Deferred of the next line (AUTHENTICATE continuations);
  `read_lines(callback)` / `stop_reading_lines()` hand every line to `callback`
  while a command runs (IDLE waiting for DONE).
- `flush_updates(expunge)` writes the selected mailbox's pending untagged updates
  at once (IDLE pushes them this way).
- `notify`: the `notify.Notifications` of a NOTIFY SET, else None.
- `after_reply(hook)` runs `hook()` right after the running command's tagged reply
  (STARTTLS starts the handshake there); `run(raw)` runs one more framed command.
- `select(box)` / `deselect()` enter and leave the selected state; `logged_in()` and
  `logout()` and `unauthenticated()` the other state changes; `plaintext_allowed()` says whether LOGIN may run.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, protocol
from twisted.internet.error import ConnectionDone
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from gateways.imap import dispatch, rev2
from gateways.imap.dispatch import (AUTHENTICATED, LOGOUT, NOT_AUTHENTICATED, SELECTED, CommandFailed,
                                    Reply, unavailable)
from gateways.imap.framing import CommandFramer, CommandReady, LineReady, LiteralWanted, Refused
from gateways.imap.grammar import ParseError, parse_command
from gateways.imap.grammar import writer as w
from gateways.imap.keywords import announce_in_use
from gateways.imap.output import ResponseWriter
from shared.endpoints import answer_at_once
from shared.metrics import observe_command
from shared.errors import (LIMIT, BadRequest, Conflict, Forbidden, GroupwareError, NotFound, Quota,
                           SessionInvalid, StorageFull, TooLarge, Unavailable)

log = logging.getLogger("gateways.imap")

# Pipelined bytes held while a command runs before the socket is no longer read.
READ_AHEAD = 256 * 1024
# APPEND messages larger than this are spooled to a temporary file as they arrive.
SPOOL_APPEND_OVER = 64 * 1024


# Store faults a command handler let through, and the tagged NO each gets (RFC 5530 codes).
STORE_FAULT_REPLIES: tuple[tuple[type[Exception], Reply], ...] = (
    (NotFound, Reply("NO", "No such mailbox or message.", "NONEXISTENT")),
    (Forbidden, Reply("NO", "Permission denied.", "NOPERM")),
    (Quota, Reply("NO", "Quota exceeded.", "OVERQUOTA")),
    # The store's disk is full: Dovecot's answer to ENOSPC (its "Not enough disk space").
    (StorageFull, Reply("NO", "Not enough disk space.", "OVERQUOTA")),
    (TooLarge, Reply("NO", "Too large.", "TOOBIG")),
    (Conflict, Reply("NO", "Conflicting change, please try again.", "INUSE")),
)


def failure_reply(failure: Failure, name: str) -> Reply:
    """The tagged answer for a store error that escaped a command handler."""
    if failure.check(CommandFailed):
        return failure.value.reply()
    if failure.check(Unavailable, SessionInvalid, ConnectionError):
        log.warning("imap %s: store unavailable: %s", name, failure.getErrorMessage())
        return unavailable().reply()
    for fault, reply in STORE_FAULT_REPLIES:
        if failure.check(fault):
            return reply
    if failure.check(BadRequest):
        # The store refused what the client asked for (a name it cannot hold, more keywords
        # than a message may carry): the client's doing, not our bug (RFC 5530 codes).
        code = "LIMIT" if failure.value.reason == LIMIT else "CANNOT"
        return Reply("NO", f"{failure.value.message[:200]}.", code)
    if failure.check(GroupwareError):
        log.warning("imap %s failed: %s", name, failure.getErrorMessage())
    else:
        log.error("imap %s failed: %s", name, failure.getTraceback())
    return Reply("NO", "Internal error.", "SERVERBUG")


class IMAPConnection(protocol.Protocol, TimeoutMixin):
    """One client. `factory` is the service's `IMAPFactory` (login, options, TLS)."""

    def __init__(self) -> None:
        self.state = NOT_AUTHENTICATED
        self.framer = CommandFramer()
        self.writer: ResponseWriter | None = None
        self.tls_active = False
        self.peer_host = ""
        self.user_name: str | None = None
        self.session: Any = None
        self.store: Any = None
        self.selected: Any = None
        # The last folder tree read for APPEND/COPY/MOVE targets (tree.resolve).
        self.mailbox_tree: Any = None
        # (when, folders) of the last listing of shared folders (tree.shared_folders).
        self.shared_listing: Any = None
        self.enabled: set[str] = set()
        self.notify: Any = None
        # (mailbox, flags) the FLAGS response of SELECT listed (keywords.py).
        self.announced_flags: Any = None
        self.client_id: dict[str, str | None] | None = None
        self.closed = False
        self.busy = False
        self.current: Any = None
        # The running command's Deferred, cancelled when the client goes away so that the
        # store stops working for nobody.
        self._running: defer.Deferred | None = None
        # Temporary files holding the running command's APPEND literals (framing.py).
        self.spooled: tuple[Any, ...] = ()
        # The client's input once COMPRESS=DEFLATE is on (commands/compress.py).
        self.inflater: Any = None
        self.reading_paused = False
        self._pumping = False
        self._closing = False
        self._line_sink: Callable[[bytes], Any] | None = None
        self._after_reply: list[Callable[[], Any]] = []
        self._shutdown_pending = False
        self.command_started = 0.0

    # -- connection
    def connectionMade(self) -> None:
        factory = self.factory
        self.framer = CommandFramer(factory.max_line, factory.max_literal, factory.max_append_total)
        self.framer.spool_threshold = SPOOL_APPEND_OVER
        self.tls_active = factory.implicit_tls
        self.peer_host = getattr(self.transport.getPeer(), "host", "") or ""
        answer_at_once(self.transport)
        self.writer = ResponseWriter(self.transport, on_resume=self._writable_again)
        self.setTimeout(factory.login_timeout)
        self.send(w.untagged("OK", "groupware IMAP4rev1 server ready",
                             w.capability_code(dispatch.capabilities(self))))

    def connectionLost(self, reason: Failure = ConnectionDone()) -> None:  # type: ignore[assignment]
        self.closed = True
        self.state = LOGOUT
        self.setTimeout(None)
        if self.writer is not None:
            self.writer.close()
        running, self._running = self._running, None
        if running is not None:
            running.cancel()
        self.release()

    def release(self) -> None:
        """Drop NOTIFY, the selected mailbox and the store session."""
        if self.notify is not None:
            notify, self.notify = self.notify, None
            notify.stop()
        if self.selected is not None:
            selected, self.selected = self.selected, None
            selected.close()
        if self.session is not None:
            session, self.session = self.session, None
            self.store = None
            self.mailbox_tree = None
            self.shared_listing = None
            session.logoff()

    def timeoutConnection(self) -> None:
        self.send(b"* BYE Autologout; idle for too long\r\n")
        self.close()

    def shutdown(self) -> None:
        """The service is stopping (RFC 3501 §7.1.5 BYE): an IDLE or a connection between
        commands is told BYE and let go at once; a running command first finishes and
        sends its tagged answer, then BYE follows and nothing pipelined runs."""
        if self.closed or self._closing:
            return
        idling = self._line_sink is not None and self.current is not None and self.current.name == "IDLE"
        if idling or not (self.busy or self.framer.mid_command):
            self.say_goodbye()
            return
        # A command running, or arriving (an APPEND's literal): BYE after its answer.
        self._shutdown_pending = True

    def say_goodbye(self) -> None:
        self.send(w.untagged("BYE", "Server shutting down"))
        self.close()

    def close(self) -> None:
        """Hang up after what is written; a client that reads nothing is cut off."""
        if self.closed:
            return
        self.closed = True
        if self.writer is not None and self.writer.paused:
            self.transport.abortConnection()
        else:
            self.transport.loseConnection()

    # -- output
    def send(self, data: bytes) -> None:
        if self.writer is not None and not self.closed:
            self.writer.write(data)

    def send_sequence(self, parts: list[bytes]) -> None:
        if self.writer is not None and not self.closed:
            self.writer.write_sequence(parts)

    def untagged(self, text: bytes | str) -> None:
        """`* <text>` and CRLF."""
        if isinstance(text, str):
            text = text.encode("utf-8")
        self.send(b"* " + text + b"\r\n")

    def tagged(self, tag: str, reply: Reply) -> None:
        self.send(w.tagged(tag, reply.status, reply.text, reply.code))

    def flush_updates(self, expunge: bool = True) -> None:
        """Write what changed in the selected mailbox since it was last told."""
        if self.selected is not None and not self.closed:
            uids = self.selected.uids
            top = uids[-1] if uids else 0
            lines = self.selected.take_updates(expunge=expunge)
            if any(b" FETCH " in line for line in lines):
                announce_in_use(self)  # a FLAGS list with keywords new to the client
            for line in lines:
                self.send(line)
            for hook in dispatch.AFTER_UPDATES:
                hook(self, top)

    def _writable_again(self) -> None:
        self.resetTimeout()  # the client is reading: not idle
        self.pump()

    # -- input
    def dataReceived(self, data: bytes) -> None:
        if self.closed:
            return
        if self.inflater is not None:
            self.inflater.receive(data)
            self._flow_control()
            return
        self.feed_plain(data)

    def feed_plain(self, data: bytes) -> None:
        """The client's octets as the framer reads them (inflated, after COMPRESS)."""
        self.framer.feed(data)
        self.pump()

    def framer_has_room(self) -> bool:
        """Whether more of the client's input may be read into the framer now."""
        return not self.writer.paused and self.framer.buffered <= READ_AHEAD

    def pump(self) -> None:
        """Hand out framed events while nothing holds them back."""
        if self._pumping:
            return
        self._pumping = True
        try:
            while not self.closed and not self.writer.paused and (not self.busy or self._line_sink):
                event = self.framer.next_event()
                if event is None:
                    break
                self.handle(event)
        finally:
            self._pumping = False
        self._flow_control()

    def _flow_control(self) -> None:
        inflater = self.inflater
        if inflater is not None and inflater.holding and self.framer_has_room():
            inflater.run()
        hold = not self.closed and (self.writer.paused or self.framer.buffered > READ_AHEAD
                                    or (inflater is not None and inflater.holding))
        if hold and not self.reading_paused:
            self.reading_paused = True
            self.transport.pauseProducing()
        elif not hold and self.reading_paused and not self.closed:
            self.reading_paused = False
            self.transport.resumeProducing()

    def handle(self, event: Any) -> None:
        if isinstance(event, CommandReady):
            self.resetTimeout()
            self.spooled = event.spooled
            self.run(event.raw)
        elif isinstance(event, LiteralWanted):
            self.send(b"+ Ready for literal data\r\n")
        elif isinstance(event, LineReady):
            self.resetTimeout()
            sink = self._line_sink
            if sink is not None:
                sink(event.line)
        elif isinstance(event, Refused):
            self.send(event.response())
            if event.close:
                self.send(b"* BYE Too many invalid commands\r\n")
                self.close()

    def read_line(self) -> defer.Deferred:
        """The next line the client sends (a SASL response), raw, without its line end."""
        d: defer.Deferred = defer.Deferred()

        def one(line: bytes) -> None:
            self.stop_reading_lines()
            d.callback(line)
        self.read_lines(one)
        return d

    def read_lines(self, sink: Callable[[bytes], Any]) -> None:
        """Give every line to `sink` until `stop_reading_lines`, even while a command runs."""
        self._line_sink = sink
        self.framer.line_mode = True
        if not self._pumping:
            self.pump()

    def stop_reading_lines(self) -> None:
        self._line_sink = None
        self.framer.line_mode = False

    # -- commands
    def run(self, raw: bytes) -> None:
        try:
            cmd = parse_command(raw, utf8=self.utf8)
        except ParseError as exc:
            code = f"[{exc.code}] " if exc.code else ""
            # An unknown SEARCH charset is a NO, not a BAD (RFC 3501 §6.4.4).
            status = "NO" if (exc.code or "").startswith("BADCHARSET") else exc.status
            self.send(f"{exc.tag or '*'} {status} {code}{exc.text}\r\n".encode("utf-8", "replace"))
            return
        except Exception:  # noqa: BLE001  (a client must never crash the process)
            log.exception("imap parser failed")
            self.send(b"* BAD Invalid command\r\n")
            return
        spec = dispatch.COMMANDS.get(cmd.name)
        if spec is None:
            return self.tagged(cmd.tag, Reply("BAD", f"{cmd.name} is not supported"))
        if cmd.uid and not spec.uid:
            return self.tagged(cmd.tag, Reply("BAD", f"UID {cmd.name} is not a command"))
        if self.state not in spec.states:
            return self.tagged(cmd.tag, Reply("BAD", f"{cmd.name} is not allowed in the {self.state} state"))
        self.busy = True
        self.current = cmd
        self.command_started = time.monotonic()
        d = defer.maybeDeferred(spec.handler, self, cmd)
        if not d.called:
            self._running = d
        d.addCallbacks(self._completed, self._failed, callbackArgs=(cmd, spec), errbackArgs=(cmd, spec))
        d.addErrback(lambda f: log.error("imap completion failed: %s", f.getTraceback()))

    def _completed(self, result: Any, cmd: Any, spec: dispatch.CommandSpec) -> None:
        name = ("UID " if cmd.uid else "") + cmd.name
        reply = result if isinstance(result, Reply) else Reply("OK", f"{name} completed")
        if reply.status == "OK" and not self.closed:
            for hook in dispatch.AFTER_COMMAND.get(cmd.name, ()):
                try:
                    hook(self, cmd)
                except Exception:  # noqa: BLE001  (the command itself succeeded)
                    log.exception("imap after-%s hook failed", cmd.name)
        self._finish(cmd, spec, reply)

    def _failed(self, failure: Failure, cmd: Any, spec: dispatch.CommandSpec) -> None:
        if self.closed:
            self._finish(cmd, spec, None)
            return
        self._finish(cmd, spec, failure_reply(failure, cmd.name))

    def _finish(self, cmd: Any, spec: dispatch.CommandSpec, reply: Reply | None) -> None:
        observe_command("imap", cmd.name, self.command_started)
        self.busy = False
        self.current = None
        self._running = None
        self.release_spooled()
        self.stop_reading_lines()
        if self.closed or reply is None:
            return
        if self.state == SELECTED and reply.status != "BAD":
            self.flush_updates(expunge=spec.expunge_after or cmd.uid)
        self.tagged(cmd.tag, reply)
        hooks, self._after_reply = self._after_reply, []
        for hook in hooks:
            hook()
        if self._shutdown_pending:
            self.say_goodbye()
            return
        if self._closing:
            self.close()
            return
        self.pump()

    def release_spooled(self) -> None:
        spooled, self.spooled = self.spooled, ()
        for fp in spooled:
            fp.close()

    # -- state changes the command modules make
    def logged_in(self, session: Any, user: str) -> None:
        self.session = session
        self.store = session.store()
        self.user_name = user
        self.state = AUTHENTICATED
        self.framer.authenticated = True
        self.setTimeout(self.factory.timeout)

    def unauthenticated(self) -> None:
        """Back to the not authenticated state (UNAUTHENTICATE, RFC 8437): the session, the
        selected mailbox and everything ENABLE turned on are gone, as after a reconnect."""
        self.release()
        self.state = NOT_AUTHENTICATED
        self.user_name = None
        self.enabled = set()
        self.announced_flags = None
        self.framer.authenticated = False
        self.setTimeout(self.factory.login_timeout)

    def select(self, mailbox: Any) -> None:
        """Enter the selected state with a `selected.SelectedMailbox`."""
        self.deselect()
        self.selected = mailbox
        self.state = SELECTED
        if self.notify is not None:
            self.notify.follow(mailbox)

    def deselect(self) -> None:
        """Back to the authenticated state; what was pending for the old mailbox is dropped."""
        if self.selected is not None:
            selected, self.selected = self.selected, None
            selected.close()
        if self.state == SELECTED:
            self.state = AUTHENTICATED

    def logout(self) -> None:
        """Close once the tagged answer to the running command is out."""
        self.state = LOGOUT
        self._closing = True
        self.release()

    @property
    def utf8(self) -> bool:
        """Whether mailbox names travel as UTF-8: UTF8=ACCEPT (utf8.py) or IMAP4rev2
        (RFC 9051 §5.1: its mailbox names are UTF-8, rev2.py) is enabled."""
        return "UTF8=ACCEPT" in self.enabled or rev2.enabled(self.enabled)

    def enable_condstore(self) -> None:
        """A CONDSTORE-enabling command ran (RFC 7162 §3.1). The first one in the
        selected state is answered with the mailbox's HIGHESTMODSEQ, since the
        client may not have asked for it when it selected."""
        if "CONDSTORE" in self.enabled:
            return
        self.enabled.add("CONDSTORE")
        if self.selected is not None:
            self.send(w.untagged("OK", "Highest", f"HIGHESTMODSEQ {self.selected.highest_modseq}"))

    def after_reply(self, hook: Callable[[], Any]) -> None:
        """Run `hook` right after the running command's tagged answer is written
        (STARTTLS starts the handshake there)."""
        self._after_reply.append(hook)

    def plaintext_allowed(self) -> bool:
        return self.factory.plaintext_allowed(self.tls_active, self.peer_host)
