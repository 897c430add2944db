"""Mail that delivery sends on: Sieve redirects and vacation replies, through an SMTP relay.

The relay is the site's MTA (`relay_host`, `relay_port`), reached with
`smtplib` in a worker thread so the reactor never blocks. Vacation replies go
out with the null envelope sender `<>` (RFC 5230 §5.1, RFC 3834 §3.3) so that
nothing answers them; redirects keep the original envelope sender (RFC 5228
§4.2, as Dovecot does without SRS) so bounces reach whoever wrote the message.

Loops: delivery prepends `Delivered-To: <recipient>` to every redirected copy
(as Postfix's local(8) does); a message that already carries the recipient's
own `Delivered-To`, or more than `MAX_HOPS` of them, is not redirected again.
"""
from __future__ import annotations

import email.utils
import logging
import smtplib
from collections.abc import Iterable, Sequence
from typing import Any

from twisted.internet import threads

log = logging.getLogger("shared.relay")

MAX_HOPS = 30  # Delivered-To headers a message may carry before we stop redirecting it


def delivered_to(headers: Any) -> list[str]:
    """The addresses of a message's `Delivered-To` headers, lower-cased."""
    return [email.utils.parseaddr(value)[1].lower() or str(value).strip().lower()
            for value in headers.get_all("Delivered-To", [])]


def redirect_loops(headers: Any, recipient: str) -> bool:
    """Whether redirecting a message delivered to `recipient` would send it round again."""
    seen = delivered_to(headers)
    return recipient.lower() in seen or len(seen) > MAX_HOPS


def redirected_copy(message: bytes, recipient: str) -> bytes:
    """The message as it is redirected: with the redirecting recipient's Delivered-To on top."""
    return f"Delivered-To: {recipient}\r\n".encode() + message


class Relay:
    """Sends whole messages to the configured relay; `enabled` is false without `relay_host`."""

    def __init__(self, cfg: Any, reactor: Any, prefix: str = "relay") -> None:
        """Reads `<prefix>_host`, `<prefix>_port` and `<prefix>_timeout` (iMIP has its own: imip_smtp)."""
        self.reactor = reactor
        self.host = cfg.get(f"{prefix}_host")
        self.port = cfg.get_int(f"{prefix}_port")
        self.timeout = cfg.get_seconds(f"{prefix}_timeout")

    @property
    def enabled(self) -> bool:
        return bool(self.host)

    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> Any:
        """A Deferred that fires once the relay accepted the message for every recipient;
        it fails with the SMTP error otherwise. `sender` "" is the null sender `<>`."""
        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                                         self._send, sender, list(recipients), message)

    def _send(self, sender: str, recipients: Iterable[str], message: bytes) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            refused = smtp.sendmail(sender, list(recipients), message)
        if refused:
            raise smtplib.SMTPRecipientsRefused(refused)
