"""Case-insensitive substring search in message sources for IMAP SEARCH (RFC 3501 §6.4.4).

A source is read from a file object in chunks and never held whole; only its
header block is kept (up to `HEADER_CAP` octets). Header values are unfolded and
their RFC 2047 encoded words decoded before matching, so `SUBJECT Grüße` finds an
encoded subject. Bodies are matched as sent, decoded as UTF-8 where they are UTF-8
(other bytes stand for themselves); transfer encodings are not undone.
"""
from __future__ import annotations

import codecs
import datetime
from email.utils import parsedate_tz
from typing import BinaryIO

from server.mime.headers import _FOLD, decode_words, header_parser

CHUNK = 64 * 1024
HEADER_CAP = 256 * 1024


def fold(text: str) -> str:
    """The form both sides of a comparison take: case folded (Unicode, not just ASCII)."""
    return text.casefold()


def read_header_block(fp: BinaryIO) -> bytes:
    """The header block up to and including the empty line; `fp` is left at the body."""
    lines: list[bytes] = []
    size = 0
    while size < HEADER_CAP:
        line = fp.readline(HEADER_CAP - size)
        if not line:
            break
        lines.append(line)
        size += len(line)
        if line in (b"\r\n", b"\n"):
            break
    return b"".join(lines)


def header_values(block: bytes) -> list[tuple[str, str]]:
    """(lower-case name, unfolded decoded value) of every header field of a block."""
    msg = header_parser.parsebytes(block)
    out = []
    for name, value in msg.raw_items():
        text = value if isinstance(value, str) else str(value)
        text = _FOLD.sub("", text).strip("\r\n")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        out.append((name.lower(), decode_words(text) or ""))
    return out


def header_matches(fp: BinaryIO, name: str, needle: str) -> bool:
    """Whether the header `name` holds `needle`; an empty needle asks only that it be there."""
    wanted, folded = name.lower(), fold(needle)
    return any(field == wanted and folded in fold(value)
               for field, value in header_values(read_header_block(fp)))


def text_matches(fp: BinaryIO, needle: str, body_only: bool) -> bool:
    """BODY (`body_only`) or TEXT (header and body) holds `needle`."""
    folded = fold(needle)
    block = read_header_block(fp)
    if not body_only:
        if any(folded in fold(value) for _, value in header_values(block)):
            return True
        if _scan_text(iter((block,)), folded):
            return True
    return _scan_text(iter(lambda: fp.read(CHUNK), b""), folded)


def _scan_text(chunks, folded: str) -> bool:
    if not folded:
        return True
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    keep = len(folded) + 8  # case folding may change lengths a little
    tail = ""
    for chunk in chunks:
        text = tail + fold(decoder.decode(chunk))
        if folded in text:
            return True
        tail = text[-keep:]
    return folded in tail + fold(decoder.decode(b"", final=True))


def sent_date(value: str | None) -> datetime.date | None:
    """The calendar date a Date header names, in its own time zone (RFC 3501 SENT*)."""
    if not value:
        return None
    parts = parsedate_tz(value)
    if parts is None:
        return None
    try:
        return datetime.date(parts[0], parts[1], parts[2])
    except (TypeError, ValueError):
        return None


def sent_matches(value: str | None, relation: str, day: datetime.date) -> bool:
    sent = sent_date(value)
    if sent is None:
        return False
    if relation == "before":
        return sent < day
    if relation == "on":
        return sent == day
    return sent >= day
