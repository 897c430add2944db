"""Rights that rest on who the caller is, not on a user's password.

Two of them, each defined the same way:

- the delivery right (`logonDelivery`): a delivery agent never knows users' passwords;
- the gateway right: a gateway's word for its client's address (`clientAddress` at
  logon) is believed, so that the store's logs and its own brute-force guard see the
  client's address and not the gateway's. From anyone else the store takes the
  address it sees on the socket.

On the store's UNIX socket the caller is the peer's uid as the kernel reports it
(SO_PEERCRED): root, the server's own uid and the accounts of `delivery_uids`
(`gateway_uids`) are trusted. From anywhere (a gateway or delivery agent on another
host, over TLS) a caller may instead present the secret held in
`delivery_secret_file` (`gateway_secret_file`); with that option empty, no secret is
accepted.
"""
from __future__ import annotations

import hmac
import os
import socket
import struct
from typing import Any

from twisted.internet.address import UNIXAddress

from shared.config import Config

_UCRED = struct.Struct("3i")  # pid, uid, gid


def peer_uid(transport: Any) -> int | None:
    """The uid of the process at the other end of a UNIX socket connection; None for
    other transports or when the kernel does not tell."""
    if not isinstance(transport.getHost(), UNIXAddress):
        return None
    try:
        raw = transport.getHandle().getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except (OSError, AttributeError):
        return None
    _, uid, _ = _UCRED.unpack(raw)
    return uid


class CallerRight:
    """The trusted uids and the secret of one right, read once at start."""

    def __init__(self, trusted_uids: frozenset[int], secret: bytes | None) -> None:
        self.trusted_uids = trusted_uids
        self.secret = secret

    @classmethod
    def from_config(cls, cfg: Config, uids_option: str, secret_option: str) -> "CallerRight":
        uids = frozenset({0, os.getuid(), *cfg.get_uids(uids_option)})
        secret = cfg.get_secret(secret_option)
        return cls(uids, secret.encode("utf-8", "surrogateescape") if secret is not None else None)

    @classmethod
    def delivery(cls, cfg: Config) -> "CallerRight":
        return cls.from_config(cfg, "delivery_uids", "delivery_secret_file")

    @classmethod
    def gateway(cls, cfg: Config) -> "CallerRight":
        return cls.from_config(cfg, "gateway_uids", "gateway_secret_file")

    def granted(self, uid: int | None, secret: str | None) -> bool:
        """Whether a caller (its UNIX peer uid, None over TCP; the secret it gave) has the right."""
        if uid is not None and uid in self.trusted_uids:
            return True
        if secret is None or self.secret is None:
            return False
        return hmac.compare_digest(secret.encode("utf-8", "surrogateescape"), self.secret)
