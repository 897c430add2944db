"""iTIP by mail (iMIP, RFC 6047) to attendees and organizers outside the store.

The message goes through the relay named by `imip_smtp_host` (off when empty) as a
multipart/alternative with a plain-text summary and the iTIP object as
`text/calendar; method=...` (RFC 6047 section 2.4). Sending never blocks the reactor
(shared.relay sends in a worker thread); a relay that fails is tried again
`imip_retries` times, waiting `imip_retry_delay` seconds and twice that each time after.
"""
from __future__ import annotations

import email.policy
import email.utils
import logging
from email.message import EmailMessage
from typing import Any

from twisted.internet import defer, task, threads

from shared import itip
from shared.relay import Relay

log = logging.getLogger("gateways.caldav.imip")

SUBJECTS = {"REQUEST": "Invitation", "REPLY": "Reply", "CANCEL": "Cancelled"}


def imip_message(originator: str, recipient: str, itip_text: str, sender: str = "") -> bytes:
    """The RFC 6047 message carrying `itip_text` from `originator` to `recipient`."""
    cal = itip.parse(itip_text)
    kind = itip.method(cal) or "REQUEST"
    summary = ""
    for comp in itip.components(cal):
        summary = str(comp.get("SUMMARY", "")) or summary
        if summary:
            break
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = originator
    if sender and sender.lower() != originator.lower():
        msg["Sender"] = sender
    msg["To"] = recipient
    msg["Subject"] = f"{SUBJECTS.get(kind, kind.title())}: {summary}" if summary else SUBJECTS.get(kind, kind)
    msg["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = email.utils.make_msgid(domain=originator.rpartition("@")[2] or None)
    msg.set_content(f"{SUBJECTS.get(kind, kind.title())}: {summary}\n", charset="utf-8")
    component = itip.components(cal)[0].name if itip.components(cal) else "VEVENT"
    msg.add_alternative(itip_text.encode("utf-8"), maintype="text", subtype="calendar",
                        params={"method": kind, "charset": "UTF-8", "component": component}, cte="base64")
    return msg.as_bytes()


class ImipSender:
    """Sends iMIP messages through the iMIP relay; `enabled` is false without a host."""

    def __init__(self, cfg: Any, reactor: Any) -> None:
        self.reactor = reactor
        self.relay = Relay(cfg, reactor, prefix="imip_smtp")
        self.sender = cfg.get("imip_sender").strip()
        self.retries = cfg.get_int("imip_retries")
        self.retry_delay = cfg.get_seconds("imip_retry_delay")
        # Messages on their way (sent or waiting for a retry), for tests and shutdown.
        self.pending: set[defer.Deferred] = set()

    @property
    def enabled(self) -> bool:
        return self.relay.enabled

    def send(self, originator: str, recipient: str, itip_text: str) -> defer.Deferred:
        """Send (on the reactor thread); fires with True once the relay took the message,
        False when it gave up; never fails."""
        d = defer.ensureDeferred(self._send(originator, recipient, itip_text))
        self.pending.add(d)
        d.addBoth(lambda result: (self.pending.discard(d), result)[1])
        return d

    async def _send(self, originator: str, recipient: str, itip_text: str) -> bool:
        try:
            data = await threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), imip_message,
                                                   originator, recipient, itip_text, self.sender)
        except Exception as exc:  # noqa: BLE001 - a message we cannot build is logged, not raised
            log.error("imip: message to %s not built: %s", recipient, exc)
            return False
        envelope_sender = self.sender or originator
        delay = self.retry_delay
        for attempt in range(self.retries + 1):
            try:
                await self.relay.send(envelope_sender, [recipient], data)
                log.info("imip: sent from %s to %s", originator, recipient)
                return True
            except Exception as exc:  # noqa: BLE001 - any relay problem is retried, then logged
                if attempt == self.retries:
                    log.error("imip: to %s failed after %d attempts: %s", recipient, attempt + 1, exc)
                    return False
                log.warning("imip: to %s failed (%s); again in %s s", recipient, exc, delay)
                await task.deferLater(self.reactor, delay, lambda: None)
                delay *= 2
        return False
