"""The store server started in-process (as `groupware serve` does) never does storage work on the reactor thread."""
from __future__ import annotations

import threading

from server import service
from server.service import StoreServer
from shared.config import Config
from harness import USERS
from soap_client import RawHTTP
from soap_scenario import exercise_every_operation


class ReactorGuard:
    """Wraps an object so that any method called on the reactor thread is recorded."""

    def __init__(self, target, reactor_thread_ident: list, violations: list) -> None:
        self._target = target
        self._ident = reactor_thread_ident
        self._violations = violations

    def __getattr__(self, name):
        value = getattr(self._target, name)
        if name == "blobs":
            return ReactorGuard(value, self._ident, self._violations)
        if not callable(value):
            return value

        def guarded(*args, **kwargs):
            self._violations.append(None)  # a call went through the guard
            if threading.get_ident() in self._ident:
                self._violations.append(name)
            return value(*args, **kwargs)
        return guarded


class InProcess:
    def __init__(self, server: StoreServer, socket_path: str) -> None:
        self.server = server
        self.socket_path = socket_path

    def connect(self, transport: str) -> RawHTTP:
        if transport == "unix":
            return RawHTTP(("unix", self.socket_path))
        port = next(p.getHost().port for p in self.server.listening_ports if hasattr(p.getHost(), "port"))
        return RawHTTP(("tcp", ("127.0.0.1", port)))


def test_storage_only_runs_in_the_pool(tmp_path, monkeypatch, reactor_thread):  # noqa: F811
    from server.users import hash_password
    socket_path = str(tmp_path / "store.sock")
    cfg = Config({"server_socket": socket_path, "server_listen": "127.0.0.1:0",
                  "disabled_features": "pop3", "threads": "4"}, str(tmp_path))
    storage = service.open_storage(cfg)
    for name, password in USERS.items():
        storage.create_user(name, hash_password(password))
    storage.close()

    reactor_ident: list = []
    violations: list = []
    opened = service.open_storage
    monkeypatch.setattr(service, "open_storage",
                        lambda c: ReactorGuard(opened(c), reactor_ident, violations))
    reactor_thread.call(lambda: reactor_ident.append(threading.get_ident()))

    server = StoreServer(cfg)
    reactor_thread.call(server.start, reactor_thread.reactor)
    try:
        assert len(server.listening_ports) == 2
        exercise_every_operation(InProcess(server, socket_path), "tcp", "inprocess")
    finally:
        reactor_thread.call(server.stop)
    assert None in violations, "the guard saw no storage calls"
    assert [name for name in violations if name is not None] == []
    assert not server.pool.started
