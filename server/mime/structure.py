"""The streaming part parser: a message's parts, their BODYSTRUCTURE and the
listing columns, read in chunks without ever holding a body.

Part boundaries are found in the original bytes so that every size in the
BODYSTRUCTURE is the exact octet count IMAP clients rely on for partial
fetches; the stdlib email package only parses the header blocks.
"""
from __future__ import annotations

import json
import re
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import Any, BinaryIO

from server.mime.decoders import LINE_CAP, Base64Decoder, QuotedPrintableDecoder
from server.mime.headers import decode_words, envelope, header_params, header_parser, raw_header

HEADER_LINE = re.compile(rb"[!-9;-~]+[ \t]*:")
# Hostile nesting or part counts are cut off rather than followed.
MAX_DEPTH = 40
MAX_PARTS = 5000

# The message is pushed through a tree of small state machines: a part reads
# its header block (kept, up to HEADER_CAP), then only counts its body while
# passing it on to a multipart splitter or, for message/rfc822, through a
# transfer decoder to the inner message's part. Nothing holds a body.

CHUNK = 64 * 1024
# A line longer than LINE_CAP (shared with the decoders) is handled in pieces:
# it is never a boundary line and a header line is recognised by its first
# LINE_CAP bytes.

# Header bytes kept per part; further header lines are skipped.
HEADER_CAP = 256 * 1024
# Base64 message/rfc822 parts are also parsed undecoded, in case the decoding
# fails at the end; at most this many per message.
MAX_FALLBACKS = 16


class _Counter:
    """Size and line count of a byte stream."""

    def __init__(self) -> None:
        self.size = self.newlines = 0
        self.last = b""

    def add(self, data: bytes) -> None:
        if data:
            self.size += len(data)
            self.newlines += data.count(b"\n")
            self.last = data[-1:]

    @property
    def lines(self) -> int:
        return self.newlines + (1 if self.size and self.last != b"\n" else 0)


class _Multipart:
    """Splits a multipart body into parts as it streams by (RFC 2046 5.1.1):
    the line end before a delimiter belongs to the delimiter, the preamble and
    the epilogue are dropped, a line that merely starts with a longer boundary
    is content, an unterminated last part runs to the end."""

    def __init__(self, boundary: bytes, new_child: Any) -> None:
        self.delim = b"--" + boundary
        self.nl_delim = b"\n" + self.delim
        self.new_child = new_child
        self.children: list[Any] = []
        self.child: Any = None  # the part being read; None in the preamble
        self.buf = b""  # the start of a line that may still become a delimiter
        self.at_start = True  # the next byte starts a line
        self.pending = b""  # the current part's trailing line end, held back
        self.marks = 0
        self.done = False  # after the closing delimiter
        self.open_end = False  # MAX_PARTS reached: the last part runs to the end

    def _delimiter(self, line: bytes) -> bool | None:
        """None for a content line, else whether the line closes the multipart."""
        rest = line[len(self.delim):]
        closing = rest.startswith(b"--")
        if closing:
            rest = rest[2:]
        return None if rest.strip() else closing

    def _mark(self, closing: bool) -> None:
        self.pending = b""
        self.marks += 1
        if self.child is not None:
            self.child.close()
            self.child = None
        if closing:
            self.done = True
            return
        self.child = self.new_child()
        self.children.append(self.child)
        self.open_end = self.marks >= MAX_PARTS

    def _content(self, piece: bytes) -> None:
        child = self.child
        if child is None or not piece:
            return
        if self.pending:
            if len(piece) < 2:
                piece = self.pending + piece
            else:
                child.feed(self.pending)
            self.pending = b""
        hold = 2 if piece.endswith(b"\r\n") else 1 if piece[-1:] in (b"\n", b"\r") else 0
        if hold:
            self.pending = piece[-hold:]
            piece = piece[:-hold]
        if piece:
            child.feed(piece)

    def feed(self, data: bytes) -> None:
        if self.done:
            return
        if self.open_end:
            self.child.feed(data)
            return
        if self.buf:
            data, self.buf = self.buf + data, b""
        delim, pos, n = self.delim, 0, len(data)
        while pos < n:
            if self.at_start:
                head = data[pos:pos + len(delim)]
                if delim.startswith(head):
                    if len(head) < len(delim):
                        self.buf = data[pos:]
                        return
                    eol = data.find(b"\n", pos + len(delim))
                    if eol < 0 and n - pos <= LINE_CAP:
                        self.buf = data[pos:]  # wait for the whole line
                        return
                    if eol >= 0:
                        closing = self._delimiter(data[pos:eol + 1])
                        if closing is not None:
                            self._mark(closing)
                            pos = eol + 1
                            if self.done:
                                return
                            if self.open_end:
                                self.child.feed(data[pos:])
                                return
                            continue
                self.at_start = False
            j = data.find(self.nl_delim, pos)
            if j >= 0:
                self._content(data[pos:j + 1])
                pos, self.at_start = j + 1, True
                continue
            last = data.rfind(b"\n", pos)
            if last >= 0 and delim.startswith(data[last + 1:]):
                self._content(data[pos:last + 1])
                self.buf, self.at_start = data[last + 1:], True
            else:
                self._content(data[pos:])
            return

    def close(self) -> None:
        if not self.done and not self.open_end and self.buf:
            line, self.buf = self.buf, b""
            closing = self._delimiter(line) if line.startswith(self.delim) else None
            if closing is None:
                self._content(line)
            else:
                self._mark(closing)
        if self.child is not None:
            if self.pending:
                self.child.feed(self.pending)
            self.child.close()
            self.child = None
        self.pending = b""


class _Budget:
    def __init__(self) -> None:
        self.fallbacks = MAX_FALLBACKS


class _Rfc822:
    """The body of a message/rfc822 part, decoded and parsed as a message."""

    def __init__(self, encoding: str, depth: int, budget: _Budget) -> None:
        self.decoder: Any = Base64Decoder() if encoding == "BASE64" else \
            QuotedPrintableDecoder() if encoding == "QUOTED-PRINTABLE" else None
        self.inner = _Part("text/plain", depth, budget)
        # Where base64 decoding fails the undecoded body is the message.
        self.undecoded: _Part | None = None
        if encoding == "BASE64" and budget.fallbacks > 0:
            budget.fallbacks -= 1
            self.undecoded = _Part("text/plain", depth, budget)
        self.raw = _Counter()

    def feed(self, data: bytes) -> None:
        self.raw.add(data)
        if self.decoder is None:
            self.inner.feed(data)
        else:
            out = self.decoder.feed(data)
            if out:
                self.inner.feed(out)
        if self.undecoded is not None:
            self.undecoded.feed(data)

    def close(self) -> tuple[dict, dict]:
        """(envelope, body structure) of the inner message."""
        inner = self.inner
        if self.decoder is not None:
            tail = self.decoder.close()
            if tail is None:
                inner = self.undecoded
            elif tail:
                inner.feed(tail)
        if inner is None:  # undecodable, and no fallback parse left
            empty = envelope(Message())
            return empty, _plain_node(self.raw.size, self.raw.lines)
        inner.close()
        if inner is not self.undecoded and self.undecoded is not None:
            self.undecoded.close()
        return envelope(inner.msg), inner.node


class _Part:
    """One MIME part (or message) pushed through in arbitrary chunks; after
    close(), `msg` holds its parsed header block and `node` its body structure."""

    def __init__(self, default_type: str = "text/plain", depth: int = 0,
                 budget: _Budget | None = None) -> None:
        self.default_type, self.depth = default_type, depth
        self.budget = budget or _Budget()
        self.in_head = True
        self.head = bytearray()
        self.head_full = False
        self.line = b""  # the start of a header line not yet classified
        self.in_line = False  # inside a header line already classified (and too long)
        self.first = True
        self.body = _Counter()
        self.sink: Any = None
        self.msg: Message | None = None
        self.node: dict[str, Any] = {}

    # header block

    def _keep(self, piece: bytes) -> None:
        if not self.head_full:
            if len(self.head) + len(piece) <= HEADER_CAP:
                self.head += piece
            else:
                self.head_full = True

    def _classify(self, line: bytes, complete: bool) -> bytes | None:
        """Take a header line (or its first piece); a line that ends the header
        block is returned as the body's first bytes (b"" for the empty line)."""
        if complete and line in (b"\n", b"\r\n"):
            return b""
        # An mbox "From " line may lead the headers; it belongs to neither part.
        if HEADER_LINE.match(line) or (not self.first and line[:1] in (b" ", b"\t")) or \
                (self.first and line.startswith(b"From ")):
            self.first = False
            self._keep(line)
            self.in_line = not complete
            return None
        return line

    def _head(self, data: bytes) -> bytes | None:
        """Consume header bytes; what follows the header block, or None."""
        pos, n = 0, len(data)
        while pos < n:
            nl = data.find(b"\n", pos)
            end = n if nl < 0 else nl + 1
            if self.in_line:
                self._keep(data[pos:end])
                self.in_line = nl < 0
                pos = end
                continue
            line = self.line + data[pos:end] if self.line else data[pos:end]
            self.line = b""
            pos = end
            if nl < 0 and len(line) <= LINE_CAP:
                self.line = line
                return None
            rest = self._classify(line, nl >= 0)
            if rest is not None:
                return rest + data[pos:] if rest else data[pos:]
        return None

    def _end_head(self) -> None:
        self.in_head = False
        msg = self.msg = header_parser.parsebytes(bytes(self.head))
        self.head = bytearray()
        if msg.get("Content-Type") is None:
            ctype = self.default_type
            params = {"charset": "us-ascii"} if ctype == "text/plain" else {}
        else:
            ctype, params = header_params(msg, "content-type")
            if not ctype or ctype.count("/") != 1 or not all(ctype.split("/")):
                ctype, params = "text/plain", {"charset": "us-ascii"}
        maintype, subtype = ctype.split("/")
        encoding = (raw_header(msg, "Content-Transfer-Encoding") or "7BIT").strip().upper()
        disp_type, disp_params = header_params(msg, "content-disposition")
        language = raw_header(msg, "Content-Language")
        self.node = {
            "type": maintype, "subtype": subtype, "params": params,
            "id": raw_header(msg, "Content-ID"), "description": raw_header(msg, "Content-Description"),
            "encoding": encoding, "size": 0,
            "md5": raw_header(msg, "Content-MD5"),
            "disposition": [disp_type, disp_params] if disp_type else None,
            "language": [x.strip() for x in language.split(",") if x.strip()] if language else None,
            "location": raw_header(msg, "Content-Location"),
        }
        if self.depth >= MAX_DEPTH:
            return
        if maintype == "multipart":
            boundary = params.get("boundary")
            if boundary:
                child_default = "message/rfc822" if subtype == "digest" else "text/plain"
                depth, budget = self.depth + 1, self.budget
                self.sink = _Multipart(boundary.encode("utf-8", "surrogateescape"),
                                       lambda: _Part(child_default, depth, budget))
        elif maintype == "message" and subtype in ("rfc822", "global"):
            self.sink = _Rfc822(encoding, self.depth + 1, self.budget)

    # body

    def feed(self, data: bytes) -> None:
        if self.in_head:
            rest = self._head(data)
            if rest is None:
                return
            self._end_head()
            data = rest
        if data:
            self.body.add(data)
            if self.sink is not None:
                self.sink.feed(data)

    def close(self) -> None:
        if self.in_head:
            line, self.line = self.line, b""
            rest = self._classify(line, False) if line else None
            self._end_head()
            if rest:
                self.feed(rest)
        node, body = self.node, self.body
        node["size"] = body.size
        maintype = node["type"]
        if maintype == "multipart":
            if isinstance(self.sink, _Multipart):
                self.sink.close()
                if self.sink.children:
                    node["parts"] = [child.node for child in self.sink.children]
                    self.sink = None
                    return
            # No usable parts: show the body as plain text, as most servers do.
            node.update(type="text", subtype="plain", params={"charset": "us-ascii"})
            maintype = "text"
        if isinstance(self.sink, _Rfc822):
            node["envelope"], node["body"] = self.sink.close()
            node["lines"] = body.lines
        elif maintype == "text":
            node["lines"] = body.lines
        self.sink = None


def _plain_node(size: int, lines: int) -> dict:
    return {"type": "text", "subtype": "plain", "params": {"charset": "us-ascii"}, "id": None,
            "description": None, "encoding": "7BIT", "size": size, "md5": None,
            "disposition": None, "language": None, "location": None, "lines": lines}


# -- the columns -------------------------------------------------------------

def _columns(part: _Part) -> dict:
    msg = part.msg
    env = envelope(msg)
    date = env["date"]
    internal = None
    if date:
        try:
            internal = int(parsedate_to_datetime(date).timestamp())
        except (TypeError, ValueError, IndexError, OverflowError):
            internal = None
    return {
        "subject": decode_words(env["subject"]),
        "from": decode_words(raw_header(msg, "From")),
        "to": decode_words(raw_header(msg, "To")),
        "cc": decode_words(raw_header(msg, "Cc")),
        "messageId": env["messageId"],
        "inReplyTo": env["inReplyTo"],
        "date": date,
        "internalDate": internal,
        "envelope": json.dumps(env, ensure_ascii=False, separators=(",", ":")),
        "bodystructure": json.dumps(part.node, ensure_ascii=False, separators=(",", ":")),
    }


def message_columns(fp: BinaryIO) -> dict:
    """Columns for a message read from `fp`; never raises on a malformed message.

    The message is read in chunks and never held whole: memory stays bounded
    by the header blocks (HEADER_CAP each) whatever the message's size.
    "internalDate" is the Date header as epoch seconds (None when unparsable),
    a guess the caller may use when no delivery time is given.
    """
    whole = _Counter()
    part: _Part | None = _Part()
    while True:
        chunk = fp.read(CHUNK)
        if not chunk:
            break
        whole.add(chunk)
        if part is not None:
            try:
                part.feed(chunk)
            except Exception:  # whatever a hostile message triggers, it is still stored
                part = None
    if part is not None:
        try:
            part.close()
            return _columns(part)
        except Exception:
            pass
    empty = {"date": None, "subject": None, "from": None, "sender": None, "replyTo": None,
             "to": None, "cc": None, "bcc": None, "inReplyTo": None, "messageId": None}
    return {"subject": None, "from": None, "to": None, "cc": None, "messageId": None,
            "inReplyTo": None, "date": None, "internalDate": None,
            "envelope": json.dumps(empty), "bodystructure": json.dumps(_plain_node(whole.size, whole.lines))}
