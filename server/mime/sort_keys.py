"""The columns IMAP SORT (RFC 5256, RFC 5957) and THREAD sort and group by, made
once from a message's ENVELOPE when it is stored, so that a sort is an ORDER BY.

Strings are compared with the i;unicode-casemap collation (RFC 5051): each
character's simple titlecase, decomposed (NFD), compared octet by octet. The
keys hold that form already, so any engine's binary comparison sorts them right.
"""
from __future__ import annotations

import re
import unicodedata
from email.utils import parsedate_to_datetime
from typing import Any

from server.mime.headers import MISSING_DOMAIN, MISSING_MAILBOX, decode_words

# Sort keys are indexed: longer ones are cut (the order past that many characters is by uid).
KEY_LENGTH = 255
# A References field keeps at most this many (the nearest) ancestors for threading.
MAX_REFERENCES = 100
MESSAGE_ID_LENGTH = 255

SORT_COLUMNS = ("sortSubject", "subjectReply", "sortFrom", "sortTo", "sortCc", "displayFrom", "displayTo",
                "sentDate", "threadMessageId", "threadParents")

_BLANKS = re.compile(r"[ \t\r\n]+")
_TRAILER = re.compile(r"(?:[ \t]*\(fwd\)|[ \t]+)\Z", re.I)
_BLOB = r"\[[^\[\]]*\][ \t]*"
_REFWD = re.compile(rf"(?:{_BLOB})*(?:re|fwd?)[ \t]*(?:{_BLOB})?:", re.I)
_BLOB_PREFIX = re.compile(_BLOB)
_MSG_ID = re.compile(r"<([^<>\s]+)>")


def casemap(text: str) -> str:
    """The i;unicode-casemap form of `text` (RFC 5051 §2): simple titlecase, then NFD."""
    out = []
    for ch in text:
        titled = ch.title()
        out.append(titled if len(titled) == 1 else ch)
    return unicodedata.normalize("NFD", "".join(out))


def base_subject(subject: str | None) -> tuple[str, bool]:
    """(base subject, whether it was a reply or forward) of a decoded subject (RFC 5256 §2.1)."""
    text = _BLANKS.sub(" ", subject or "")                       # (1)
    reply = False
    while True:
        while True:                                               # (2)
            m = _TRAILER.search(text)
            if m is None or not m.group():
                break
            reply = reply or "(" in m.group()
            text = text[:m.start()]
        while True:                                               # (5): (3) and (4) until no match
            if text[:1] in (" ", "\t"):
                text = text.lstrip(" \t")
                continue
            m = _REFWD.match(text)
            if m is not None:                                     # (3)
                text = text[m.end():]
                reply = True
                continue
            m = _BLOB_PREFIX.match(text)
            if m is not None and text[m.end():].strip(" \t"):    # (4)
                text = text[m.end():]
                continue
            break
        if text[:5].lower() == "[fwd:" and text.endswith("]"):   # (6)
            text = text[5:-1]
            reply = True
            continue
        return text, reply


def _key(text: str | None) -> str:
    return casemap(text or "")[:KEY_LENGTH]


def _first_address(addresses: list | None) -> list:
    """The first entry of an ENVELOPE address list, a group's start included, with the
    missing parts Dovecot fills in: [name, adl, mailbox, host], all None for an empty list."""
    if not addresses:
        return [None, None, None, None]
    name, adl, mailbox, host = addresses[0]
    if mailbox is None and host is None:      # "Name <>", or a name alone
        return [name, adl, MISSING_MAILBOX, MISSING_DOMAIN]
    group = any(all(v is None for v in later) for later in addresses[1:])
    if host is None and not group:            # a local part alone
        return [name, adl, mailbox, MISSING_DOMAIN]
    return [name, adl, mailbox, host]


def _mailbox_key(addresses: list | None) -> str:
    """RFC 5256 §3: the addr-mailbox (local part) of the first address."""
    return _key(_first_address(addresses)[2])


def _display_key(addresses: list | None) -> str:
    """RFC 5957 §4: the first address's display name, else its addr-spec."""
    name, _adl, mailbox, host = _first_address(addresses)
    name = decode_words(name)
    if name and name.strip():
        return _key(name.strip())
    return _key(f"{mailbox or ''}@{host}" if host else mailbox)


def message_ids(text: str | None) -> list[str]:
    """The msg-ids of a Message-ID, In-Reply-To or References field, without brackets."""
    return [m for m in _MSG_ID.findall(text or "") if len(m) <= MESSAGE_ID_LENGTH]


def sent_date(date: str | None) -> int | None:
    """The Date field as UTC epoch seconds; None when missing or unreadable (RFC 5256 §2.2)."""
    if not date:
        return None
    try:
        return int(parsedate_to_datetime(date).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def sort_columns(env: dict[str, Any], references: str | None) -> dict[str, Any]:
    """The sort and thread columns of a message from its ENVELOPE fields (raw, as
    server/mime/headers.envelope gives them) and its References field.

    "sentDate" is None when the Date field is unreadable: the store puts the
    internal date there. "threadMessageId" is "" without one. "threadParents" are the
    ancestors' ids, oldest first, space-separated ("" for none): the
    References, or without them the first In-Reply-To msg-id (RFC 5256 §3, REFERENCES (1)(A)).
    """
    base, reply = base_subject(decode_words(env.get("subject")))
    own = message_ids(env.get("messageId"))
    parents = message_ids(references) or message_ids(env.get("inReplyTo"))[:1]
    return {
        "sortSubject": _key(base),
        "subjectReply": int(reply),
        "sortFrom": _mailbox_key(env.get("from")),
        "sortTo": _mailbox_key(env.get("to")),
        "sortCc": _mailbox_key(env.get("cc")),
        "displayFrom": _display_key(env.get("from")),
        "displayTo": _display_key(env.get("to")),
        "sentDate": sent_date(env.get("date")),
        "threadMessageId": own[0] if own else "",
        "threadParents": " ".join(parents[-MAX_REFERENCES:]),
    }
