"""Listening sockets shared by the worker processes of `groupware serve`.

The supervising process owns every listening socket. A worker that is about to
listen asks it, over a SOCK_SEQPACKET pair named by `BROKER_ENV`, for the socket
of one address: the supervisor binds it on the first request (so port 0 gets one
real port that every worker shares) and hands the same socket to every later one
(SCM_RIGHTS); the kernel then spreads incoming connections over the workers that
accept on it. UNIX sockets work alike, which SO_REUSEPORT could not give. The
worker also reports here that it is ready, with its banner lines.
"""
from __future__ import annotations

import json
import os
import socket
import stat
from dataclasses import dataclass
from typing import Any

BROKER_ENV = "GROUPWARE_WORKER_BROKER"
MAX_MESSAGE = 64 * 1024
BACKLOG = 128


@dataclass(frozen=True)
class UnixListenAddress:
    """A UNIX socket to listen on at `path` with file mode `mode`; `option` names the
    setting, for errors."""

    path: str
    mode: int
    option: str


def spec_of(address: Any) -> dict[str, Any]:
    if isinstance(address, UnixListenAddress):
        return {"kind": "unix", "path": address.path, "mode": address.mode, "option": address.option}
    return {"kind": "tcp", "host": address.host, "port": address.port}


def bind(spec: dict[str, Any]) -> socket.socket:
    """A listening, non-blocking socket for `spec` (the supervisor's side)."""
    if spec["kind"] == "unix":
        from shared.endpoints import clear_stale_socket, socket_mode
        clear_stale_socket(spec["path"], spec["option"])
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with socket_mode(spec["path"], spec["mode"]):
                sock.bind(spec["path"])
        except BaseException:
            sock.close()
            raise
    else:
        host = spec["host"]
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            from shared.privileges import privileged
            with privileged():  # a port below 1024 under run_as_user
                sock.bind((host or "0.0.0.0", spec["port"]))
        except BaseException:
            sock.close()
            raise
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


class SocketBroker:
    """The supervisor's sockets, by address, handed out on request."""

    def __init__(self) -> None:
        self.sockets: dict[str, socket.socket] = {}
        self.unix_paths: list[str] = []

    def handle(self, channel: socket.socket) -> dict[str, Any] | None:
        """Answer one message from a worker; returns what is not a socket request
        (a `ready` report), or None. Raises EOFError when the worker has gone."""
        data = channel.recv(MAX_MESSAGE)
        if not data:
            raise EOFError
        message = json.loads(data)
        if message.get("op") != "listen":
            return message
        spec = message["spec"]
        key = json.dumps([message.get("name", ""), spec], sort_keys=True)
        try:
            sock = self.sockets.get(key)
            if sock is None:
                sock = self.sockets[key] = bind(spec)
                if spec["kind"] == "unix":
                    self.unix_paths.append(spec["path"])
        except Exception as err:
            from shared.config import ConfigError
            answer = {"error": str(err), "option": err.option if isinstance(err, ConfigError) else None,
                      "problem": err.problem if isinstance(err, ConfigError) else None}
            channel.send(json.dumps(answer).encode())
            return None
        socket.send_fds(channel, [json.dumps({"family": int(sock.family)}).encode()], [sock.fileno()])
        return None

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()
        self.sockets.clear()
        for path in self.unix_paths:
            try:
                if stat.S_ISSOCK(os.lstat(path).st_mode):
                    os.unlink(path)
            except FileNotFoundError:
                pass
        self.unix_paths.clear()


_channel: socket.socket | None = None


def worker_channel() -> socket.socket | None:
    """The channel to the supervisor when this process is one of its workers."""
    global _channel
    if _channel is None:
        # Taken out of the environment: a program this worker runs is no worker.
        fd = os.environ.pop(BROKER_ENV, None)
        if not fd:
            return None
        os.set_inheritable(int(fd), False)
        _channel = socket.socket(fileno=int(fd))
        _channel.setblocking(True)
    return _channel


def shared_socket(address: Any, name: str) -> tuple[int, int]:
    """(fd, family) of the supervisor's listening socket for `address` under `name`;
    the caller closes fd."""
    channel = worker_channel()
    assert channel is not None
    channel.send(json.dumps({"op": "listen", "name": name, "spec": spec_of(address)}).encode())
    data, fds, _flags, _addr = socket.recv_fds(channel, MAX_MESSAGE, 1)
    answer = json.loads(data)
    if "error" in answer:
        for fd in fds:
            os.close(fd)
        if answer.get("option"):
            from shared.config import ConfigError
            raise ConfigError(answer["option"], answer["problem"])
        from twisted.internet.error import CannotListenError
        raise CannotListenError(getattr(address, "host", getattr(address, "path", "")),
                                getattr(address, "port", 0), answer["error"])
    return fds[0], answer["family"]


def report_ready(lines: list[str]) -> None:
    channel = worker_channel()
    if channel is not None:
        channel.send(json.dumps({"op": "ready", "lines": lines}).encode())
