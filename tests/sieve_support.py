"""Helpers of the Sieve tests: compile and evaluate in one call, build messages."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timezone

from shared.sieve import Envelope, Outcome, SieveLimits, compile_script, evaluate

NOW = datetime(2026, 12, 7, 11, 0, 0, tzinfo=timezone.utc)
ENVELOPE = Envelope(sender="coyote@desert.example.org", recipient="roadrunner@acme.example.com")


def message(*headers: str, body: str = "Hello.\r\n") -> bytes:
    """An RFC 5322 message from header lines and a body, CRLF line ends."""
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode("utf-8")


SIMPLE = message("From: coyote@desert.example.org", "To: roadrunner@acme.example.com",
                 "Subject: I have a present for you", "Date: Tue, 1 Apr 1997 09:06:31 -0800",
                 "Message-ID: <present@desert.example.org>",
                 body="Look, I'm sorry about the whole anvil thing.\r\n")


def run(script: str, raw: bytes = SIMPLE, envelope: Envelope = ENVELOPE,
        mailboxes: Iterable[str] = (), now: datetime = NOW,
        limits: SieveLimits | None = None) -> Outcome:
    """Compile and evaluate; a run-time error fails the test unless asked for."""
    known = {name.lower() for name in mailboxes}
    exists: Callable[[str], bool] = lambda name: name.lower() in known
    compiled = compile_script(script, limits=limits or SieveLimits())
    return evaluate(compiled, raw, envelope, mailbox_exists=exists, now=now, limits=limits)


def folders(outcome: Outcome) -> list[str]:
    return [target.mailbox for target in outcome.fileinto]
