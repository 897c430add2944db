"""IMAP URLs (RFC 5092) naming a message or a body part, as CATENATE's URL parts do
(RFC 4469 §5).

Three forms are read: absolute (`imap://user@host/INBOX;UIDVALIDITY=9/;UID=20`),
server-relative (`/INBOX;UIDVALIDITY=9/;UID=20/;SECTION=1.MIME`) and relative to
the selected mailbox (`;UID=20/;SECTION=HEADER`). The mailbox is percent-encoded
UTF-8 (RFC 5092 §3.3), the section a percent-encoded section spec of FETCH
(`1.2.MIME`, `HEADER.FIELDS (From To)`), PARTIAL an octet range. URLAUTH and EXPIRE
parts are not taken here: such URLs are refused.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from gateways.imap.grammar import commands as c
from gateways.imap.grammar import parser
from gateways.imap.grammar.errors import ParseError
from gateways.imap.grammar.reader import Reader

_UID = re.compile(r"/;UID=", re.IGNORECASE)
_UIDVALIDITY = re.compile(r";UIDVALIDITY=([1-9][0-9]{0,9})\Z", re.IGNORECASE)
_PARAMETER = re.compile(r";(UID|SECTION|PARTIAL)=(.*)\Z", re.IGNORECASE | re.DOTALL)
_NUMBER = re.compile(r"[1-9][0-9]{0,9}\Z")
_PARTIAL = re.compile(r"([0-9]{1,10})(?:\.([1-9][0-9]{0,9}))?\Z")


class BadUrl(ValueError):
    """Not an IMAP URL of a message or body part that this server reads."""


@dataclass(frozen=True)
class MessageUrl:
    """`mailbox` None for a URL relative to the selected mailbox; `user` None when the
    URL names none; `partial` (offset, length or None)."""
    mailbox: str | None
    uid: int
    uidvalidity: int | None = None
    section: c.Section | None = None
    partial: tuple[int, int | None] | None = None
    user: str | None = None


def _decoded(text: str) -> str:
    try:
        return unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        raise BadUrl("not UTF-8") from None


def parse(url: str) -> MessageUrl:
    """The message or part `url` names; BadUrl for anything else."""
    user = None
    rest = url
    if rest[:7].lower() == "imap://":
        authority, slash, path = rest[7:].partition("/")
        if not slash:
            raise BadUrl("no mailbox")
        if "@" in authority:
            userinfo = authority.rpartition("@")[0]
            name, _, auth = userinfo.partition(";")
            if auth and not auth.upper().startswith("AUTH="):
                raise BadUrl("bad user information")
            user = _decoded(name)
        rest = "/" + path
    mailbox = None
    uidvalidity = None
    if rest.startswith("/"):
        found = _UID.search(rest)
        if found is None:
            raise BadUrl("no UID")
        head, rest = rest[1:found.start()], rest[found.start() + 1:]
        validity = _UIDVALIDITY.search(head)
        if validity is not None:
            uidvalidity = int(validity.group(1))
            head = head[:validity.start()]
        if not head or ";" in head:
            raise BadUrl("bad mailbox")
        mailbox = _decoded(head)
    elif not rest.startswith(";"):
        raise BadUrl("not an IMAP URL")
    values: dict[str, str] = {}
    for segment in rest.split("/;"):
        matched = _PARAMETER.match(segment if segment.startswith(";") else ";" + segment)
        if matched is None or matched.group(1).upper() in values:
            raise BadUrl(f"unknown or repeated part {segment[:40]!r}")
        values[matched.group(1).upper()] = matched.group(2)
    order = [name for name in ("UID", "SECTION", "PARTIAL") if name in values]
    if not order or order[0] != "UID" or not _NUMBER.match(values["UID"]):
        raise BadUrl("no UID")
    section = _section(_decoded(values["SECTION"])) if "SECTION" in values else None
    partial = None
    if "PARTIAL" in values:
        range_ = _PARTIAL.match(values["PARTIAL"])
        if range_ is None:
            raise BadUrl("bad PARTIAL")
        partial = (int(range_.group(1)), int(range_.group(2)) if range_.group(2) else None)
    return MessageUrl(mailbox, int(values["UID"]), uidvalidity, section, partial, user)


def _section(text: str) -> c.Section:
    try:
        reader = Reader(b"[" + text.encode("utf-8") + b"]")
        section = parser.section_spec(reader)
    except (ParseError, UnicodeEncodeError):
        raise BadUrl("bad SECTION") from None
    if not reader.at_end():
        raise BadUrl("bad SECTION")
    return section
