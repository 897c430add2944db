"""SASL responses as every gateway receives them (RFC 4422) and the PLAIN mechanism (RFC 4616).

The gateways frame the exchange in their own protocol (IMAP AUTHENTICATE, POP3 AUTH,
ManageSieve AUTHENTICATE); decoding what the client answered is the same for all.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass


def decode_response(data: bytes) -> bytes | None:
    """A base64 SASL response; `=` is an empty one (RFC 4422 §5); None when it is not base64."""
    data = data.strip()
    if data == b"=":
        return b""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


@dataclass(frozen=True)
class PlainCredentials:
    authzid: str
    user: str
    password: str

    @property
    def for_someone_else(self) -> bool:
        """Whether the client asks to act as another user: nobody may (no proxy logins)."""
        return bool(self.authzid) and self.authzid != self.user


def plain_credentials(message: bytes) -> PlainCredentials | None:
    """`authzid NUL authcid NUL passwd` (RFC 4616 §2), or None when it is not that."""
    parts = message.split(b"\0")
    if len(parts) != 3:
        return None
    return PlainCredentials(*(part.decode("utf-8", "replace") for part in parts))
