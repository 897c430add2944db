"""Change notifications between the store processes of one host, over UNIX datagrams.

Every store process binds a datagram socket in one shared directory (by default
beside the SQLite file, so every process on that database finds it) and sends
each batch of changes to every other socket there. No server sits in between;
a socket left by a process that died is removed by the first sender it refuses.
"""
from __future__ import annotations

import errno
import logging
import os
import secrets
import socket
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import DatagramProtocol


log = logging.getLogger(__name__)

SUFFIX = ".sock"
# A batch is one datagram; the kernel queues this much for a listener that is busy.
RECEIVE_BUFFER = 1 << 20
# sockaddr_un's sun_path holds 108 bytes with its terminating NUL.
MAX_SOCKET_PATH = 107


class _Listener(DatagramProtocol):
    def __init__(self, heard: Callable[[bytes], None]) -> None:
        self.heard = heard

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.heard(data)


class DatagramRelay:
    def __init__(self, reactor: Any, directory: str) -> None:
        self.reactor = reactor
        self.directory = os.path.abspath(directory)
        self.name = f"{os.getpid()}-{secrets.token_hex(4)}{SUFFIX}"
        self.path = os.path.join(self.directory, self.name)
        # What bind and sendto name the directory by: its path, or, when that is too
        # long for a socket address (108 bytes), the directory opened and named through
        # /proc/self/fd.
        self._base = self.directory
        self._dir_fd: int | None = None
        self._port: Any = None
        self._sender: socket.socket | None = None
        self._peers: list[str] = []
        self._seen: float | None = None  # the directory's mtime when _peers was read
        self._full_reported = False

    def start(self, heard: Callable[[bytes], None]) -> Deferred:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        if len(self.path.encode()) > MAX_SOCKET_PATH:
            self._dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            self._base = f"/proc/self/fd/{self._dir_fd}"
        self._port = self.reactor.listenUNIXDatagram(self._address(self.name), _Listener(heard), mode=0o600)
        self._port.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sender.setblocking(False)
        return succeed(None)

    def publish(self, message: bytes) -> None:
        if self._sender is None:
            return
        for peer in self._current_peers():
            self._send(message, peer)

    def _current_peers(self) -> list[str]:
        """The other processes' sockets; the directory is listed again only when it changed."""
        try:
            mtime = os.stat(self.directory).st_mtime_ns
        except FileNotFoundError:
            return []
        if mtime != self._seen:
            self._seen = mtime
            self._peers = [name for name in os.listdir(self.directory) if name.endswith(SUFFIX) and name != self.name]
        return self._peers

    def _address(self, name: str) -> str:
        return f"{self._base}/{name}"

    def _send(self, datagram: bytes, peer: str) -> None:
        """One datagram to the socket named `peer` in the directory."""
        assert self._sender is not None
        try:
            self._sender.sendto(datagram, self._address(peer))
        except (ConnectionRefusedError, FileNotFoundError):
            # Its process is gone (killed before it could remove the socket).
            try:
                os.unlink(os.path.join(self.directory, peer))
            except FileNotFoundError:
                pass
            self._seen = None
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.ENOBUFS):
                raise
            if not self._full_reported:
                self._full_reported = True
                log.warning("store process at %s is not reading its change notifications; "
                            "its push waiters hear of some changes only at their timeout", peer)

    def stop(self) -> Deferred:
        if self._sender is not None:
            self._sender.close()
            self._sender = None
        if self._port is not None:
            port, self._port = self._port, None
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            stopped = port.stopListening() or succeed(None)
        else:
            stopped = succeed(None)
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None
        return stopped



def publish_once(directory: str, message: bytes) -> int:
    """Send `message` to every store process listening in `directory`, from a process that
    does not listen itself (an admin command that changed folders, so that IDLE clients
    hear of it at once); the number of processes reached."""
    try:
        names = [name for name in os.listdir(directory) if name.endswith(SUFFIX)]
    except FileNotFoundError:
        return 0
    if not names:
        return 0
    base, dir_fd = directory, None
    if len(os.path.join(os.path.abspath(directory), names[0]).encode()) > MAX_SOCKET_PATH:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        base = f"/proc/self/fd/{dir_fd}"
    reached = 0
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.setblocking(False)
            for name in names:
                try:
                    sender.sendto(message, f"{base}/{name}")
                    reached += 1
                except OSError:
                    pass  # gone, or not reading: it hears of the change at its next poll
    finally:
        if dir_fd is not None:
            os.close(dir_fd)
    return reached
