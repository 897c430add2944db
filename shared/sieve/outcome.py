"""What evaluation hands the delivery pipeline: the envelope in, the actions out."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Envelope:
    """The SMTP/LMTP envelope of one delivery (RFC 5228 §5.4)."""

    sender: str                       # MAIL FROM; "" for the null reverse-path
    recipient: str                    # RCPT TO, possibly with +detail
    original_recipient: str | None = None


@dataclass(frozen=True)
class FileInto:
    mailbox: str                      # IMAP name, "/" delimiter, INBOX case-insensitive
    flags: tuple[str, ...] = ()
    create: bool = False


@dataclass(frozen=True)
class Vacation:
    """A due vacation action (RFC 5230 §4); `vacation_reply` composes the message."""

    reason: str
    subject: str | None = None
    from_: str | None = None
    addresses: tuple[str, ...] = ()
    seconds: int = 7 * 86400
    handle: str = ""
    mime: bool = False


@dataclass
class Outcome:
    keep: bool = True
    keep_flags: tuple[str, ...] = ()
    fileinto: list[FileInto] = field(default_factory=list)
    redirects: list[str] = field(default_factory=list)
    reject: str | None = None
    ereject: bool = False
    vacation: Vacation | None = None
    errors: list[str] = field(default_factory=list)
