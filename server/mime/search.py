"""Case-insensitive substring search in message sources for IMAP SEARCH (RFC 3501 §6.4.4).

A source is read from a file object line by line and never held whole; only
header blocks are kept (up to `HEADER_CAP` octets each). Header values are
unfolded and their RFC 2047 encoded words decoded before matching, so `SUBJECT
Grüße` finds an encoded subject. BODY looks at the text the reader sees: the
text parts of the MIME tree (and the headers and text of attached messages),
with their base64 or quoted-printable encoding undone and decoded from their
charset; attachments of other types are not searched. TEXT is the message's
header values and its BODY.
"""
from __future__ import annotations

import codecs
import datetime
import re
from collections.abc import Iterable, Iterator
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import collapse_rfc2231_value, parsedate_tz
from typing import Any, BinaryIO

from server.mime.decoders import LINE_CAP, Base64Decoder, QuotedPrintableDecoder
from shared.budget import check as check_budget
from shared.charsets import text_encoding

CHUNK = 64 * 1024
HEADER_CAP = 256 * 1024
_UNFOLD = re.compile(r"\r?\n(?=[ \t])")
_PARSER = BytesHeaderParser(policy=compat32)


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
    msg = _PARSER.parsebytes(block)
    out = []
    for name, value in msg.raw_items():
        out.append((name.lower(), _decoded(_unfolded(value))))
    return out


def _unfolded(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    text = _UNFOLD.sub("", text).strip("\r\n")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # 8-bit header bytes, kept as surrogates by the parser
        raw = text.encode("utf-8", "surrogateescape")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
    return text


def _decoded(text: str) -> str:
    """RFC 2047 encoded words decoded; the text as it is where they are broken."""
    if "=?" not in text:
        return text
    try:
        return str(make_header(decode_header(text)))
    except Exception:  # malformed encoded words or unknown charsets
        return text


def _field(msg: Message, name: str) -> str | None:
    wanted = name.lower()
    value = next((v for k, v in msg.raw_items() if k.lower() == wanted), None)
    return None if value is None else _unfolded(value)


def _content_type(msg: Message) -> tuple[str | None, dict[str, str]]:
    try:
        pairs = msg.get_params(header="content-type")
    except Exception:
        pairs = None
    if not pairs:
        return None, {}
    params = {}
    for key, value in pairs[1:]:
        if key:
            try:
                params[key.lower()] = str(collapse_rfc2231_value(value))
            except Exception:
                continue
    return pairs[0][0].strip().lower() or None, params


def header_matches(fp: BinaryIO, name: str, needle: str) -> bool:
    """Whether the header `name` holds `needle`; an empty needle asks only that it be there."""
    return header_block_matches(read_header_block(fp), name, needle)


def header_block_matches(block: bytes, name: str, needle: str) -> bool:
    """`header_matches` on a header block already read (`read_header_block`)."""
    wanted, folded = name.lower(), fold(needle)
    if _surely_absent(block, folded):
        return False
    return any(field == wanted and folded in fold(value) for field, value in header_values(block))


def _surely_absent(block: bytes, folded: str) -> bool:
    """A cheap no for the common case: an ASCII needle without blanks (which unfolding
    could create) that is not in the raw block, and no encoded words that could hide it."""
    if not folded or not folded.isascii() or any(ch.isspace() for ch in folded) or b"=?" in block:
        return False
    return folded.encode("ascii") not in block.lower()


def _header_text(block: bytes) -> str:
    return "\n".join(f"{name}: {value}" for name, value in header_values(block))


def text_matches(fp: BinaryIO, needle: str, body_only: bool) -> bool:
    """BODY (`body_only`) or TEXT (header and body) holds `needle`."""
    return bool(texts_found(fp, [needle], body_only))


def texts_found(fp: BinaryIO, needles: Iterable[str], body_only: bool) -> set[str]:
    """Which of `needles` BODY (`body_only`) or TEXT holds, from one walk of the source
    however many there are. Checks the calling thread's work budget as it reads."""
    found: set[str] = set()
    pending: dict[str, str] = {}
    for needle in needles:
        folded = fold(needle)
        if folded:
            pending[needle] = folded
        else:
            found.add(needle)
    if pending:
        pending = _raw_possible(fp, pending, body_only)
    if not pending:
        return found

    def look(joined: str) -> None:
        for needle, folded in list(pending.items()):
            if folded in joined:
                found.add(needle)
                del pending[needle]
    keep = max(map(len, pending.values())) + 8  # case folding may change lengths a little
    text, size = [], 0
    for piece in body_text(fp, with_header=not body_only):
        if piece is None or size > CHUNK:  # a part ended, or enough to look at
            check_budget()
            joined = fold("".join(text))
            look(joined)
            if not pending:
                return found
            text, size = ([] if piece is None else [joined[-keep:]]), 0
        if piece:
            text.append(piece)
            size += len(piece)
    look(fold("".join(text)))
    return found


# What could hide an ASCII needle from a look at the raw octets.
_DISGUISES = (b"base64", b"quoted-printable", b"=?", b"utf-16", b"utf-32", b"utf-7")


def _raw_possible(fp: BinaryIO, pending: dict[str, str], body_only: bool) -> dict[str, str]:
    """The needles a look at the raw octets cannot rule out: a cheap no for an ASCII
    needle that is nowhere in the raw source, when nothing in it is encoded in a way
    that could hide it. Blanks in a needle could come from unfolding a header, so they
    are allowed only for BODY of messages without attached messages. Leaves `fp` at the
    start either way."""
    def decidable(folded: str) -> bool:
        return folded.isascii() and (body_only or not any(ch.isspace() for ch in folded))
    raw = {needle: folded.encode("ascii") for needle, folded in pending.items() if decidable(folded)}
    if not raw or not fp.seekable():
        return pending
    blanks = any(any(ch in b" \t\r\n" for ch in value) for value in raw.values())
    disguises = _DISGUISES + ((b"message/", b"digest") if blanks else ())
    keep = max(max(map(len, raw.values())), max(map(len, disguises))) - 1
    start = fp.tell()
    tail = b""
    try:
        for chunk in iter(lambda: fp.read(CHUNK), b""):
            check_budget()
            text = tail + chunk.lower()
            if any(d in text for d in disguises):
                return pending
            for needle, value in list(raw.items()):
                if value in text:
                    del raw[needle]  # there: only the decoded text can tell
            if not raw:
                return pending
            tail = text[-keep:]
        return {needle: folded for needle, folded in pending.items() if needle not in raw}
    finally:
        fp.seek(start)


def body_text(fp: BinaryIO, with_header: bool = False) -> Iterator[str | None]:
    """The searchable text of a message, in pieces; None between parts (no match spans
    two parts). With `with_header` the message's own header values come first."""
    return _BodyText(fp).pieces(with_header)


class _BodyText:
    """A line-by-line walk of the MIME tree (RFC 2045, 2046) that decodes text parts."""

    def __init__(self, fp: BinaryIO) -> None:
        self.fp = fp
        self.boundaries: list[bytes] = []
        self.child_types: list[str] = []  # each open multipart's default part type

    def _lines(self) -> Iterator[tuple[bytes, bool]]:
        """(line or piece of a long line, whether it starts a line)."""
        start = True
        for line in iter(lambda: self.fp.readline(LINE_CAP), b""):
            yield line, start
            start = line.endswith(b"\n")

    def _boundary(self, line: bytes) -> tuple[int, bool] | None:
        """(level, closing) when the line is a delimiter of an open multipart."""
        if not self.boundaries or not line.startswith(b"--"):
            return None
        text = line.rstrip(b" \t\r\n")
        for level in range(len(self.boundaries) - 1, -1, -1):
            b = self.boundaries[level]
            if text == b"--" + b:
                return level, False
            if text == b"--" + b + b"--":
                return level, True
        return None

    def pieces(self, with_header: bool) -> Iterator[str | None]:
        head: list[bytes] | None = []  # collecting a header block
        head_size = 0
        top, show_head = True, with_header
        default = "text/plain"
        part: _TextPart | None = None
        for line, starts in self._lines():
            delimiter = self._boundary(line) if starts else None
            if delimiter is not None:
                level, closing = delimiter
                if part is not None:
                    yield part.close()
                    yield None
                    part = None
                keep = level + (0 if closing else 1)
                del self.boundaries[keep:], self.child_types[keep:]
                head, head_size, top, show_head = (None, 0, False, False) if closing else ([], 0, False, False)
                if not closing:
                    default = self.child_types[level]
                continue
            if head is not None:
                if line in (b"\r\n", b"\n") and starts:
                    block, head = b"".join(head), None
                    if show_head:
                        yield _header_text(block)
                        yield None
                    part, nested = self._open(block, default)
                    default = "text/plain"
                    if nested:
                        head, head_size, show_head = [], 0, True  # an attached message's header
                    continue
                if head_size < HEADER_CAP:
                    head.append(line)
                    head_size += len(line)
                continue
            if part is not None:
                yield part.feed(line)
        if head is not None and show_head and top:
            yield _header_text(b"".join(head))  # all header, no body
        if part is not None:
            yield part.close()

    def _open(self, block: bytes, default: str) -> tuple["_TextPart | None", bool]:
        """The decoder for a part's body (None when it is not searched), and whether a
        message (with a header block of its own) follows."""
        msg = _PARSER.parsebytes(block)
        ctype, params = _content_type(msg)
        if not ctype or ctype.count("/") != 1:
            ctype, params = default, {}
        maintype, subtype = ctype.split("/")
        encoding = (_field(msg, "Content-Transfer-Encoding") or "7bit").strip().lower()
        if maintype == "multipart" and params.get("boundary"):
            self.boundaries.append(params["boundary"].encode("utf-8", "surrogateescape"))
            self.child_types.append("message/rfc822" if subtype == "digest" else "text/plain")
            return None, False
        if maintype == "message" and subtype in ("rfc822", "global") and encoding in ("7bit", "8bit", "binary"):
            return None, True
        if maintype == "text" or maintype == "message":
            return _TextPart(encoding, params.get("charset") or "us-ascii"), False
        return None, False


class _TextPart:
    """One text part's body: transfer encoding undone, then decoded from its charset."""

    def __init__(self, encoding: str, charset: str) -> None:
        self.transfer: Any = Base64Decoder() if encoding == "base64" else \
            QuotedPrintableDecoder() if encoding == "quoted-printable" else None
        encoding = text_encoding(charset)
        if encoding in (None, "ascii"):
            encoding = "utf-8"  # 8-bit text labelled ASCII is common
        factory = codecs.getincrementaldecoder(encoding)
        self.text = factory(errors="replace")

    def feed(self, line: bytes) -> str:
        data = self.transfer.feed(line) if self.transfer is not None else line
        return self.text.decode(data) if data else ""

    def close(self) -> str:
        tail = b""
        if self.transfer is not None:
            tail = self.transfer.close() or b""
        return self.text.decode(tail, final=True)


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
