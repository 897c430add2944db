"""An SMTP sink on a free loopback port: it accepts every message and records it.

It stands for the rest of the world in delivery tests: vacation replies and redirects
leave through a relay (our relay client or Postfix's `relayhost`) and end up here.
A small server of our own (RFC 5321's minimal command set, and 8BITMIME) in a thread,
so that a test reads what arrived without a reactor.
"""
from __future__ import annotations

import socketserver
import threading
from dataclasses import dataclass

from waiting import wait_until

MAX_LINE = 1000 * 1000  # a sink for tests: generous, but a runaway client cannot eat memory


@dataclass(frozen=True)
class SunkMessage:
    sender: str
    recipients: tuple[str, ...]
    data: bytes  # as the client sent it, dot-stuffing removed, CRLF line ends


def _address(argument: str) -> str:
    """The address inside `FROM:<a@b> SIZE=1` or `TO:<a@b>`; RFC 5321 section 4.1.2."""
    start, end = argument.find("<"), argument.find(">")
    return argument[start + 1:end] if 0 <= start < end else argument.split(":", 1)[-1].strip()


class _Session(socketserver.StreamRequestHandler):
    """One SMTP session: HELO/EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT (RFC 5321 section 4.1)."""

    server: "_Server"

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 sink.test ESMTP")
        sender, recipients = None, []
        while True:
            line = self.rfile.readline(MAX_LINE)
            if not line:
                return
            verb, _, argument = line.decode("utf-8", "replace").rstrip("\r\n").partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                # 8BITMIME (RFC 6152): mail reaches the sink as it was sent, not re-encoded by the relay.
                self.reply("250-sink.test")
                self.reply("250 8BITMIME")
            elif verb == "HELO":
                self.reply("250 sink.test")
            elif verb == "MAIL":
                sender, recipients = _address(argument), []
                self.reply("250 2.1.0 ok")
            elif verb == "RCPT" and sender is not None:
                recipients.append(_address(argument))
                self.reply("250 2.1.5 ok")
            elif verb == "DATA" and recipients:
                self.reply("354 go ahead")
                data = self.read_data()
                if data is None:
                    return
                self.server.record(SunkMessage(sender, tuple(recipients), data))
                self.reply("250 2.0.0 stored")
                sender, recipients = None, []
            elif verb == "RSET":
                sender, recipients = None, []
                self.reply("250 2.0.0 ok")
            elif verb == "NOOP":
                self.reply("250 2.0.0 ok")
            elif verb == "QUIT":
                self.reply("221 2.0.0 bye")
                return
            else:
                self.reply("503 5.5.1 bad sequence of commands")

    def read_data(self) -> bytes | None:
        """The message up to the lone `.`, dot-stuffing undone (RFC 5321 section 4.5.2)."""
        lines = []
        while True:
            line = self.rfile.readline(MAX_LINE)
            if not line:
                return None
            if line in (b".\r\n", b".\n"):
                return b"".join(lines)
            lines.append(line[1:] if line.startswith(b".") else line)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Session)
        self.messages: list[SunkMessage] = []
        self.lock = threading.Lock()

    def record(self, message: SunkMessage) -> None:
        with self.lock:
            self.messages.append(message)


class SmtpSink:
    """The sink; `port` is where it listens, `messages` what it received so far."""

    def __init__(self) -> None:
        self._server = _Server()
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def start(self) -> "SmtpSink":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "SmtpSink":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def messages(self) -> list[SunkMessage]:
        with self._server.lock:
            return list(self._server.messages)

    def to(self, recipient: str) -> list[SunkMessage]:
        """What arrived for `recipient` (compared case-insensitively)."""
        return [m for m in self.messages if recipient.lower() in (r.lower() for r in m.recipients)]

    def wait_for(self, recipient: str, count: int = 1, timeout: float = 60) -> list[SunkMessage]:
        """Until at least `count` messages for `recipient` arrived; those messages."""
        return wait_until(lambda: len(self.to(recipient)) >= count and self.to(recipient), timeout,
                          message=f"{count} message(s) for {recipient} never reached the sink: {self.messages}")
