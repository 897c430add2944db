"""Vacation replies: when to answer (RFC 5230 §4.5-§4.6, RFC 3834 §2) and the reply itself
(RFC 5230 §5, RFC 3834 §3, RFC 5322)."""
from __future__ import annotations

import email
import email.policy
import email.utils
from collections.abc import Sequence
from datetime import datetime, timezone
from email.message import EmailMessage

from shared.sieve.message import MessageView, split_address
from shared.sieve.outcome import Envelope, Vacation

# RFC 3834 §2 / RFC 5230 §4.6: senders that are programs or lists, by local part.
_NEVER_LOCAL_PARTS = ("mailer-daemon", "listserv", "majordomo")
_LIST_HEADERS = ("list-id", "list-help", "list-subscribe", "list-unsubscribe", "list-post",
                 "list-owner", "list-archive")
_BULK_PRECEDENCE = ("bulk", "list", "junk")
_RECIPIENT_HEADERS = ("to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc")
_MIME_HEADERS = ("content-type", "content-transfer-encoding", "content-disposition",
                 "content-language", "content-id", "content-description")


def _normalized(address: str) -> str:
    local, domain = split_address(address.strip().strip("<>").lower())
    return f"{local}@{domain}"


def _without_detail(address: str) -> str:
    local, domain = split_address(address)
    return f"{local.split('+', 1)[0]}@{domain}"


def _is_automatic_sender(sender: str) -> bool:
    local = split_address(sender)[0].lower()
    return (local in _NEVER_LOCAL_PARTS or local.startswith("owner-")
            or local.endswith("-request") or local.endswith("-owner"))


def _is_automatic_message(view: MessageView) -> bool:
    """RFC 3834 §2, RFC 5230 §4.6: auto-submitted, bulk and list mail gets no answer."""
    if any(value.strip().lower() != "no" for value in view.header("auto-submitted")):
        return True
    if any(value.strip().lower() in _BULK_PRECEDENCE for value in view.header("precedence")):
        return True
    if any(view.has_header(name) for name in _LIST_HEADERS):
        return True
    suppress = " ".join(view.header("x-auto-response-suppress")).lower()
    return "all" in suppress or "oof" in suppress


def _addressed_to(view: MessageView, ours: Sequence[str]) -> str | None:
    """RFC 5230 §4.5: the first of the user's addresses found in To, Cc, Bcc or Resent-*."""
    wanted = {}
    for address in ours:
        if address:
            wanted.setdefault(_normalized(address), address)
            wanted.setdefault(_without_detail(_normalized(address)), address)
    for name in _RECIPIENT_HEADERS:
        for field in view.addresses(name):
            for address in field:
                key = _normalized(address)
                if key in wanted or _without_detail(key) in wanted:
                    return address
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _body(reply: EmailMessage, vacation: Vacation) -> None:
    """The reason is plain text, or with :mime a MIME entity of its own (RFC 5230 §4.8)."""
    if vacation.mime:
        entity = email.message_from_string(vacation.reason, policy=email.policy.SMTP)
        for name, value in entity.items():
            if name.lower() in _MIME_HEADERS:
                reply[name] = value
        reply.set_payload(entity.get_payload())
        if entity.get_content_type() != "text/plain" or "content-type" in entity:
            return
    # Quoted-printable keeps the reply 7-bit for relays without 8BITMIME.
    encoding = None if vacation.reason.isascii() else "quoted-printable"
    reply.set_content(vacation.reason, charset="utf-8", cte=encoding)


def vacation_reply(vacation: Vacation, message: bytes, envelope: Envelope,
                   own_addresses: Sequence[str] = ()) -> bytes | None:
    """The reply to send to the envelope sender, or None when no reply may go out."""
    view = MessageView(message)
    sender = envelope.sender.strip().strip("<>").strip()
    if not sender or "@" not in sender or _is_automatic_sender(sender):
        return None
    if _is_automatic_message(view):
        return None
    ours = [*own_addresses, *vacation.addresses, envelope.recipient,
            envelope.original_recipient or ""]
    ours_normalized = {_normalized(address) for address in ours if address}
    if _normalized(sender) in ours_normalized:
        return None
    recipient = _addressed_to(view, ours)
    if recipient is None:
        return None

    reply = EmailMessage(policy=email.policy.SMTP)
    reply["From"] = _one_line(vacation.from_ or recipient)
    reply["To"] = sender
    original_subject = _one_line(" ".join(view.header("subject")))
    reply["Subject"] = _one_line(vacation.subject) if vacation.subject is not None \
        else f"Auto: {original_subject}".rstrip()
    reply["Date"] = email.utils.format_datetime(datetime.now(timezone.utc))
    domain = split_address(_normalized(vacation.from_ and email.utils.parseaddr(
        vacation.from_)[1] or recipient))[1] or "localhost"
    reply["Message-ID"] = email.utils.make_msgid(domain=domain)
    message_ids = view.raw_values("message-id")
    if message_ids:
        original_id = _one_line(message_ids[0])
        reply["In-Reply-To"] = original_id
        references = _one_line(" ".join(view.raw_values("references")))
        reply["References"] = f"{references} {original_id}".strip()
    reply["Auto-Submitted"] = "auto-replied"
    _body(reply, vacation)
    if "MIME-Version" not in reply:
        reply["MIME-Version"] = "1.0"
    return reply.as_bytes(policy=email.policy.SMTP)
