"""Listing columns of a mail message, derived from its RFC 822 bytes.

Part boundaries are found in the original bytes so that every size in the
BODYSTRUCTURE is the exact octet count IMAP clients rely on for partial
fetches; the stdlib email package only parses the header blocks. The message
is streamed: only header blocks and counters are held, never a body.
"""
from __future__ import annotations

import binascii
import json
import re
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import collapse_rfc2231_value, parsedate_to_datetime
from typing import Any, BinaryIO

_HEADER_LINE = re.compile(rb"[!-9;-~]+[ \t]*:")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
# Hostile nesting or part counts are cut off rather than followed.
MAX_DEPTH = 40
MAX_PARTS = 5000
_parser = BytesHeaderParser(policy=compat32)


# -- text helpers ------------------------------------------------------------

def _clean(text: str) -> str:
    """Turn undecodable header bytes (kept as surrogates) back into text."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogateescape")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")


def _raw(msg: Message, name: str) -> str | None:
    """A header's raw value, unfolded, or None."""
    # raw_items: compat32 wraps 8-bit values in Header objects on plain access.
    wanted = name.lower()
    value = next((v for k, v in msg.raw_items() if k.lower() == wanted), None)
    if value is None:
        return None
    if not isinstance(value, str):
        value = str(value)
    return _clean(_FOLD.sub("", value)).strip("\r\n")


def _decoded(value: str | None) -> str | None:
    """RFC 2047 encoded words decoded for display; raw text when they are broken."""
    if value is None or "=?" not in value:
        return value
    try:
        return _clean(str(make_header(decode_header(value))))
    except Exception:  # malformed encoded words or unknown charsets
        return value


# -- splitting ---------------------------------------------------------------

def split_header(raw: bytes) -> tuple[bytes, bytes]:
    """(For whole messages in memory; _Part streams the same rule.) Split at the end of the header block; a line that is not a header starts the body."""
    pos, n = 0, len(raw)
    while pos < n:
        eol = raw.find(b"\n", pos)
        end = n if eol < 0 else eol + 1
        line = raw[pos:end]
        if line in (b"\n", b"\r\n"):
            return raw[:pos], raw[end:]
        # An mbox "From " line may lead the headers; it belongs to neither part.
        if _HEADER_LINE.match(line) or (pos > 0 and line[:1] in (b" ", b"\t")) or \
                (pos == 0 and line.startswith(b"From ")):
            pos = end
            continue
        return raw[:pos], raw[pos:]
    return raw, b""


def split_multipart(body: bytes, boundary: bytes) -> list[bytes]:
    """(For whole bodies in memory; _Multipart streams the same rule.)
    The body parts between boundary lines (RFC 2046 5.1.1): the CRLF before a
    delimiter belongs to the delimiter, text before the first and after the last is dropped."""
    delim = b"--" + boundary
    marks: list[tuple[int, int, bool]] = []  # (line start, line end, closing)
    pos = 0
    while len(marks) < MAX_PARTS:
        i = body.find(delim, pos)
        if i < 0:
            break
        pos = i + len(delim)
        if i and body[i - 1:i] != b"\n":
            continue
        eol = body.find(b"\n", i)
        end = len(body) if eol < 0 else eol + 1
        rest = body[pos:end]
        closing = rest.startswith(b"--")
        if closing:
            rest = rest[2:]
        if rest.strip():
            continue  # a longer boundary that merely starts with ours
        marks.append((i, end, closing))
        if closing:
            break
    parts: list[bytes] = []
    for (_, start, closing), nxt in zip(marks, marks[1:] + [None]):
        if closing:
            break
        if nxt is None:
            parts.append(body[start:])  # unterminated: the part runs to the end
            break
        stop = nxt[0]
        if body[stop - 2:stop] == b"\r\n":
            stop -= 2
        elif body[stop - 1:stop] == b"\n":
            stop -= 1
        parts.append(body[start:max(start, stop)])
    return parts


# -- addresses ---------------------------------------------------------------

_SPECIALS = set(",:;<>@")


def _tokens(text: str) -> list[tuple[str, str]]:
    """Tokenise an address header: ('q', quoted), ('c', comment), ('l', [literal]),
    ('s', special) or ('a', atom)."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == '"':
            j, buf = i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(text[j])
                j += 1
            out.append(("q", "".join(buf)))
            i = j + 1
        elif ch == "(":
            depth, j = 1, i + 1
            while j < n and depth:
                if text[j] == "\\":
                    j += 1
                elif text[j] == "(":
                    depth += 1
                elif text[j] == ")":
                    depth -= 1
                j += 1
            out.append(("c", text[i + 1:j - 1]))
            i = j
        elif ch == "[":
            j = text.find("]", i)
            j = n if j < 0 else j + 1
            out.append(("l", text[i:j]))
            i = j
        elif ch in _SPECIALS:
            out.append(("s", ch))
            i += 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in _SPECIALS and text[j] not in '"(':
                j += 1
            out.append(("a", text[i:j]))
            i = j
    return out


def _phrase(tokens: list[tuple[str, str]]) -> str | None:
    words = [t for k, t in tokens if k in ("a", "q")]
    return " ".join(words) if words else None


def _addr_spec(tokens: list[tuple[str, str]]) -> tuple[str | None, str | None, str | None]:
    """(route, mailbox, host) of an addr-spec, possibly with an obsolete route."""
    route = None
    for idx, (kind, text) in enumerate(tokens):
        if kind == "s" and text == ":":
            route = "".join(t for _, t in tokens[:idx])
            tokens = tokens[idx + 1:]
            break
    parts = [(k, t) for k, t in tokens if k != "c"]
    at = max((i for i, (k, t) in enumerate(parts) if k == "s" and t == "@"), default=-1)

    def join(seq: list[tuple[str, str]]) -> str:
        return "".join('"%s"' % t.replace("\\", "\\\\").replace('"', '\\"') if k == "q" else t
                       for k, t in seq)

    if at < 0:
        local = join(parts)
        return route, local or None, None
    return route, join(parts[:at]) or None, join(parts[at + 1:]) or None


def _mailbox(tokens: list[tuple[str, str]]) -> list | None:
    if not tokens:
        return None
    if ("s", "<") in tokens:
        lt = tokens.index(("s", "<"))
        gt = tokens.index(("s", ">")) if ("s", ">") in tokens[lt:] else len(tokens)
        name = _phrase(tokens[:lt])
        route, local, host = _addr_spec(tokens[lt + 1:gt])
    else:
        name = None
        route, local, host = _addr_spec(tokens)
    if local is None and host is None and name is None:
        return None
    return [name, route, local, host]


def parse_addresses(value: str | None) -> list[list] | None:
    """IMAP ENVELOPE address list: [name, adl, mailbox, host]; groups open with
    [None, None, group, None] and close with [None, None, None, None] (RFC 3501 7.4.2)."""
    if not value:
        return None
    out: list[list] = []
    current: list[tuple[str, str]] = []
    in_group = in_angle = False

    def flush() -> None:
        box = _mailbox(current)
        if box is not None:
            out.append(box)
        current.clear()

    for tok in _tokens(value):
        kind, text = tok
        if kind == "s" and text == "<":
            in_angle = True
        elif kind == "s" and text == ">":
            in_angle = False
        if kind == "s" and not in_angle:
            if text == ",":
                flush()
                continue
            if text == ":" and not in_group and ("s", "<") not in current:
                out.append([None, None, _phrase(current) or "", None])
                current.clear()
                in_group = True
                continue
            if text == ";" and in_group:
                flush()
                out.append([None, None, None, None])
                in_group = False
                continue
        current.append(tok)
    flush()
    if in_group:
        out.append([None, None, None, None])
    return out or None


def envelope(msg: Message) -> dict:
    """The IMAP ENVELOPE fields, raw (encoded words stay encoded)."""
    sender_from = parse_addresses(_raw(msg, "From"))
    return {
        "date": _raw(msg, "Date"),
        "subject": _raw(msg, "Subject"),
        "from": sender_from,
        # RFC 3501: Sender and Reply-To default to From.
        "sender": parse_addresses(_raw(msg, "Sender")) or sender_from,
        "replyTo": parse_addresses(_raw(msg, "Reply-To")) or sender_from,
        "to": parse_addresses(_raw(msg, "To")),
        "cc": parse_addresses(_raw(msg, "Cc")),
        "bcc": parse_addresses(_raw(msg, "Bcc")),
        "inReplyTo": _raw(msg, "In-Reply-To"),
        "messageId": _raw(msg, "Message-ID"),
    }


# -- body structure ----------------------------------------------------------

def _param_value(value: Any) -> str:
    if isinstance(value, tuple):
        value = collapse_rfc2231_value(value)
    return _clean(str(value))


def _params(msg: Message, header: str) -> tuple[str | None, dict[str, str]]:
    try:
        pairs = msg.get_params(header=header)
    except Exception:
        pairs = None
    if not pairs:
        return None, {}
    first = pairs[0][0].strip().lower() or None
    params: dict[str, str] = {}
    for key, value in pairs[1:]:
        if key:
            params[_clean(key).lower()] = _param_value(value)
    return first, params


# -- streaming ---------------------------------------------------------------
#
# The message is pushed through a tree of small state machines: a part reads
# its header block (kept, up to HEADER_CAP), then only counts its body while
# passing it on to a multipart splitter or, for message/rfc822, through a
# transfer decoder to the inner message's part. Nothing holds a body.

CHUNK = 64 * 1024
# A line longer than this is handled in pieces: it is never a boundary line and
# a header line is recognised by its first LINE_CAP bytes.
LINE_CAP = 64 * 1024
# Header bytes kept per part; further header lines are skipped.
HEADER_CAP = 256 * 1024
# Base64 message/rfc822 parts are also parsed undecoded, in case the decoding
# fails at the end; at most this many per message.
MAX_FALLBACKS = 16

_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/=]+")
_HEX = frozenset(b"0123456789ABCDEFabcdef")


class _Base64:
    """Incremental base64.b64decode(only_alphabet(data) + b"==", validate=False)."""

    def __init__(self) -> None:
        self.carry = b""  # alphabet characters of an incomplete quad
        self.pads = 0
        self.done = False

    def feed(self, data: bytes) -> bytes:
        if self.done:
            return b""
        data = _NOT_BASE64.sub(b"", data)
        out: list[bytes] = []
        while data:
            eq = data.find(b"=")
            run = data if eq < 0 else data[:eq]
            if run:
                self.pads = 0
                text = self.carry + run
                whole = len(text) - len(text) % 4
                if whole:
                    out.append(binascii.a2b_base64(text[:whole]))
                self.carry = text[whole:]
            if eq < 0:
                break
            rest = data[eq:].lstrip(b"=")
            quad = len(self.carry)
            if quad >= 2:  # padding only counts after two characters of a quad
                self.pads += len(data) - eq - len(rest)
                if quad + self.pads >= 4:  # a complete pad sequence ends the data
                    out.append(binascii.a2b_base64(self.carry + b"=" * (4 - quad)))
                    self.carry, self.done = b"", True
                    break
            data = rest
        return b"".join(out)

    def close(self) -> bytes | None:
        """The last bytes, or None where the whole decoding fails."""
        tail = self.feed(b"==")
        return None if self.carry else tail


class _QuotedPrintable:
    """Incremental binascii.a2b_qp (what quopri.decodestring uses)."""

    def __init__(self) -> None:
        self.buf = b""
        self.skip = False  # after "=\r", everything up to the next LF is dropped

    def feed(self, data: bytes) -> bytes:
        data = self.buf + data if self.buf else data
        self.buf = b""
        if self.skip:
            nl = data.find(b"\n")
            if nl < 0:
                return b""
            data, self.skip = data[nl + 1:], False
        out = b""
        nl = data.rfind(b"\n")
        if nl >= 0:  # after a LF the decoder is always between tokens
            out, data = binascii.a2b_qp(data[:nl + 1]), data[nl + 1:]
        if len(data) <= LINE_CAP:
            self.buf = data
            return out
        return out + self._piece(data)

    def _piece(self, data: bytes) -> bytes:
        """Decode a long piece of one line up to its last complete token."""
        i, n = 0, len(data)
        while True:
            j = data.find(b"=", i)
            if j < 0 or j + 1 >= n:
                cut = n if j < 0 else j
                break
            c = data[j + 1]
            if c == 0x0D:  # soft break with junk: skip to the end of the line
                self.skip = True
                return binascii.a2b_qp(data[:j])
            if c == 0x3D:
                i = j + 2
            elif c in _HEX:
                if j + 2 >= n:
                    cut = j
                    break
                i = j + 3 if data[j + 2] in _HEX else j + 1
            else:
                i = j + 1
        self.buf = data[cut:]
        return binascii.a2b_qp(data[:cut])

    def close(self) -> bytes:
        return b"" if self.skip else binascii.a2b_qp(self.buf)


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
    """Splits a multipart body into parts as it streams by, like split_multipart:
    the line end before a delimiter belongs to the delimiter, the preamble and
    the epilogue are dropped, an unterminated last part runs to the end."""

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
        self.decoder: Any = _Base64() if encoding == "BASE64" else \
            _QuotedPrintable() if encoding == "QUOTED-PRINTABLE" else None
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
        if _HEADER_LINE.match(line) or (not self.first and line[:1] in (b" ", b"\t")) or \
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
        msg = self.msg = _parser.parsebytes(bytes(self.head))
        self.head = bytearray()
        if msg.get("Content-Type") is None:
            ctype = self.default_type
            params = {"charset": "us-ascii"} if ctype == "text/plain" else {}
        else:
            ctype, params = _params(msg, "content-type")
            if not ctype or ctype.count("/") != 1 or not all(ctype.split("/")):
                ctype, params = "text/plain", {"charset": "us-ascii"}
        maintype, subtype = ctype.split("/")
        encoding = (_raw(msg, "Content-Transfer-Encoding") or "7BIT").strip().upper()
        disp_type, disp_params = _params(msg, "content-disposition")
        language = _raw(msg, "Content-Language")
        self.node = {
            "type": maintype, "subtype": subtype, "params": params,
            "id": _raw(msg, "Content-ID"), "description": _raw(msg, "Content-Description"),
            "encoding": encoding, "size": 0,
            "md5": _raw(msg, "Content-MD5"),
            "disposition": [disp_type, disp_params] if disp_type else None,
            "language": [x.strip() for x in language.split(",") if x.strip()] if language else None,
            "location": _raw(msg, "Content-Location"),
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
        "subject": _decoded(env["subject"]),
        "from": _decoded(_raw(msg, "From")),
        "to": _decoded(_raw(msg, "To")),
        "cc": _decoded(_raw(msg, "Cc")),
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
