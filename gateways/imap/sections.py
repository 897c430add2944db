"""Where a FETCH body section lies in a message's source (RFC 3501 §6.4.5, RFC 3516).

`PartMap` is fed the source in chunks of any size and records, for every MIME
entity, where its header starts, where its body starts and where it ends, so a
section becomes a byte range of the stored source. Nothing but the header
blocks is kept (each capped), so a 50 MB message is mapped in bounded memory and
the section itself is then read with a ranged read, or sliced from a small
source already in memory.

Numbering follows RFC 3501: the parts of a multipart are 1, 2, ...; a message
that is not multipart has one part, its body, numbered 1; the parts of an
encapsulated message/rfc822 are numbered below its own number, and HEADER, TEXT
and HEADER.FIELDS of a non-empty part name the encapsulated message's.
"""
from __future__ import annotations

import binascii
import re
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any

HEADER_CAP = 64 * 1024  # header bytes kept per entity for its Content-Type
LINE_CAP = 8 * 1024  # longer lines are content, never a boundary or a header we read
MAX_DEPTH = 40
MAX_PARTS = 5000
_HEADER_LINE = re.compile(rb"[!-9;-~]+[ \t]*:")
_PARSER = BytesHeaderParser(policy=compat32)


@dataclass(eq=False)
class Entity:
    """One MIME entity: [start, body_start) is its header, [body_start, end) its body."""
    start: int
    default_type: str = "text/plain"
    depth: int = 0
    body_start: int = -1
    end: int = -1
    content_type: str = "text/plain"
    encoding: str = "7BIT"
    boundary: bytes | None = None
    children: list["Entity"] = field(default_factory=list)
    inner: "Entity | None" = None  # the encapsulated message of a message/rfc822
    head: bytearray = field(default_factory=bytearray)
    first_line: bool = True
    finished_children: bool = False  # after the closing delimiter

    @property
    def multipart(self) -> bool:
        # A multipart without any delimiter shows as one plain part.
        return self.boundary is not None and bool(self.children)

    @property
    def header_range(self) -> tuple[int, int]:
        return self.start, self.body_start

    @property
    def body_range(self) -> tuple[int, int]:
        return self.body_start, self.end


class PartMap:
    """Feed the source with `feed`, then `finish(size)`; `root` is the message."""

    def __init__(self) -> None:
        self.root = Entity(0)
        self._stack: list[Entity] = [self.root]
        self._pos = 0  # offset of the next byte fed
        self._carry = b""  # the start of an unfinished line
        self._carry_at = 0
        self._in_long_line = False
        self._prev_eol = 0  # length of the previous line's end (CRLF 2, LF 1)
        self._parts = 0
        self.done = False

    # -- input
    def feed(self, data: bytes) -> None:
        pos, n = 0, len(data)
        while pos < n:
            nl = data.find(b"\n", pos)
            if nl < 0:
                piece = data[pos:]
                if self._in_long_line:
                    pass
                elif len(self._carry) + len(piece) > LINE_CAP:
                    self._long_line()
                else:
                    if not self._carry:
                        self._carry_at = self._pos + pos
                    self._carry += piece
                break
            end = nl + 1
            if self._in_long_line:
                self._in_long_line = False
                self._prev_eol = 2 if nl > 0 and data[nl - 1] == 0x0D else 1
            elif self._carry:
                line = self._carry + data[pos:end]
                self._carry = b""
                self._line(line, self._carry_at)
            else:
                self._line(data[pos:end], self._pos + pos)
            pos = end
        self._pos += n

    def finish(self, size: int | None = None) -> Entity:
        """Close every open entity at the end of the source; returns the root."""
        if self._carry and not self._in_long_line:
            line, self._carry = self._carry, b""
            self._line(line, self._carry_at)
        end = self._pos if size is None else size
        while self._stack:
            self._close(self._stack.pop(), end)
        self.done = True
        return self.root

    def _long_line(self) -> None:
        """A line too long to be anything but content: it ends a header block."""
        top = self._stack[-1]
        if top.body_start < 0:
            at = self._carry_at if self._carry else self._pos
            if not (self._carry and (_HEADER_LINE.match(self._carry) or not top.first_line
                                     and self._carry[:1] in (b" ", b"\t"))):
                self._end_header(top, at)
        self._carry = b""
        self._in_long_line = True

    # -- lines
    def _line(self, line: bytes, at: int) -> None:
        eol = 2 if line.endswith(b"\r\n") else 1 if line.endswith(b"\n") else 0
        if line.startswith(b"--") and self._delimiter(line, at):
            self._prev_eol = eol
            return
        top = self._stack[-1]
        if top.body_start < 0:
            if line in (b"\r\n", b"\n"):
                self._end_header(top, at + len(line))
            elif _HEADER_LINE.match(line) or (not top.first_line and line[:1] in (b" ", b"\t")) or \
                    (top.first_line and top is self.root and line.startswith(b"From ")):
                top.first_line = False
                if len(top.head) + len(line) <= HEADER_CAP:
                    top.head += line
            else:
                # Not a header line: the header block ended without an empty line.
                self._end_header(top, at)
        self._prev_eol = eol

    def _delimiter(self, line: bytes, at: int) -> bool:
        """Whether `line` delimits an open multipart; closes and opens parts if so."""
        # Outermost first, as the structure the store caches splits them.
        for i, entity in enumerate(self._stack):
            if entity.boundary is None or entity.body_start < 0 or entity.finished_children:
                continue
            rest = line[2:]
            if not rest.startswith(entity.boundary):
                continue
            rest = rest[len(entity.boundary):]
            closing = rest.startswith(b"--")
            if closing:
                rest = rest[2:]
            if rest.strip():
                continue
            end = at - self._prev_eol if entity.children else at
            while len(self._stack) - 1 > i:
                child = self._stack.pop()
                self._close(child, max(child.start if child.body_start < 0 else child.body_start, end))
            if closing or self._parts >= MAX_PARTS:
                entity.finished_children = True
            else:
                self._parts += 1
                default = "message/rfc822" if entity.content_type == "multipart/digest" else "text/plain"
                child = Entity(at + len(line), default, entity.depth + 1)
                entity.children.append(child)
                self._stack.append(child)
            return True
        return False

    def _end_header(self, entity: Entity, body_start: int, closing: bool = False) -> None:
        entity.body_start = body_start
        head, entity.head = bytes(entity.head), bytearray()
        msg = _PARSER.parsebytes(head)
        ctype = msg.get("Content-Type")
        if ctype is None:
            entity.content_type = entity.default_type
        else:
            entity.content_type = msg.get_content_type()
        entity.encoding = (str(msg.get("Content-Transfer-Encoding") or "7BIT")).strip().upper()
        if entity.depth >= MAX_DEPTH:
            return
        maintype = entity.content_type.split("/")[0]
        if maintype == "multipart":
            boundary = msg.get_param("boundary")
            if isinstance(boundary, tuple):  # RFC 2231 form
                boundary = boundary[2]
            if boundary:
                entity.boundary = str(boundary).encode("utf-8", "surrogateescape")
        elif entity.content_type in ("message/rfc822", "message/global") and not closing and \
                entity.encoding not in ("BASE64", "QUOTED-PRINTABLE"):
            entity.inner = Entity(body_start, "text/plain", entity.depth + 1)
            self._stack.append(entity.inner)

    def _close(self, entity: Entity, end: int) -> None:
        if entity.body_start < 0:
            self._end_header(entity, end, closing=True)
        entity.end = max(end, entity.body_start)


# -- sections -----------------------------------------------------------------------

@dataclass(frozen=True)
class Located:
    """A section as a byte range of the source; `fields` filters a header block
    (HEADER.FIELDS / .NOT); `encoding` is the part's transfer encoding (BINARY)."""
    start: int
    end: int
    fields: tuple[str, ...] | None = None
    exclude: bool = False
    encoding: str = "7BIT"


def locate(root: Entity, part: tuple[int, ...], text: str | None,
           headers: tuple[str, ...] = ()) -> Located | None:
    """The range of `BODY[part.text]` in the source mapped as `root`; None when absent."""
    target = root
    node = root
    for i, number in enumerate(part):
        if node.multipart:
            if not 1 <= number <= len(node.children):
                return None
            target = node.children[number - 1]
        elif number == 1:
            target = node
        else:
            return None
        if i < len(part) - 1:
            if target.inner is not None:
                node = target.inner
            elif target.multipart:
                node = target
            elif target is node:
                return None
            else:
                node = target
    if not part:
        message = root
    else:
        message = target.inner
    if text is None:
        if not part:
            return Located(root.start, root.end)
        return Located(target.body_start, target.end, encoding=target.encoding)
    if text == "MIME":
        if not part:
            return None
        return Located(target.start, target.body_start)
    if message is None:
        return None
    if text == "HEADER":
        return Located(message.start, message.body_start)
    if text == "TEXT":
        return Located(message.body_start, message.end)
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        return Located(message.start, message.body_start, tuple(h.upper() for h in headers),
                       text == "HEADER.FIELDS.NOT")
    return None


def filter_header(block: bytes, names: tuple[str, ...], exclude: bool) -> bytes:
    """The header lines of `block` whose field names are (or, `exclude`, are not) in
    `names`, with continuation lines, followed by the empty line (RFC 3501 §6.4.5)."""
    wanted = {n.upper().encode("ascii", "replace") for n in names}
    out: list[bytes] = []
    keep = False
    for line in block.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        name = line.split(b":", 1)[0].strip().upper()
        keep = (name in wanted) != exclude if b":" in line else False
        if keep:
            out.append(line if line.endswith(b"\n") else line + b"\r\n")
    out.append(b"\r\n")
    return b"".join(out)


# -- transfer decoding for BINARY ----------------------------------------------------

class UnknownEncoding(ValueError):
    """A Content-Transfer-Encoding BINARY cannot undo (answered NO [UNKNOWN-CTE])."""


_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")
# RFC 2045 §6.7 (3): white space at the end of a quoted-printable line was added in
# transport and is deleted when decoding (also after a soft line break's "=").
_QP_TRAILING_SPACE = re.compile(rb"[ \t]+(?=\r?\n|$)")


class Decoder:
    """Undo a transfer encoding chunk by chunk: `feed` bytes, then `close`."""

    def __init__(self, encoding: str) -> None:
        encoding = encoding.upper()
        if encoding in ("7BIT", "8BIT", "BINARY", ""):
            self.kind = "identity"
        elif encoding in ("BASE64", "QUOTED-PRINTABLE"):
            self.kind = encoding
        else:
            raise UnknownEncoding(encoding)
        self._rest = b""

    def feed(self, data: bytes) -> bytes:
        if self.kind == "identity":
            return data
        if self.kind == "BASE64":
            data = self._rest + _B64_JUNK.sub(b"", data)
            usable = len(data) - len(data) % 4
            self._rest = data[usable:]
            return _b64(data[:usable])
        data = self._rest + data
        cut = data.rfind(b"\n") + 1
        self._rest = data[cut:]
        return binascii.a2b_qp(_QP_TRAILING_SPACE.sub(b"", data[:cut]))

    def close(self) -> bytes:
        rest, self._rest = self._rest, b""
        if self.kind == "BASE64":
            if len(rest) % 4 == 1:
                rest = rest[:-1]  # a lone sextet carries no whole octet
            if len(rest) % 4:
                rest += b"=" * (4 - len(rest) % 4)
            return _b64(rest)
        if self.kind == "QUOTED-PRINTABLE":
            return binascii.a2b_qp(_QP_TRAILING_SPACE.sub(b"", rest))
        return rest


def _b64(data: bytes) -> bytes:
    if not data:
        return b""
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        # Padding inside the data (several encoded pieces): decode each quantum group.
        out = []
        for i in range(0, len(data), 4):
            try:
                out.append(binascii.a2b_base64(data[i:i + 4]))
            except binascii.Error:
                pass
        return b"".join(out)


def decode(data: bytes, encoding: str) -> bytes:
    decoder = Decoder(encoding)
    return decoder.feed(data) + decoder.close()


# -- the same map from the structure the store keeps -----------------------------------

def from_structure(node: Any) -> Entity | None:
    """The entity tree of a message from its cached BODYSTRUCTURE, whose nodes carry
    "offsets": [header start, body start, end] in the source; None when the root has
    none (stored before offsets were kept), so the caller maps the source instead."""
    if not isinstance(node, dict) or not _offsets(node):
        return None
    return _entity(node)


def _offsets(node: dict) -> bool:
    offsets = node.get("offsets")
    return isinstance(offsets, list) and len(offsets) == 3 and all(isinstance(n, int) for n in offsets)


def _entity(node: dict) -> Entity:
    start, body_start, end = node["offsets"]
    kind = f"{node.get('type') or 'text'}/{node.get('subtype') or 'plain'}".lower()
    entity = Entity(start, body_start=body_start, end=end, content_type=kind,
                    encoding=str(node.get("encoding") or "7BIT").upper())
    parts = node.get("parts")
    if kind.startswith("multipart/") and parts and all(isinstance(p, dict) and _offsets(p) for p in parts):
        entity.boundary = b"-"
        entity.children = [_entity(p) for p in parts]
    inner = node.get("body")
    if kind in ("message/rfc822", "message/global") and isinstance(inner, dict) and _offsets(inner):
        entity.inner = _entity(inner)
    return entity
