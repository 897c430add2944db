"""Incoming iMIP (RFC 6047): the iTIP object a delivered message carries, if any.

Delivery (shared.delivery) hands a message whose text/calendar part has a METHOD of
REQUEST, REPLY or CANCEL to the store's scheduling (`scheduleMessage`), which applies it
to the recipient's calendar as it does for messages between users of the store. Mail
is easy to forge, so this is opt-in (`lmtp_apply_imip`) and the message's From must be
the iTIP originator (RFC 6047 section 3.1: the ORGANIZER of a REQUEST or CANCEL, the
ATTENDEE of a REPLY); the store then changes only copies that originator organizes.
"""
from __future__ import annotations

import email.parser
import email.policy
import email.utils
from typing import Any

from shared import itip
from shared.errors import BadRequest

# Parts of a message looked at for the iTIP object, at most.
MAX_PARTS = 50


def may_carry_itip(headers: Any) -> bool:
    """Whether a message with these headers can hold a text/calendar part."""
    kind = str(headers.get("Content-Type", "text/plain")).split(";")[0].strip().lower()
    return kind == "text/calendar" or kind.startswith("multipart/")


def itip_of(message: bytes) -> str | None:
    """The iTIP text of a message (its first text/calendar part with a METHOD this server
    applies) when its From is the originator the object names; None otherwise."""
    parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(message)
    sender = email.utils.parseaddr(str(parsed.get("From", "")))[1].lower()
    for n, part in enumerate(parsed.walk()):
        if n >= MAX_PARTS:
            return None
        if part.get_content_type() != "text/calendar":
            continue
        try:
            text = part.get_content()
            cal = itip.parse(text if isinstance(text, str) else text.decode("utf-8"))
        except (BadRequest, LookupError, ValueError, UnicodeDecodeError):
            continue
        kind = itip.method(cal)
        if kind not in itip.METHODS:
            continue
        originators = itip.attendees(cal) if kind == "REPLY" else [itip.organizer(cal) or ""]
        if not sender or originators != [sender]:
            return None
        return itip.serialize(cal)
    return None
