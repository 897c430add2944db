"""The PROXY protocol (HAProxy's, v1 text and v2 binary) on the listeners a load balancer
connects to, so that everything above sees the client's address instead of the balancer's.

Like Dovecot's `inet_listener imap_haproxy { haproxy = yes }`, it is a property of a
listener: the `<name>_haproxy_listen` options (`imap_haproxy_listen`,
`imaps_haproxy_listen`, `pop3_haproxy_listen`, ...) open ports on which every
connection must start with a PROXY header, and only peers in
`haproxy_trusted_networks` may connect to them at all (empty, the default: nobody).
A peer outside the list is closed at once, a trusted peer whose first bytes are not a
valid header (or that sends none within `haproxy_timeout`) is closed too; each with a
log line. The ordinary `<name>_listen` ports never read a PROXY header, so a client
cannot claim another address there.

`ProxyHeaderFactory` wraps a listener's factory below TLS: on an implicit-TLS port the
header comes before the TLS handshake, as haproxy's `send-proxy` sends it in TCP mode.
The wrapped factory's `buildProtocol` is called only once the header is read, with the
client's address, so the connection limits (shared.connlimits), the brute-force guard
and its loopback and `trusted_networks` exemptions, and the logs all count and name the
client; `getPeer()` and `getHost()` return the addresses the header carries. A `LOCAL`
(v2) or `UNKNOWN` (v1) header, which haproxy sends for its health checks, leaves the
connection's own addresses in place (the PROXY protocol spec, section 2.1 and 2.2).

Parsing the header's fields is Twisted's (`twisted.protocols.haproxy`); its
`HAProxyWrappingFactory` is not used as is, since it builds the wrapped protocol before
the header has arrived, drops a header that arrives in pieces, and trusts every peer.
"""
from __future__ import annotations

import ipaddress
import logging
import struct
from dataclasses import dataclass
from typing import Any

from twisted.internet import address, protocol
from twisted.internet.interfaces import IAddress
from twisted.protocols.haproxy._exceptions import InvalidProxyHeader
from twisted.protocols.haproxy._v1parser import V1Parser
from twisted.protocols.haproxy._v2parser import V2Parser
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from zope.interface import directlyProvides, providedBy

from shared.authguard import in_networks

log = logging.getLogger("shared.proxyprotocol")

# A v1 header is one line of at most 107 bytes with its CRLF (the spec, section 2.1).
V1_MAX_LENGTH = 107
V1_SIGNATURE = b"PROXY "
V1_UNKNOWN = b"PROXY UNKNOWN"
V2_SIGNATURE = V2Parser.PREFIX
V2_FIXED_LENGTH = 16  # signature, version/command, family, address length


@dataclass(frozen=True)
class ProxyPolicy:
    """Who may send PROXY headers and how long and large one may be."""

    trusted: tuple[Any, ...]  # ipaddress networks
    timeout: float
    max_header: int

    @classmethod
    def from_config(cls, cfg: Any) -> "ProxyPolicy":
        return cls(tuple(cfg.get_networks("haproxy_trusted_networks")), cfg.get_seconds("haproxy_timeout"),
                   cfg.get_size("haproxy_max_header_size"))

    def trusts(self, host: str) -> bool:
        return in_networks(host, self.trusted)


class BadHeader(Exception):
    """The first bytes of a connection are not a PROXY header we accept."""


def header_end(buffer: bytes, max_header: int) -> int | None:
    """The length of the PROXY header at the start of `buffer`, or None while more of it
    is needed; BadHeader when the bytes cannot start one, or it would be longer than
    `max_header` (v2) or the spec's 107 bytes (v1)."""
    if buffer[:len(V2_SIGNATURE)] == V2_SIGNATURE[:len(buffer)]:
        if len(buffer) < V2_FIXED_LENGTH:
            return None
        if buffer[12] >> 4 != 2:
            raise BadHeader(f"PROXY v2 header of unknown version {buffer[12] >> 4}")
        length = V2_FIXED_LENGTH + struct.unpack("!H", buffer[14:16])[0]
        if length > max_header:
            raise BadHeader(f"PROXY v2 header of {length} bytes, over haproxy_max_header_size={max_header}")
        return length if len(buffer) >= length else None
    if buffer[:len(V1_SIGNATURE)] == V1_SIGNATURE[:len(buffer)]:
        end = buffer.find(b"\r\n", 0, V1_MAX_LENGTH)
        if end >= 0:
            return end + 2
        if len(buffer) >= V1_MAX_LENGTH:
            raise BadHeader(f"PROXY v1 header without CRLF in its first {V1_MAX_LENGTH} bytes")
        return None
    raise BadHeader("no PROXY header")


def client_address(header: bytes) -> tuple[IAddress | None, IAddress | None]:
    """The (source, destination) a complete header names; (None, None) for a `LOCAL` or
    `UNKNOWN` header, or one of a family other than TCP over IPv4 or IPv6, whose
    connection keeps its own addresses. BadHeader for anything malformed."""
    line = header[:-2]
    if line == V1_UNKNOWN or line.startswith(V1_UNKNOWN + b" "):
        # Twisted's parser wants the fields even here; the spec lets UNKNOWN stand alone.
        return None, None
    try:
        if header.startswith(V2_SIGNATURE):
            info = V2Parser.parse(header)
        else:
            info = V1Parser.parse(line)
    except (InvalidProxyHeader, ValueError, KeyError, struct.error) as err:
        raise BadHeader(f"malformed PROXY header ({type(err).__name__})") from None
    source, destination = info.source, info.destination
    if not isinstance(source, (address.IPv4Address, address.IPv6Address)) or source.type != "TCP":
        return None, None
    return _checked(source), _checked(destination)


def _checked(addr: Any) -> IAddress:
    """`addr` as the address a direct connection would have: a valid IP (v1 headers are
    text, unchecked by the parser) in canonical form, IPv4-mapped IPv6 as IPv4."""
    try:
        ip = ipaddress.ip_address(addr.host)
    except ValueError:
        raise BadHeader("PROXY header with a malformed address") from None
    if not 0 <= addr.port <= 65535:
        raise BadHeader("PROXY header with a port out of range")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv4Address):
        return address.IPv4Address("TCP", str(ip), addr.port)
    return address.IPv6Address("TCP", str(ip), addr.port)


class ProxyHeaderReader(ProtocolWrapper):
    """One connection of a PROXY listener: reads the header, then is the transport of the
    protocol the wrapped factory builds for the client's address."""

    def __init__(self, factory: "ProxyHeaderFactory", peer: Any) -> None:
        self.factory = factory
        self.wrappedProtocol: Any = None
        self.buffer = b""
        self.peer = peer
        self.host: Any = None
        self.deadline: Any = None
        self.refused = False

    def logPrefix(self) -> str:
        return f"{self.factory.name} (PROXY)"

    def makeConnection(self, transport: Any) -> None:
        directlyProvides(self, providedBy(transport))
        protocol.Protocol.makeConnection(self, transport)

    def connectionMade(self) -> None:
        self.factory.registerProtocol(self)
        if self.factory.policy.timeout:
            self.deadline = self.factory.reactor.callLater(self.factory.policy.timeout, self._too_slow)

    def dataReceived(self, data: bytes) -> None:
        if self.wrappedProtocol is not None:
            self.wrappedProtocol.dataReceived(data)
            return
        if self.refused:
            return
        self.buffer += data
        try:
            end = header_end(self.buffer, self.factory.policy.max_header)
            if end is None:
                return
            header, rest = self.buffer[:end], self.buffer[end:]
            source, destination = client_address(header)
        except BadHeader as err:
            self._refuse(str(err))
            return
        self.buffer = b""
        self._cancel_deadline()
        if source is not None:
            self.peer, self.host = source, destination
        inner = self.factory.wrappedFactory.buildProtocol(self.peer)
        if inner is None:
            self.transport.loseConnection()
            return
        self.wrappedProtocol = inner
        inner.makeConnection(self)
        if rest and not self.disconnecting:
            inner.dataReceived(rest)

    def getPeer(self) -> Any:
        return self.peer

    def getHost(self) -> Any:
        return self.host if self.host is not None else self.transport.getHost()

    def _refuse(self, why: str) -> None:
        self.refused = True
        self.buffer = b""
        self._cancel_deadline()
        log.warning("%s: connection from %s refused: %s", self.factory.name, self.peer.host, why)
        self.transport.abortConnection()

    def _too_slow(self) -> None:
        self.deadline = None
        self._refuse(f"no PROXY header within haproxy_timeout={self.factory.policy.timeout:g}s")

    def _cancel_deadline(self) -> None:
        if self.deadline is not None:
            if self.deadline.active():
                self.deadline.cancel()
            self.deadline = None

    def connectionLost(self, reason: Any) -> None:
        self._cancel_deadline()
        self.factory.unregisterProtocol(self)
        inner, self.wrappedProtocol = self.wrappedProtocol, None
        if inner is not None:
            inner.connectionLost(reason)


class ProxyHeaderFactory(WrappingFactory):
    """Wraps a listener's factory (below TLS, if any) in the PROXY protocol; `name` is the
    listener's, for the log lines."""

    protocol = ProxyHeaderReader
    noisy = False  # the listener's own factory says when it starts and stops

    def __init__(self, wrapped: Any, policy: ProxyPolicy, reactor: Any, name: str) -> None:
        super().__init__(wrapped)
        self.policy = policy
        self.reactor = reactor
        self.name = name

    def logPrefix(self) -> str:
        return f"{self.name} (PROXY)"

    def buildProtocol(self, addr: Any) -> Any:
        host = getattr(addr, "host", "")
        if not self.policy.trusts(host):
            # Dovecot's answer too: no byte is read from a peer that may not send the header.
            log.warning("%s: connection from %s refused: not in haproxy_trusted_networks", self.name, host)
            return None
        return self.protocol(self, addr)
