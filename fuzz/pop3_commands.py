"""POP3: the command lines of a whole session, through the real protocol class.

Input: one option byte (piece size, line limit small or the default, whether plaintext
logins are allowed), then what the client sends. A `POP3Server` runs on an in-memory transport with a manual clock;
its login service and maildrop are small in-memory stand-ins (user "user", password
"secret" logs in to three messages, one of them larger than the read-ahead budget and
one full of leading dots; user "down" meets a store that is unavailable), so every
command of the AUTHORIZATION and TRANSACTION states, SASL PLAIN and LOGIN, pipelining
and overlong lines are reached.

Finding: a command that fails inside the server (the protocol's catch-all answers
"-ERR Internal error." and logs it) or an exception out of `dataReceived`.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from twisted.internet import defer, task
from twisted.internet.testing import StringTransport

from fuzz.driver import pieces
from gateways.pop3.server import POP3Server
from shared.login import LoginRefused, Outcome

MESSAGES = [
    b"From: a@example.org\r\nSubject: one\r\n\r\nHello.\r\n",
    b"Subject: dots\n\n.\n..\n.x\nlast line without end",
    b"Subject: big\r\n\r\n" + b"0123456789abcdef\r\n" * 40,
]
READ_AHEAD = 256
MAX_LINES = (256, 8192)  # small, so overlong lines are met, and pop3_max_line's default


class _Folder:
    uid_validity = 7

    def __init__(self) -> None:
        self.uids = [11, 12, 13]

    def query(self, columns: Any, sort: Any = None) -> defer.Deferred:
        return defer.succeed((len(self.uids), {"uid": list(self.uids), "size": [len(m) for m in MESSAGES]}))

    def _source(self, uid: int) -> bytes:
        return MESSAGES[self.uids.index(uid)]

    def open_sources(self, uids: list[int]) -> defer.Deferred:
        return defer.succeed(("all:" + ",".join(map(str, uids)), [(u, len(self._source(u))) for u in uids]))

    def open_stream(self, uid: int) -> defer.Deferred:
        return defer.succeed((f"all:{uid}", len(self._source(uid))))

    def stream(self, href: str, consumer: Any) -> defer.Deferred:
        write = consumer if callable(consumer) else consumer.write
        for uid in href[4:].split(","):
            source = self._source(int(uid))
            for start in range(0, len(source), 100):
                write(source[start:start + 100])
        return defer.succeed(None)

    def delete(self, uids: list[int]) -> defer.Deferred:
        return defer.succeed(uids)


class _Session:
    def __init__(self, name: str) -> None:
        self.user = SimpleNamespace(name=name)
        self.folder = _Folder()

    def store(self) -> Any:
        return SimpleNamespace(inbox=lambda: defer.succeed(self.folder))

    def logoff(self) -> None:
        pass


class _Login:
    def login(self, credentials: Any, connected: Any) -> defer.Deferred:
        if credentials.username == "down":
            return defer.fail(LoginRefused(Outcome.UNAVAILABLE))
        if credentials.username == "user" and credentials.password == "secret":
            return defer.succeed(_Session("user"))
        return defer.fail(LoginRefused(Outcome.BAD_CREDENTIALS))


class _Server(POP3Server):
    def internal_error(self) -> None:
        raise AssertionError("a POP3 command failed inside the server")


def check(data: bytes) -> None:
    if not data:
        return
    options, stream = data[0], data[1:]
    factory = SimpleNamespace(
        implicit_tls=False, tls_options=None, login=_Login(), locks=set(), max_line=MAX_LINES[options >> 7],
        read_ahead=READ_AHEAD, timeout=600, login_timeout=60,
        plaintext_allowed=lambda tls_active, host: not options & 1)
    server = _Server()
    clock = task.Clock()
    server.callLater = clock.callLater
    server.factory = factory
    transport = StringTransport(peerAddress=SimpleNamespace(host="192.0.2.1", port=1))
    server.makeConnection(transport)
    piece = ((options >> 1) & 0x3f) * 16 + 1
    for chunk in pieces(stream, piece):
        server.dataReceived(chunk)
    server.connectionLost(None)


if __name__ == "__main__":
    from fuzz.driver import run
    run(check)
