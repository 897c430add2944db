"""The streaming part parser: a message's parts, their BODYSTRUCTURE and the
listing columns, read in chunks without ever holding a body.

Part boundaries are found in the original bytes so that every size in the
BODYSTRUCTURE is the exact octet count IMAP clients rely on for partial
fetches. The parts are found the way Dovecot finds them, so that both servers
show clients the same structure:

- a header block ends at the first empty line (lines without a colon inside it
  are skipped, not taken for the body);
- a line that starts with `--` and the boundary of any enclosing multipart is a
  delimiter (RFC 2046 §5.1.1 forbids such lines inside a part); the longest
  matching boundary wins, then the innermost, so a boundary reused by a nested
  multipart belongs to the nested one. A delimiter of an outer multipart ends
  every part inside it;
- the line end before a delimiter belongs to the delimiter (unless it ends a
  header block cut short); preamble and epilogue belong to no part; an
  unterminated part runs to the end;
- a multipart in which no part is found shows one empty text/plain part;
- `lines` counts the line feeds of a body.

Every node located in the stored source carries "offsets": [header start, body
start, end], so a FETCH of BODY[section] can read exactly the range that the
BODYSTRUCTURE describes.
"""
from __future__ import annotations

import json
import re
from email.utils import parsedate_to_datetime
from typing import Any, BinaryIO

from server.mime.address_search import ADDRESS_COLUMNS, field_text
from server.mime.decoders import LINE_CAP, Base64Decoder, QuotedPrintableDecoder
from server.mime.headers import HeaderBlock, content_type, decode_words, decoded_parameter, disposition, envelope
from server.mime.sort_keys import sort_columns

HEADER_LINE = re.compile(rb"[!-9;-~]+[ \t]*:")
# Hostile nesting or part counts are cut off rather than followed.
MAX_DEPTH = 40
MAX_PARTS = 5000

CHUNK = 64 * 1024
# A line longer than LINE_CAP (shared with the decoders) is handled in pieces:
# a delimiter is recognised by its start and a header line by its first
# LINE_CAP bytes.

# Header bytes kept per part; further header lines are skipped.
HEADER_CAP = 256 * 1024
# Base64 message/rfc822 parts are also parsed undecoded, in case the decoding
# fails at the end; at most this many per message.
MAX_FALLBACKS = 16


class _Budget:
    """Limits shared by every parser of one message."""

    def __init__(self) -> None:
        self.fallbacks = MAX_FALLBACKS
        self.parts = MAX_PARTS


class _Entity:
    """One MIME entity: its header block while it is read, then its body
    structure node; its header is [start, body_start) and its body
    [body_start, end) of the parser's stream, with body_nl and end_nl the line
    feeds before those offsets."""

    __slots__ = ("depth", "default_type", "head", "head_full", "keep", "in_head", "start", "body_start",
                 "body_nl", "end", "end_nl", "node", "envelope", "children", "inner", "sink",
                 "pending", "child_default", "message")

    def __init__(self, depth: int, default_type: str) -> None:
        self.depth, self.default_type = depth, default_type
        self.head = bytearray()
        self.head_full = False
        self.keep = False  # the header line being read is kept
        self.in_head = True
        self.start = self.body_start = self.body_nl = self.end = self.end_nl = 0
        self.node: dict[str, Any] = {}
        self.envelope: dict | None = None
        self.children: list[_Entity] = []
        self.inner: _Entity | None = None  # the message inside a message/rfc822
        self.sink: _Encoded | None = None  # the decoder of an encoded message/rfc822
        self.pending = b""  # the line end held back from the sink
        self.child_default = "text/plain"
        self.message = False  # a message (not a part): it has an envelope

    def keep_line(self, piece: bytes) -> None:
        if not self.head_full:
            if len(self.head) + len(piece) <= HEADER_CAP:
                self.head += piece
            else:
                self.head_full = True


class _Parser:
    """Splits a stream into entities as it goes by; see the module docstring."""

    def __init__(self, depth: int = 0, budget: _Budget | None = None) -> None:
        self.budget = budget or _Budget()
        self.root = _Entity(depth, "text/plain")
        self.root.message = True
        self.block = HeaderBlock(b"")  # the message's own header block
        self.stack = [self.root]  # open entities, the innermost last
        self.bounds: list[tuple[bytes, _Entity]] = []  # ("--" + boundary, multipart), innermost last
        self.base = 0  # stream offset of the data being worked on
        self.nl_base = 0  # line feeds before it
        self.tail = b""  # the last two bytes before it
        self.buf = b""  # the start of a line not yet complete
        self.at_start = True  # at the start of a line
        self.skip = False  # inside the rest of a long delimiter line
        self.opened: _Entity | None = None  # the part the delimiter being read opens
        self.head_rest = False  # inside the rest of a long header line
        # line feeds counted so far in the current data: up to index _ci there are _cnl
        self._ci = 0
        self._cnl = 0

    # -- offsets

    def _nl_at(self, data: bytes, i: int) -> int:
        if i > self._ci:
            self._cnl += data.count(b"\n", self._ci, i)
            self._ci = i
        return self._cnl

    def _eol_before(self, data: bytes, i: int) -> int:
        pre = data[i - 2:i] if i >= 2 else (self.tail + data[:i])[-2:]
        return 2 if pre == b"\r\n" else 1 if pre[-1:] == b"\n" else 0

    # -- entities

    def _end_head(self, e: _Entity, start: int, nl: int, open_body: bool) -> None:
        """The header block of `e` is complete; its body starts at `start`."""
        e.in_head = False
        e.body_start, e.body_nl = start, nl
        block = HeaderBlock(bytes(e.head))
        e.head = bytearray()
        value = block.first(b"content-type")
        ctype, params = content_type(value)
        if ctype is None:
            # absent: the default; malformed: text/plain (RFC 2045 §5.2)
            ctype, params = (e.default_type if value is None else "text/plain"), {}
        maintype, subtype = ctype.split("/")
        if maintype == "text" and "charset" not in params:
            params["charset"] = "us-ascii"  # RFC 2045 §5.2, as Dovecot reports it
        encoding = (block.first(b"content-transfer-encoding") or "7BIT").strip().upper() or "7BIT"
        disp_type, disp_params = disposition(block.first(b"content-disposition"))
        language = block.first(b"content-language")
        e.node = {
            "type": maintype, "subtype": subtype, "params": params,
            "id": block.first(b"content-id"), "description": block.first(b"content-description"),
            "encoding": encoding, "size": 0,
            "md5": block.first(b"content-md5"),
            "disposition": [disp_type, disp_params] if disp_type else None,
            "language": [x.strip() for x in language.split(",") if x.strip()] if language else None,
            "location": block.first(b"content-location"),
        }
        if e.message:
            e.envelope = envelope(block)
            if e is self.root:
                self.block = block
        if not open_body or e.depth >= MAX_DEPTH:
            return
        if maintype == "multipart":
            boundary = decoded_parameter(params, "boundary")
            if boundary:
                e.child_default = "message/rfc822" if subtype == "digest" else "text/plain"
                self.bounds.append((b"--" + boundary.encode("utf-8", "surrogateescape"), e))
        elif maintype == "message" and subtype in ("rfc822", "global"):
            if encoding in ("BASE64", "QUOTED-PRINTABLE"):
                e.sink = _Encoded(encoding, e.depth + 1, self.budget)
            else:
                inner = e.inner = _Entity(e.depth + 1, "text/plain")
                inner.message = True
                inner.start = start
                self.stack.append(inner)

    def _finish(self, e: _Entity, end: int, end_nl: int) -> None:
        if e.in_head:
            self._end_head(e, end, end_nl, False)
        if end > e.body_start:
            e.end, e.end_nl = end, end_nl
        else:
            e.end, e.end_nl = e.body_start, e.body_nl
        if e.sink is not None:
            e.sink.close()

    def _delimiter(self, data: bytes, i: int, line: bytes, complete: bool) -> bool:
        """Whether `line` (at data[i]) is a delimiter; if so every entity it ends is
        finished and, unless it closes its multipart, a new part opened."""
        best = -1
        size = 0
        bounds = self.bounds
        for k in range(len(bounds) - 1, -1, -1):
            delim = bounds[k][0]
            if len(delim) > size and line.startswith(delim):
                best, size = k, len(delim)
                if complete and line[size:].rstrip(b" \t\r\n") in (b"", b"--"):
                    break
        if best < 0:
            return False
        self.opened = None
        multipart = bounds[best][1]
        # The line end before the delimiter is the delimiter's, unless it ends a
        # header line: a header block cut short keeps its last line whole.
        eol = 0 if self.stack[-1].in_head else self._eol_before(data, i)
        end, end_nl = self.base + i - eol, self._nl_at(data, i) - (1 if eol else 0)
        stack = self.stack
        depth = stack.index(multipart)
        for e in reversed(stack[depth + 1:]):
            self._finish(e, end, end_nl)
        del stack[depth + 1:]
        del bounds[best + 1:]
        if line[size:size + 2] == b"--":
            del bounds[best]
        else:
            self.budget.parts -= 1
            child = self.opened = _Entity(multipart.depth + 1, multipart.child_default)
            multipart.children.append(child)
            stack.append(child)
        return True

    def _opened_at(self, i: int) -> None:
        """The part a delimiter opened starts after the delimiter line, at data[i]."""
        if self.opened is not None:
            self.opened.start = self.base + i
            self.opened = None

    def _content(self, e: _Entity, piece: bytes) -> None:
        """Body bytes of an encoded message/rfc822, its last line end held back."""
        if e.pending:
            piece = e.pending + piece
            e.pending = b""
        hold = 2 if piece.endswith(b"\r\n") else 1 if piece[-1:] in (b"\n", b"\r") else 0
        if hold:
            e.pending = piece[-hold:]
            piece = piece[:-hold]
        if piece:
            e.sink.feed(piece)

    # -- the stream

    def feed(self, data: bytes) -> None:
        if self.buf:
            data, self.buf = self.buf + data, b""
        self._run(data, False)

    def _run(self, data: bytes, final: bool) -> None:
        self._ci, self._cnl = 0, self.nl_base
        n, i = len(data), 0
        while i < n:
            if self.skip or self.head_rest:
                j = data.find(b"\n", i)
                stop = n if j < 0 else j + 1
                if self.head_rest and self.stack[-1].keep:
                    self.stack[-1].keep_line(data[i:stop])
                i = stop
                if j >= 0:
                    self._opened_at(stop)
                    self.skip = self.head_rest = False
                    self.at_start = True
                continue
            cur = self.stack[-1]
            bounds = self.bounds if self.budget.parts > 0 else None
            if cur.in_head or (bounds and self.at_start and data.startswith(b"-", i)):
                # at the start of a line that needs looking at
                j = data.find(b"\n", i)
                if j < 0 and n - i < LINE_CAP and not final:
                    self.buf = data[i:]
                    break
                complete = j >= 0 or final
                stop = j + 1 if j >= 0 else min(n, i + LINE_CAP) if not final else n
                line = data[i:stop]
                if bounds and line.startswith(b"--") and self._delimiter(data, i, line, complete):
                    if complete:
                        self._opened_at(stop)
                        i, self.at_start = stop, True
                    else:
                        i, self.skip = stop, True
                    continue
                if cur.in_head:
                    if line == b"\r\n" or line == b"\n":
                        i = stop
                        self._end_head(cur, self.base + i, self._nl_at(data, i), True)
                        continue
                    if line[:1] not in (b" ", b"\t"):
                        cur.keep = HEADER_LINE.match(line) is not None
                    if cur.keep:
                        cur.keep_line(line)
                    i = stop
                    self.at_start = complete
                    self.head_rest = not complete
                    continue
                self.at_start = False
            if not bounds:
                if cur.sink is not None:
                    self._content(cur, data[i:] if i else data)
                self.at_start = data.endswith(b"\n")
                i = n
                break
            if self.at_start and n - i < 2 and not final:
                self.buf = data[i:]  # may become a delimiter
                break
            k = data.find(b"\n--", i)
            if k >= 0:
                if cur.sink is not None:
                    self._content(cur, data[i:k + 1])
                i, self.at_start = k + 1, True
                continue
            stop = n
            if not final:
                last = data.rfind(b"\n", i)
                if last >= 0 and n - last - 1 < 2:
                    stop = last + 1
            if cur.sink is not None:
                self._content(cur, data[i:stop])
            if stop < n:
                self.buf = data[stop:]
            self.at_start = data[stop - 1:stop] == b"\n"
            i = stop
            break
        consumed = n - len(self.buf)
        self.nl_base = self._nl_at(data, consumed)
        self.base += consumed
        self.tail = (self.tail + data[max(0, consumed - 2):consumed])[-2:]

    def close(self) -> None:
        if self.buf:
            data, self.buf = self.buf, b""
            self._run(data, True)
        end, end_nl = self.base, self.nl_base
        for e in reversed(self.stack):
            if e.sink is not None and e.pending:
                e.sink.feed(e.pending)
                e.pending = b""
            self._finish(e, end, end_nl)
        self.stack = []


def _empty_text() -> dict:
    """What Dovecot shows for a multipart in which no part was found."""
    return _plain_node(0, 0)


def _node(e: _Entity, located: bool = True) -> dict:
    """The body structure of `e`. Entities `located` in the stored source also get
    "offsets": [header start, body start, end] in it (parts of a decoded
    message/rfc822 have none; nor has the empty part of an empty multipart)."""
    node = e.node
    node["size"] = e.end - e.body_start
    if located:
        node["offsets"] = [e.start, e.body_start, e.end]
    maintype = node["type"]
    if maintype == "multipart":
        node["parts"] = [_node(c, located) for c in e.children] or [_empty_text()]
    elif e.inner is not None:
        node["envelope"] = e.inner.envelope
        node["body"] = _node(e.inner, located)
        node["lines"] = e.end_nl - e.body_nl
    elif e.sink is not None:
        node["envelope"], node["body"] = e.sink.result()
        node["lines"] = e.end_nl - e.body_nl
    elif maintype == "message" and node["subtype"] in ("rfc822", "global") and e.depth < MAX_DEPTH:
        # no body to hold a message (its header was cut short): an empty one, as Dovecot shows it
        node["envelope"], node["body"] = envelope(HeaderBlock(b"")), _empty_text()
        node["lines"] = e.end_nl - e.body_nl
    elif maintype == "text":
        node["lines"] = e.end_nl - e.body_nl
    return node


class _Encoded:
    """The body of a base64 or quoted-printable message/rfc822 part, decoded and
    parsed as a message of its own."""

    def __init__(self, encoding: str, depth: int, budget: _Budget) -> None:
        self.decoder: Any = Base64Decoder() if encoding == "BASE64" else QuotedPrintableDecoder()
        self.inner = _Parser(depth, budget)
        # Where base64 decoding fails the undecoded body is the message.
        self.undecoded: _Parser | None = None
        if encoding == "BASE64" and budget.fallbacks > 0:
            budget.fallbacks -= 1
            self.undecoded = _Parser(depth, budget)
        self.failed = False

    def feed(self, data: bytes) -> None:
        out = self.decoder.feed(data)
        if out:
            self.inner.feed(out)
        if self.undecoded is not None:
            self.undecoded.feed(data)

    def close(self) -> None:
        tail = self.decoder.close()
        if tail is None:
            self.failed = True
        elif tail:
            self.inner.feed(tail)
        self.inner.close()
        if self.undecoded is not None:
            self.undecoded.close()

    def result(self) -> tuple[dict, dict]:
        """(envelope, body structure) of the inner message."""
        parser = self.undecoded if self.failed else self.inner
        if parser is None:  # undecodable, and no fallback parse left
            return envelope(HeaderBlock(b"")), _plain_node(0, 0)
        return parser.root.envelope, _node(parser.root, False)


# -- the columns -------------------------------------------------------------

def _plain_node(size: int, lines: int) -> dict:
    return {"type": "text", "subtype": "plain", "params": {"charset": "us-ascii"}, "id": None,
            "description": None, "encoding": "7BIT", "size": size, "md5": None,
            "disposition": None, "language": None, "location": None, "lines": lines}


def _columns(parser: _Parser) -> dict:
    block, env = parser.block, parser.root.envelope
    date = env["date"]
    internal = None
    if date:
        try:
            internal = int(parsedate_to_datetime(date).timestamp())
        except (TypeError, ValueError, IndexError, OverflowError):
            internal = None
    return {
        "subject": decode_words(env["subject"]),
        "from": decode_words(block.first(b"from")),
        "to": decode_words(block.first(b"to")),
        "cc": decode_words(block.first(b"cc")),
        **{column: field_text(block, field) for column, field in ADDRESS_COLUMNS.items()},
        "messageId": env["messageId"],
        "inReplyTo": env["inReplyTo"],
        "date": date,
        "internalDate": internal,
        "envelope": json.dumps(env, ensure_ascii=False, separators=(",", ":")),
        "bodystructure": json.dumps(_node(parser.root), ensure_ascii=False, separators=(",", ":")),
        **sort_columns(env, block.last(b"references")),
    }


def message_columns(fp: BinaryIO) -> dict:
    """Columns for a message read from `fp`; never raises on a malformed message.

    The message is read in chunks and never held whole: memory stays bounded
    by the header blocks (HEADER_CAP each) whatever the message's size.
    "internalDate" is the Date header as epoch seconds (None when unparsable),
    a guess the caller may use when no delivery time is given.
    """
    size = lines = 0
    parser: _Parser | None = _Parser()
    while True:
        chunk = fp.read(CHUNK)
        if not chunk:
            break
        size += len(chunk)
        lines += chunk.count(b"\n")
        if parser is not None:
            try:
                parser.feed(chunk)
            except Exception:  # whatever a hostile message triggers, it is still stored
                parser = None
    if parser is not None:
        try:
            parser.close()
            return _columns(parser)
        except Exception:
            pass
    empty = {"date": None, "subject": None, "from": None, "sender": None, "replyTo": None,
             "to": None, "cc": None, "bcc": None, "inReplyTo": None, "messageId": None}
    return {**{column: None for column in ADDRESS_COLUMNS},
            "subject": None, "from": None, "to": None, "cc": None, "messageId": None,
            "inReplyTo": None, "date": None, "internalDate": None,
            "envelope": json.dumps(empty), "bodystructure": json.dumps(_plain_node(size, lines)),
            **sort_columns(empty, None)}
