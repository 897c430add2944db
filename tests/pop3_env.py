"""The POP3 gateway under test: a `groupware serve` with the demo user on fixed free ports
(pop3 and pop3s), an adapter session to fill the demo Inbox directly, and poplib clients."""
from __future__ import annotations

import contextlib
import os
import poplib
from collections.abc import Iterator

from adapter_client import DemoSession
from certificates import self_signed_certificate
from harness import ServerProcess, free_port


class Env(DemoSession):
    def __init__(self, rt, server: ServerProcess, port: int, pop3s_port: int) -> None:
        super().__init__(rt, server)
        self.port, self.pop3s_port = port, pop3s_port

    def reset(self, *sources: bytes) -> list[int]:
        """Empty the demo Inbox and append `sources`; returns their uids."""
        inbox = self.inbox()
        self.rt.call(inbox.empty)
        for source in sources:
            self.rt.call(inbox.append, source)
        return self.uids()

    def uids(self) -> list[int]:
        _, table = self.rt.call(self.inbox().query, ["uid"], sort=[("uid", False)])
        return list(table.get("uid", []))

    def pop(self, login: bool = True) -> poplib.POP3:
        p = poplib.POP3("127.0.0.1", self.port, timeout=20)
        if login:
            p.user("demo")
            p.pass_(self.password)
        return p


@contextlib.contextmanager
def running(rt, directory, options: dict[str, str] | None = None) -> Iterator[Env]:
    """A `groupware serve` with the demo user under `directory`, POP3 and POP3S on ports chosen
    here (so the banner can be checked against them), and an Env on it."""
    cert, key = self_signed_certificate(directory)
    port, pop3s = free_port(), free_port()
    server = ServerProcess(os.path.join(str(directory), "var"),
                           {"pop3_listen": f"127.0.0.1:{port}", "pop3s_listen": f"127.0.0.1:{pop3s}",
                            "ssl_certificate_file": cert, "ssl_private_key_file": key, **(options or {})},
                           demo=True).start()
    try:
        assert f"pop3 listening on 127.0.0.1:{port}\n" in server.output
        assert f"pop3s listening on 127.0.0.1:{pop3s}\n" in server.output
        e = Env(rt, server, port, pop3s)
        yield e
        e.close()
    finally:
        server.stop()
