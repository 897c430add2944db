"""Who may deliver mail: the delivery right of `logonDelivery`.

A delivery agent never knows users' passwords, so the right rests on who the caller
is. On the store's UNIX socket that is the peer's uid as the kernel reports it
(SO_PEERCRED): root, the server's own uid and the `delivery_uids` accounts are
trusted. From anywhere (a delivery agent on another host, over TLS) a caller may
instead present the secret held in `delivery_secret_file`; with that option empty,
no secret is accepted.
"""
from __future__ import annotations

import hmac
import os
import socket
import struct
from typing import Any

from twisted.internet.address import UNIXAddress

from shared.config import Config, ConfigError

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


class DeliveryRight:
    """The trusted uids and the delivery secret, read once at start."""

    def __init__(self, trusted_uids: frozenset[int], secret: bytes | None) -> None:
        self.trusted_uids = trusted_uids
        self.secret = secret

    @classmethod
    def from_config(cls, cfg: Config) -> "DeliveryRight":
        uids = frozenset({0, os.getuid(), *cfg.get_uids("delivery_uids")})
        path = cfg.get_file("delivery_secret_file")
        secret = None
        if path is not None:
            with open(path, "rb") as fp:
                secret = fp.read().strip()
            if not secret:
                raise ConfigError("delivery_secret_file", f"{path} is empty")
        return cls(uids, secret)

    def granted(self, uid: int | None, secret: str | None) -> bool:
        """Whether a caller (its UNIX peer uid, None over TCP; the secret it gave) may deliver."""
        if uid is not None and uid in self.trusted_uids:
            return True
        if secret is None or self.secret is None:
            return False
        return hmac.compare_digest(secret.encode("utf-8", "surrogateescape"), self.secret)
