"""Address options as Twisted endpoints: the one place listeners and the store address are read.

Admins keep writing Kopano-style values: listeners as `*:143 127.0.0.1:1143 [::1]:143`
(`*` or nothing is every IPv4 address), the store server's address as a socket
path, `unix:PATH`, `tcp:HOST:PORT` or `tls:HOST:PORT[:ca=FILE]`. Here they become
the description strings `serverFromString` and `clientFromString` take, with
colons and backslashes in addresses and paths escaped as Twisted's syntax wants.

TLS is layered on by our own code (shared.tls) rather than through the `ssl:` and
`tls:` descriptions, whose options cannot express our TLS floor or a CA file.
"""
from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from dataclasses import dataclass
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from twisted.internet import defer, tcp, unix
from twisted.internet.endpoints import (
    HostnameEndpoint, clientFromString, quoteStringArgument, serverFromString, wrapClientTLS,
)
from twisted.internet.interfaces import IListeningPort, IStreamClientEndpoint


from shared.config import ConfigError
from shared.socketshare import UnixListenAddress, shared_socket, worker_channel

# Seconds a connection to the store server may take to open.
CONNECT_TIMEOUT = 10


class ListenAddress(NamedTuple):
    host: str  # "" is every IPv4 address
    port: int

    def description(self) -> str:
        """The `serverFromString` description of this listener."""
        interface = f":interface={quoteStringArgument(self.host)}" if self.host else ""
        return f"tcp:{self.port}{interface}"


def parse_address(value: str, option: str = "listen address") -> ListenAddress:
    """`host:port`, `[v6]:port` or `*:port`."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(option, f"expected host:port, got {value!r}")
    host = host.strip("[]")
    return ListenAddress("" if host in ("", "*") else host, int(port))


def parse_listen(value: str, option: str = "listen address") -> list[ListenAddress]:
    """A space- or comma-separated list of addresses."""
    return [parse_address(item, option) for item in value.replace(",", " ").split()]


def parse_sockets(value: str, option: str = "listen address") -> list[ListenAddress | str]:
    """Listeners that may also be UNIX sockets: `/path/x.sock` or `unix:PATH` beside
    `host:port` items, space- or comma-separated."""
    out: list[ListenAddress | str] = []
    for item in value.replace(",", " ").split():
        if item.startswith("unix:"):
            item = item[5:]
            if not item:
                raise ConfigError(option, "expected unix:PATH, got 'unix:'")
            out.append(item)
        elif item.startswith("/"):
            out.append(item)
        else:
            out.append(parse_address(item, option))
    return out


def clear_stale_socket(path: str, option: str) -> None:
    """Remove a socket file left by a dead process; refuse to steal a live one."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ConfigError(option, f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError as err:
        if err.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    finally:
        probe.close()
    # Like a port in use: a start-up failure, not a bad value.
    raise RuntimeError(f"another server is already listening on {path}")


def unix_description(path: str, mode: int) -> str:
    """The `serverFromString` description of a UNIX socket with file mode `mode`."""
    return f"unix:address={quoteStringArgument(path)}:mode={mode:o}:lockfile=0"


def listen(reactor: Any, address: "ListenAddress | UnixListenAddress", factory: Any,
           tls_options: Any = None, name: str = "", proxy: Callable[[Any], Any] | None = None) -> defer.Deferred:
    """Listen on a TCP address or a UNIX socket (a stale one of a dead process is
    replaced, a live one is an error), under TLS with `tls_options`, and below TLS the
    factory `proxy(factory)` gives when it is set (shared.proxyprotocol: a PROXY header
    first); fires with the IListeningPort. The port is bound at once, so the Deferred
    has already fired (or failed with CannotListenError) when this returns.

    In a worker process of `groupware serve` the socket comes from the supervisor
    (shared.socketshare), so every worker accepts on the same one; `name` tells
    listeners on the same address apart (two on port 0 are two sockets)."""
    if tls_options is not None:
        # What reactor.listenSSL does too: TLS in memory over a plain TCP port.
        from twisted.protocols.tls import TLSMemoryBIOFactory
        factory = TLSMemoryBIOFactory(tls_options, False, factory)
    if proxy is not None:
        # The header comes before the TLS handshake (haproxy's send-proxy in TCP mode).
        factory = proxy(factory)
    if worker_channel() is not None:
        return defer.maybeDeferred(_adopt, reactor, address, factory, name)
    if isinstance(address, UnixListenAddress):
        clear_stale_socket(address.path, address.option)
        with socket_mode(address.path, address.mode):
            return serverFromString(reactor, unix_description(address.path, address.mode)).listen(factory)
    from shared.privileges import privileged
    with privileged():  # a port below 1024 under run_as_user
        return serverFromString(reactor, address.description()).listen(factory)


@contextlib.contextmanager
def socket_mode(path: str, mode: int) -> Iterator[None]:
    """Bind a UNIX socket at `path` inside this block: it never has more permissions than
    `mode`, being bound under a umask that leaves no other bits (chmod after bind would
    leave a moment in which the umask's mode lets other local users connect), and has
    `mode` exactly afterwards."""
    previous = os.umask(0o777 & ~mode)
    try:
        yield
    finally:
        os.umask(previous)
    if os.path.exists(path):
        os.chmod(path, mode)  # bits the umask of the process had taken away


class _SharedUnixPort(unix.Port):
    """A UNIX listening socket adopted from the supervisor, which owns its file: a
    worker that stops leaves it for the others and the next worker."""

    def connectionLost(self, reason: Any) -> None:
        tcp.Port.connectionLost(self, reason)


def _adopt(reactor: Any, address: Any, factory: Any, name: str) -> IListeningPort:
    fd, family = shared_socket(address, name)
    try:
        if family == socket.AF_UNIX:
            port = _SharedUnixPort._fromListeningDescriptor(reactor, fd, factory)
            port.startListening()
            return port
        return reactor.adoptStreamPort(fd, family, factory)
    finally:
        os.close(fd)  # the port holds a duplicate


def port_address(port: IListeningPort) -> str:
    """`host:port` of a listening TCP port, the real port also for port 0; a UNIX
    socket's path."""
    address = port.getHost()
    if not hasattr(address, "port"):
        name = address.name
        return name.decode() if isinstance(name, bytes) else str(name)
    return f"{address.host}:{address.port}"


@dataclass(frozen=True)
class StoreAddress:
    """Where the store server is: a UNIX socket `path`, or `host` and `port` (over TLS
    when `tls`, checked against `ca_file` or the platform's trust store)."""

    path: str | None = None
    host: str = ""
    port: int = 0
    tls: bool = False
    ca_file: str | None = None

    @property
    def is_tcp(self) -> bool:
        return self.path is None

    def host_header(self) -> str:
        if self.path is not None:
            return "localhost"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_store_address(value: str, option: str = "server_socket") -> StoreAddress:
    """A socket path, `unix:PATH`, `tcp:HOST:PORT` or `tls:HOST:PORT[:ca=FILE]`
    (HOST may be `[v6]`)."""
    kind, sep, rest = value.partition(":")
    if not sep or kind not in ("tcp", "tls", "unix"):
        return StoreAddress(path=value)
    if kind == "unix":
        return StoreAddress(path=rest)
    expected = f"expected {kind}:host:port, got {value!r}"
    if rest.startswith("["):
        host, bracket, rest = rest[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ConfigError(option, expected)
        port, _, extra = rest[1:].partition(":")
    else:
        host, _, rest = rest.partition(":")
        port, _, extra = rest.partition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(option, expected)
    ca_file = None
    if extra:
        if kind != "tls" or not extra.startswith("ca=") or ":" in extra:
            raise ConfigError(option, f"unknown endpoint option in {value!r}; only tls: takes ca=<file>")
        ca_file = extra[3:]
    return StoreAddress(host=host, port=int(port), tls=kind == "tls", ca_file=ca_file)


def client_endpoint(reactor: Any, address: StoreAddress, ca_file: str | None = None) -> IStreamClientEndpoint:
    """The endpoint that connects to `address`, verifying the server under TLS."""
    if address.path is not None:
        path = quoteStringArgument(address.path)
        return clientFromString(reactor, f"unix:path={path}:timeout={CONNECT_TIMEOUT}")
    # clientFromString's tcp: resolves IPv4 only; HostnameEndpoint tries every
    # address of the name (RFC 8305), as the adapter always has.
    endpoint: IStreamClientEndpoint = HostnameEndpoint(
        reactor, address.host.encode("idna"), address.port, timeout=CONNECT_TIMEOUT)
    if address.tls:
        from shared.tls import client_options  # only TLS users pay for pyOpenSSL
        endpoint = wrapClientTLS(client_options(address.host, address.ca_file or ca_file), endpoint)
    return endpoint


def answer_at_once(transport: Any) -> None:
    """Turn Nagle's algorithm off on a TCP transport: a small answer to a pipelined command
    would otherwise wait about 40 ms for the peer's delayed ACK. Other transports (UNIX
    sockets, TLS over memory) have nothing to turn off."""
    try:
        transport.setTcpNoDelay(True)
    except (AttributeError, OSError, NotImplementedError):
        pass
