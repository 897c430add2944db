"""The IMAP gateway under test: a `groupware serve` with the demo user, an adapter session on
its store to set up folders directly, and clients (imaplib, raw) on its IMAP port."""
from __future__ import annotations

import contextlib
import imaplib
import os
from collections.abc import Iterator

from adapter_client import DemoSession
from harness import ServerProcess
from raw_clients import RawIMAP

MESSAGE = b"From: a@example.com\r\nTo: demo@localhost\r\nSubject: %d\r\n\r\nbody %d\r\n"


class Env(DemoSession):
    def __init__(self, rt, server: ServerProcess, imaps_port: int) -> None:
        super().__init__(rt, server)
        self.port = server.port("imap")
        self.imaps_port = imaps_port

    def folder(self, name: str):
        folders = self.rt.call(self.session.store().folders)
        return next(f for f in folders if f.name == name)

    def fresh(self, name: str, count: int = 0, flags=()):
        """An empty top-level mail folder `name` holding `count` new messages."""
        async def make():
            store = self.session.store()
            for folder in await store.folders():
                if folder.name == name:
                    await folder.delete()
            folder = await store.create_folder(name)
            if count:
                await folder.append_many([MESSAGE % (i, i) for i in range(count)], flags=flags)
            return await folder.refresh()
        return self.rt.coro(make)

    def imap(self, login: bool = True) -> imaplib.IMAP4:
        m = imaplib.IMAP4("127.0.0.1", self.port, timeout=20)
        if login:
            m.login("demo", self.password)
        return m

    def raw(self, login: bool = False) -> RawIMAP:
        r = RawIMAP(self.port)
        if login:
            assert r.cmd(f"LOGIN demo {self.password}")[-1].startswith(b"r1 OK")
        return r


@contextlib.contextmanager
def running(rt, directory, options: dict[str, str] | None = None,
            environment: dict[str, str] | None = None) -> Iterator[Env]:
    """A `groupware serve` with the demo user under `directory` and an Env on it; with a
    certificate in `options`, imaps listens too. `environment` is added to its environment."""
    options = options or {}
    server = ServerProcess(os.path.join(str(directory), "var"), options, demo=True)
    server.environment.update(environment or {})
    server.start()
    try:
        e = Env(rt, server, server.port("imaps") if "ssl_certificate_file" in options else 0)
        yield e
        e.close()
    finally:
        server.stop()


def standalone(env: Env, tmp_path, *settings: str, server_socket: str | None = None) -> tuple[ServerProcess, int]:
    """`groupware imap` alone against the test server's socket (or another one); its port."""
    options = {"server_socket": server_socket or env.server.socket_path, "log_file": "-",
               "ssl_certificate_file": env.server.options.get("ssl_certificate_file", ""),
               "ssl_private_key_file": env.server.options.get("ssl_private_key_file", ""),
               "imaps_listen": "127.0.0.1:0"}
    options.update(setting.split("=", 1) for setting in settings)
    gateway = ServerProcess(str(tmp_path), options, command="imap").start()
    return gateway, gateway.port("imap")


def stop(gateway: ServerProcess) -> None:
    gateway.stop()
