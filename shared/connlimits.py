"""Connections at once per remote address, and per user and address, for each gateway.

Every connection costs a gateway process memory and file descriptors whatever the
client does with it, so one address may hold at most `max_connections_per_ip`
connections to one gateway (its listeners together), and one user at most
`mail_max_userip_connections` logged-in connections from one address (Dovecot's
option of the same name). Addresses the brute-force guard exempts (loopback unless
`auth_exempt_loopback = no`, `trusted_networks`: a webmail host, a proxy) are not
counted per address; the per-user count applies to every address.

A connection over the address limit is told so in its protocol's words (the
factory's `refusal`) and closed at once; a login over the per-user limit is refused
with the protocol's answer for `Outcome.TOO_MANY` and the connection stays open.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any

from twisted.internet import protocol

log = logging.getLogger("shared.connlimits")


class Slots:
    """Counts of things held at once per key, each key with at most `limit` (0: no limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held: Counter[Hashable] = Counter()

    def take(self, key: Hashable) -> bool:
        """One more for `key`, or False (nothing taken) when it holds `limit` already."""
        if self.limit and self.held[key] >= self.limit:
            return False
        self.held[key] += 1
        return True

    def give_back(self, key: Hashable) -> None:
        self.held[key] -= 1
        if self.held[key] <= 0:
            del self.held[key]


class Refusal(protocol.Protocol):
    """Says `message` and hangs up: a connection over its address's limit."""

    def __init__(self, message: bytes) -> None:
        self.message = message

    def connectionMade(self) -> None:
        self.transport.write(self.message)
        self.transport.loseConnection()


class ConnectionLimits:
    """The two counts of one gateway service (all its listeners), as the module says."""

    def __init__(self, per_ip: int, per_user_ip: int, exempt: Callable[[str], bool]) -> None:
        self.per_ip = Slots(per_ip)
        self.per_user_ip = Slots(per_user_ip)
        self.exempt = exempt

    @classmethod
    def from_config(cls, cfg: Any, exempt: Callable[[str], bool], per_user: bool = True) -> "ConnectionLimits":
        per_user_ip = cfg.get_int("mail_max_userip_connections") if per_user else 0
        return cls(cfg.get_int("max_connections_per_ip"), per_user_ip, exempt)

    def connection(self, factory: Any, build: Callable[[Any], Any], addr: Any, refusal: bytes, name: str) -> Any:
        """`build(addr)`'s protocol, counted by `addr`'s host until its connection is lost;
        a `Refusal` saying `refusal` when the host holds its limit already."""
        host = getattr(addr, "host", "") or ""
        if not host or self.exempt(host):
            return build(addr)
        if not self.per_ip.take(host):
            log.warning("%s: too many connections from %s (max_connections_per_ip=%d), refused",
                        name, host, self.per_ip.limit)
            refused = Refusal(refusal)
            refused.factory = factory
            return refused
        proto = build(addr)
        lost = proto.connectionLost

        def connection_lost(*args: Any, **kwargs: Any) -> Any:
            self.per_ip.give_back(host)
            return lost(*args, **kwargs)

        proto.connectionLost = connection_lost
        return proto

    def user_login(self, user: str, host: str) -> Callable[[], None] | None:
        """Counts a login of `user` from `host`: the function that gives the slot back, or
        None when the pair holds `mail_max_userip_connections` already."""
        key = (user.lower(), host)
        if not self.per_user_ip.limit:
            return lambda: None
        if not self.per_user_ip.take(key):
            return None
        given_back = []

        def give_back() -> None:
            if not given_back:
                given_back.append(True)
                self.per_user_ip.give_back(key)
        return give_back
