"""What one LMTP connection knows between commands: its limits and the mail transaction."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Limits:
    """The bounds a client's work is held to (README: "LMTP delivery")."""

    max_message_size: int = 64 * 1024 * 1024  # octets of message data, before trace headers
    max_line_length: int = 65536  # octets of one message line
    max_recipients: int = 100  # accepted RCPTs of one transaction
    timeout: float = 300  # seconds a connection may stay idle
    max_bad_commands: int = 20  # syntax and sequence errors before the connection is closed
    max_connections: int = 100  # connections served at once

    @classmethod
    def from_config(cls, cfg: Any) -> "Limits":
        return cls(max_message_size=cfg.get_size("lmtp_max_message_size"),
                   max_line_length=cfg.get_size("lmtp_max_line_length"),
                   max_recipients=cfg.get_int("lmtp_max_recipients"),
                   timeout=cfg.get_seconds("lmtp_timeout"),
                   max_connections=cfg.get_int("lmtp_max_connections"))


@dataclass
class Transaction:
    """One mail transaction (RFC 5321 §3.3): MAIL, its RCPTs, then DATA or BDAT."""

    sender: str
    recipients: list[Any] = field(default_factory=list)  # what Deliverer.resolve answered, in order
    data: Any = None  # gateways.lmtp.content.MessageData while DATA/BDAT chunks arrive
    spool: Any = None  # shared.spool.Spool of the message
    chunking: bool = False  # BDAT was used: DATA is now out of sequence (RFC 3030 §3)

    def discard(self) -> None:
        """Forget the message data and remove its spool file."""
        if self.spool is not None:
            self.spool.discard()
        self.spool = None
        self.data = None
