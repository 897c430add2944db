"""The POP3 protocol (RFC 1939, CAPA RFC 2449, SASL RFC 5034, STLS RFC 2595, codes RFC 3206).

Built on Twisted's `POP3` for its line receiver and idle timeout; commands, the
state machine, pipelining and message streaming are ours, because the base class
has no STLS or response codes and turns CRLF sources into `\\r\\r\\n`.
Every store access goes through `shared/` (the adapter), never the store server.
"""
from __future__ import annotations

import base64
import logging
from typing import Any

from twisted.internet import defer
from twisted.mail import pop3
from twisted.python.failure import Failure

from gateways.pop3.maildrop import Maildrop
from gateways.pop3.readahead import ReadAhead
from gateways.pop3.wire import DotStuffer, DrainWaiter
from shared.endpoints import answer_at_once
from shared.errors import GroupwareError, NotFound, Unavailable
from shared.login import ClientLogin, LoginRefused, Outcome
from shared.sasl import decode_response, plain_credentials
from shared.serialcommands import SerialCommands

log = logging.getLogger("gateways.pop3")

AUTH_FAILED = b"-ERR [AUTH] Authentication failed."
PLAINTEXT_REFUSED = b"-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
TEMP_FAILURE = b"-ERR [SYS/TEMP] Temporary failure, please try again later."
BANNED = b"-ERR [AUTH] Too many failed logins from your address, try again later."
DISABLED = b"-ERR [AUTH] POP3 access is disabled for this account."
TOO_MANY = b"-ERR [IN-USE] Maximum number of connections from user+IP exceeded."
TOO_MANY_FROM_ADDRESS = b"-ERR [SYS/TEMP] Too many connections from your address, try again later.\r\n"
REFUSALS = {Outcome.BAD_CREDENTIALS: AUTH_FAILED, Outcome.DISABLED: DISABLED, Outcome.UNAVAILABLE: TEMP_FAILURE,
            Outcome.TOO_MANY: TOO_MANY}
MAX_OVERLONG_LINES = 3

# Commands allowed in each state (RFC 1939 §4-6, plus the extensions we announce).
AUTHORIZATION_COMMANDS = frozenset({"CAPA", "USER", "PASS", "AUTH", "STLS", "UTF8", "QUIT", "NOOP"})
TRANSACTION_COMMANDS = frozenset({"CAPA", "STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "RSET", "NOOP",
                                  "QUIT"})
# After QUIT: UPDATE (RFC 1939 §6) from TRANSACTION, CLOSING otherwise; nothing more runs.
ENDED_STATES = frozenset({"UPDATE", "CLOSING"})


class POP3Server(SerialCommands, pop3.POP3):
    """One client connection. `factory` is the `POP3Factory` (login, options, locks)."""

    command_log = log
    protocol_name = "pop3"

    def __init__(self) -> None:
        self.state = "AUTHORIZATION"
        self.buffer = b""
        self.discarding = False  # inside an overlong line: drop up to its end
        self.overlong = 0
        self.init_commands()
        self.tls_active = False
        self.sasl: Any = None  # continuation handler while an AUTH exchange runs
        self.user_name: str | None = None
        self.session: Any = None
        self.maildrop: Maildrop | None = None
        self.read_ahead: ReadAhead | None = None
        self.lock_key: str | None = None
        self.peer_host = ""
        self.closed = False

    # -- connection
    def connectionMade(self) -> None:
        factory = self.factory
        self.tls_active = factory.implicit_tls
        peer = self.transport.getPeer()
        self.peer_host = getattr(peer, "host", "") or ""
        answer_at_once(self.transport)
        self.setTimeout(self.idle_timeout())
        self.send(b"+OK groupware POP3 server ready.")

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.closed = True
        self.setTimeout(None)
        # Not QUIT: nothing marked is deleted (RFC 1939 §6).
        self.release()

    def release(self) -> None:
        if self.lock_key is not None:
            self.factory.locks.discard(self.lock_key)
            self.lock_key = None
        if self.session is not None:
            session, self.session = self.session, None
            session.logoff()
        self.maildrop = None

    def say_goodbye(self) -> None:
        if self.state in ("UPDATE", "CLOSING"):
            return  # QUIT already answered and closes the connection
        # No UPDATE state: what was marked stays (RFC 1939 §6); Dovecot says the same.
        self.err("[SYS/TEMP] Server shutting down.")
        self.closed = True
        self.transport.loseConnection()

    def idle_timeout(self) -> int:
        """Seconds of silence allowed: short before login, so idle strangers hold no connection."""
        return self.factory.timeout if self.session is not None else self.factory.login_timeout

    def timeoutConnection(self) -> None:
        self.send(b"-ERR Disconnected for inactivity.")
        self.transport.loseConnection()

    def send(self, line: bytes) -> None:
        if not self.closed:
            self.transport.write(line + b"\r\n")

    def ok(self, text: str | bytes = b"") -> None:
        text = text.encode("utf-8") if isinstance(text, str) else text
        self.send(b"+OK " + text if text else b"+OK")

    def err(self, text: str | bytes) -> None:
        text = text.encode("utf-8") if isinstance(text, str) else text
        self.send(b"-ERR " + text)

    # -- input: lines, length limit, pipelining
    def dataReceived(self, data: bytes) -> None:
        if self.discarding:
            nl = data.find(b"\n")
            if nl < 0:
                return
            data = data[nl + 1:]
            self.discarding = False
        self.buffer += data
        while not self.closed:
            nl = self.buffer.find(b"\n")
            if nl < 0:
                if len(self.buffer) > self.factory.max_line:
                    self.buffer = b""
                    self.discarding = True
                    self.line_too_long()
                break
            line, self.buffer = self.buffer[:nl], self.buffer[nl + 1:]
            if len(line) > self.factory.max_line + 1:
                self.line_too_long()
                continue
            self.lineReceived(line[:-1] if line.endswith(b"\r") else line)

    def line_too_long(self) -> None:
        self.overlong += 1
        self.err("Line too long.")
        if self.overlong >= MAX_OVERLONG_LINES:
            self.err("Too many overlong lines, closing.")
            self.transport.loseConnection()
            self.closed = True  # read nothing more of what is buffered

    def lineReceived(self, line: bytes) -> None:
        self.resetTimeout()
        self.take((line,))

    def internal_error(self) -> None:
        self.err("Internal error.")

    def dispatch(self, line: bytes) -> Any:
        if self.state in ENDED_STATES:
            return None  # after QUIT the connection closes: what the client pipelined is dropped
        if self.sasl is not None:
            handler, self.sasl = self.sasl, None
            return handler(line)
        words = line.split(b" ")
        try:
            command = words[0].decode("ascii").upper()
        except UnicodeDecodeError:
            return self.err("Unknown command.")
        args = [w for w in words[1:] if w]
        allowed = AUTHORIZATION_COMMANDS if self.state == "AUTHORIZATION" else TRANSACTION_COMMANDS
        handler = getattr(self, "cmd_" + command, None) if command.isalnum() else None
        if handler is None:
            return self.err("Unknown command.")
        if command not in allowed:
            return self.err(f"{command} is not allowed in the {self.state} state.")
        return handler(*args)

    # -- capabilities and session commands
    def plaintext_allowed(self) -> bool:
        return self.factory.plaintext_allowed(self.tls_active, self.peer_host)

    def capabilities(self) -> list[bytes]:
        caps = [b"TOP", b"UIDL"]
        if self.state == "AUTHORIZATION" and self.plaintext_allowed():
            caps += [b"USER", b"SASL PLAIN LOGIN"]
        caps += [b"RESP-CODES", b"AUTH-RESP-CODE", b"PIPELINING"]
        if self.state == "AUTHORIZATION" and self.factory.tls_options is not None and not self.tls_active:
            caps.append(b"STLS")
        caps += [b"EXPIRE NEVER", b"UTF8", b"IMPLEMENTATION groupware"]
        return caps

    def cmd_CAPA(self, *args: bytes) -> None:
        self.transport.write(b"+OK Capability list follows\r\n"
                             + b"".join(c + b"\r\n" for c in self.capabilities()) + b".\r\n")

    def cmd_NOOP(self, *args: bytes) -> None:
        self.ok()

    def cmd_UTF8(self, *args: bytes) -> None:
        # Names and passwords are read as UTF-8 and sources sent as stored anyway (RFC 6856).
        self.ok("UTF8 enabled")

    def cmd_STLS(self, *args: bytes) -> None:
        if self.factory.tls_options is None:
            return self.err("TLS is not configured.")
        if self.tls_active:
            return self.err("TLS is already active.")
        # Anything pipelined after STLS arrived in plaintext before the handshake:
        # it must not run as if it came over TLS (CVE-2011-0411, CVE-2021-38084).
        self.buffer = b""
        self.drop_queued()
        self.ok("Begin TLS negotiation now.")
        self.transport.startTLS(self.factory.tls_options)
        self.tls_active = True
        self.user_name = None

    def cmd_QUIT(self, *args: bytes) -> Any:
        if self.state != "TRANSACTION" or self.maildrop is None:
            self.state = "CLOSING"
            self.ok("Logging out.")
            self.transport.loseConnection()
            return None
        self.state = "UPDATE"

        marked = len(self.maildrop.deleted)
        left = len(self.maildrop.uids) - marked

        def done(_: Any) -> None:
            # RFC 1939 §6 words it "signing off (2 messages left)"; deletions are
            # named only when some were marked.
            remaining = "maildrop empty" if left == 0 else f"{left} message{'s' if left != 1 else ''} left"
            if marked:
                self.ok(f"Logging out, {marked} message{'s' if marked != 1 else ''} deleted ({remaining}).")
            else:
                self.ok(f"Logging out ({remaining}).")

        def failed(failure: Failure) -> None:
            log.warning("pop3 deleting for %s failed: %s", self.user_name, failure.getErrorMessage())
            self.send(TEMP_FAILURE)

        def close(_: Any) -> None:
            self.release()
            self.transport.loseConnection()
        return self.maildrop.commit().addCallbacks(done, failed).addBoth(close)

    # -- authorization
    def cmd_USER(self, *args: bytes) -> None:
        if not self.plaintext_allowed():
            return self.send(PLAINTEXT_REFUSED)
        if len(args) != 1:
            return self.err("USER needs one argument.")
        self.user_name = args[0].decode("utf-8", "replace")
        self.ok()

    def cmd_PASS(self, *args: bytes) -> Any:
        if not self.plaintext_allowed():
            return self.send(PLAINTEXT_REFUSED)
        if self.user_name is None:
            return self.err("USER first.")
        user, self.user_name = self.user_name, None
        # The password is the rest of the line: it may contain spaces.
        return self.login(user, b" ".join(args).decode("utf-8", "replace"))

    def cmd_AUTH(self, *args: bytes) -> Any:
        if not args:
            self.transport.write(b"+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n")
            return None
        if not self.plaintext_allowed():
            return self.send(PLAINTEXT_REFUSED)
        mechanism = args[0].upper()
        initial = args[1] if len(args) > 1 else None
        if mechanism == b"PLAIN":
            if initial is None:
                self.send(b"+ ")
                self.sasl = self.auth_plain
                return None
            return self.auth_plain(initial)
        if mechanism == b"LOGIN":
            if initial is None:
                self.send(b"+ " + base64.b64encode(b"Username:"))
                self.sasl = self.auth_login_user
                return None
            return self.auth_login_user(initial)
        return self.err("Unsupported authentication mechanism.")

    def auth_plain(self, line: bytes) -> Any:
        if line.strip() == b"*":
            return self.err("Authentication cancelled.")
        data = decode_response(line)
        credentials = plain_credentials(data) if data is not None else None
        if credentials is None:
            return self.err("Invalid SASL PLAIN response.")
        if credentials.for_someone_else:
            return self.send(AUTH_FAILED)
        return self.login(credentials.user, credentials.password)

    def auth_login_user(self, line: bytes) -> None:
        if line.strip() == b"*":
            return self.err("Authentication cancelled.")
        data = decode_response(line)
        if data is None:
            return self.err("Invalid base64.")
        user = data.decode("utf-8", "replace")
        self.send(b"+ " + base64.b64encode(b"Password:"))
        self.sasl = lambda reply: self.auth_login_password(user, reply)

    def auth_login_password(self, user: str, line: bytes) -> Any:
        if line.strip() == b"*":
            return self.err("Authentication cancelled.")
        data = decode_response(line)
        if data is None:
            return self.err("Invalid base64.")
        return self.login(user, data.decode("utf-8", "replace"))

    @defer.inlineCallbacks
    def login(self, user: str, password: str) -> Any:
        factory = self.factory
        try:
            session = yield factory.login.login(ClientLogin(user, password, self.peer_host),
                                                lambda: not self.closed)
        except LoginRefused as refused:
            self.refuse_login(refused.outcome)
            return
        # One maildrop per user in this process. Several gateway processes in front
        # of one store would need a store-side lock instead.
        key = (session.user.name or user).lower()
        if key in factory.locks:
            session.logoff()
            self.err("[IN-USE] Mailbox is locked by another POP3 session.")
            return
        factory.locks.add(key)
        self.lock_key, self.session = key, session
        try:
            maildrop = yield Maildrop.open(session)
        except Exception as exc:  # noqa: BLE001
            log.warning("pop3 maildrop of %s unavailable: %s", user, exc)
            self.release()
            self.send(TEMP_FAILURE)
            return
        if self.closed:
            self.release()
            return
        self.maildrop, self.user_name, self.state = maildrop, user, "TRANSACTION"
        self.read_ahead = ReadAhead(maildrop, self.factory.read_ahead)
        count, size = maildrop.stat()
        log.debug("pop3 maildrop of %s: %d messages", user, count)
        self.ok(f"Logged in, {count} messages ({size} octets).")

    def refuse_login(self, outcome: Outcome) -> None:
        if outcome is Outcome.BANNED:
            self.send(BANNED)
            self.transport.loseConnection()
        elif outcome is not Outcome.GONE:
            self.send(REFUSALS[outcome])

    # -- transaction
    def message_index(self, number: bytes) -> int | None:
        assert self.maildrop is not None
        i = self.maildrop.index(number)
        if i is None:
            self.err("No such message.")
        return i

    def cmd_STAT(self, *args: bytes) -> None:
        assert self.maildrop is not None
        count, size = self.maildrop.stat()
        self.ok(f"{count} {size}")

    def cmd_LIST(self, *args: bytes) -> None:
        self.listing(args, lambda i: str(self.maildrop.sizes[i]))  # type: ignore[union-attr]

    def cmd_UIDL(self, *args: bytes) -> None:
        self.listing(args, lambda i: self.maildrop.uidl(i))  # type: ignore[union-attr]

    def listing(self, args: tuple[bytes, ...], value: Any) -> None:
        assert self.maildrop is not None
        if args:
            i = self.message_index(args[0])
            if i is not None:
                self.ok(f"{i + 1} {value(i)}")
            return
        lines = [b"+OK"] + [b"%d %s" % (i + 1, value(i).encode("ascii")) for i in self.maildrop.live()]
        self.transport.write(b"\r\n".join(lines) + b"\r\n.\r\n")

    def cmd_DELE(self, *args: bytes) -> None:
        if not args:
            return self.err("DELE needs a message number.")
        i = self.message_index(args[0])
        if i is not None:
            self.maildrop.mark(i)  # type: ignore[union-attr]
            self.ok("Marked to be deleted.")

    def cmd_RSET(self, *args: bytes) -> None:
        assert self.maildrop is not None
        self.maildrop.reset()
        self.ok()

    def cmd_RETR(self, *args: bytes) -> Any:
        if not args:
            return self.err("RETR needs a message number.")
        i = self.message_index(args[0])
        if i is None:
            return None
        return self.send_message(i, None, f"{self.maildrop.sizes[i]} octets")  # type: ignore[union-attr]

    def cmd_TOP(self, *args: bytes) -> Any:
        if len(args) != 2:
            return self.err("TOP needs a message number and a line count.")
        i = self.message_index(args[0])
        if i is None:
            return None
        if not args[1].isdigit():
            return self.err("Bad line count.")
        # More lines than any message has is the whole message (and int() refuses 4,300 digits).
        lines = int(args[1]) if len(args[1]) <= 18 else 10 ** 18
        return self.send_message(i, lines, "Top of message follows")

    @defer.inlineCallbacks
    def send_message(self, i: int, top: int | None, text: str) -> Any:
        """RETR/TOP: a small message from the read-ahead, a big one streamed from the store."""
        maildrop, read_ahead = self.maildrop, self.read_ahead
        assert maildrop is not None and read_ahead is not None
        try:
            if read_ahead.fits(i):
                source, href = (yield read_ahead.source(i)), None
            else:
                source, (href, _) = None, (yield maildrop.folder.open_stream(maildrop.uids[i]))
        except NotFound:
            self.err("Message was deleted by another session.")
            return
        except (Unavailable, GroupwareError, ConnectionError) as exc:
            log.warning("pop3 RETR for %s: %s", self.user_name, exc)
            self.send(TEMP_FAILURE)
            return
        if self.closed:
            return
        if source is not None:
            waiter = DrainWaiter(self.transport)
            self.ok(text)
            stuffer = DotStuffer(self.transport, top)
            stuffer.write(source)
            self.transport.write(stuffer.terminator())
            yield waiter.drained()
            return
        self.ok(text)
        stuffer = DotStuffer(self.transport, top)
        try:
            yield maildrop.folder.stream(href, stuffer)
        except Exception as exc:  # noqa: BLE001
            # Half a message is out: the only honest answer is to hang up.
            log.warning("pop3 streaming to %s failed: %s", self.user_name, exc)
            self.transport.loseConnection()
            return
        if not self.closed:
            self.transport.write(stuffer.terminator())
