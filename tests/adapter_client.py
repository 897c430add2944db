"""The adapter (shared/) as the tests drive it against a store server: the users they log on
as, and the messages and folders they make."""
from __future__ import annotations

from harness import ServerProcess, StoreProcess
from shared.config import Config
from shared.model import Adapter

PASSWORD = "correct horse"
# carol has POP3 switched off: refused, and distinguishable from a bad password.
STORE_USERS = {name: PASSWORD for name in ("alice", "bob", "carol")}
STORE_FEATURES = {"carol": {"pop3": False}}


def start_store_server(data_dir: str, options: dict[str, str] | None = None) -> StoreProcess:
    """The store server alone in `data_dir`, with STORE_USERS (and `options`)."""
    return StoreProcess(data_dir, {"log_level": "warning", **(options or {})}, STORE_USERS, STORE_FEATURES).start()


def make_adapter(rt, srv, **options: str) -> Adapter:
    """An adapter on `srv`'s (a harness.StoreProcess) UNIX socket, made on the reactor thread."""
    return adapter_on(rt, srv.socket_path, srv.data_dir, **options)


def adapter_on(rt, socket_path: str, data_dir: str, **options: str) -> Adapter:
    """An adapter on the store server at `socket_path` (which may be absent), with `options`."""
    cfg = Config({"server_socket": socket_path, "server_connections": "4", **options}, data_dir)
    return rt.call(Adapter, cfg, rt.reactor)


def logon(rt, adapter: Adapter, user: str = "alice", protocol: str = "imap"):
    return rt.call(adapter.logon, user, PASSWORD, protocol, "192.0.2.1")


def message(subject: str, body: bytes = b"Hello.\r\n") -> bytes:
    return (b"From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: " + subject.encode()
            + b"\r\nMessage-ID: <" + subject.encode().replace(b" ", b".") + b"@example.org>\r\n\r\n" + body)


async def fresh_folder(session, name: str):
    """An empty top-level folder `name` in the session's store (an older one is deleted)."""
    store = session.store()
    for folder in await store.folders():
        if folder.name == name:
            await folder.delete()
    return await store.create_folder(name)


class DemoSession:
    """The demo user of a `groupware serve --demo` (a harness.ServerProcess), logged on through
    the adapter: tests set up and check the store directly through `session`."""

    def __init__(self, rt, server: ServerProcess) -> None:
        self.rt, self.server = rt, server
        self.password = server.demo_password()
        cfg = Config({"server_socket": server.socket_path, "server_connections": "2"}, server.data_dir)
        self.adapter = rt.call(Adapter, cfg, rt.reactor)
        self.session = rt.call(self.adapter.logon, "demo", self.password, "imap", "127.0.0.1")

    def inbox(self):
        return self.rt.call(self.session.store().inbox)

    def close(self) -> None:
        self.rt.call(self.session.logoff)
        self.rt.call(self.adapter.close)
