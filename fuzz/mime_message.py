"""MIME: the streaming structure parser, the header field readers, the transfer
decoders and the text search over a message (server/mime).

Input: one option byte (piece size), then a message. It goes through the structure
parser in pieces (what `message_columns` does, without its safety net), through
`message_columns` itself, through the header readers (ENVELOPE, addresses,
Content-Type and -Disposition parameters, encoded words) for every field of its header,
through the base64 and quoted-printable decoders in pieces, and through SEARCH's
header, BODY and TEXT matching with a needle taken from the message.

Finding: any exception (these readers are total: `message_columns` promises never to
raise on a malformed message, and its catch-all would hide a failure as empty
columns), columns that are not JSON, or a streaming decoder whose output differs from
the stdlib decoder it stands for on the whole input (their documented promise).
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import re

from fuzz.driver import pieces
from server.mime import message_columns
from server.mime.decoders import Base64Decoder, QuotedPrintableDecoder
from server.mime.headers import (HeaderBlock, content_type, decode_words, decoded_parameter, disposition,
                                 envelope, parse_addresses)
from server.mime.search import body_text, header_matches, text_matches
from server.mime.structure import _columns, _Parser

_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/=]+")


def check(data: bytes) -> None:
    if not data:
        return
    options, message = data[0], data[1:]
    piece = (options & 0x7f) * 61 + 1
    structure(message, piece)
    headers(message)
    decoders(message, piece)
    search(message, options)


def structure(message: bytes, piece: int) -> None:
    parser = _Parser()
    for chunk in pieces(message, piece):
        parser.feed(chunk)
    parser.close()
    strict = _columns(parser)
    columns = message_columns(io.BytesIO(message))
    assert columns == strict, "message_columns fell back to empty columns"
    json.loads(columns["envelope"])
    json.loads(columns["bodystructure"])


def headers(message: bytes) -> None:
    end = message.find(b"\n\n")
    block = HeaderBlock(message if end < 0 else message[:end])
    envelope(block)
    for name in block.fields:
        for value in block.all(name):
            decode_words(value)
            parse_addresses(value)
            parse_addresses(value, tidy=False)
            kind, params = content_type(value)
            for param in params:
                decoded_parameter(params, param)
            disposition(value)


def decoders(message: bytes, piece: int) -> None:
    b64 = Base64Decoder()
    out = b"".join(b64.feed(chunk) for chunk in pieces(message, piece))
    tail = b64.close()
    try:
        expected = base64.b64decode(_NOT_BASE64.sub(b"", message) + b"==", validate=False)
    except binascii.Error:
        expected = None
    assert (None if tail is None else out + tail) == expected, "base64 decoder differs from b64decode"
    qp = QuotedPrintableDecoder()
    out = b"".join(qp.feed(chunk) for chunk in pieces(message, piece))
    assert out + qp.close() == binascii.a2b_qp(message), "quoted-printable decoder differs from a2b_qp"


def search(message: bytes, options: int) -> None:
    for _ in body_text(io.BytesIO(message), with_header=True):
        pass
    words = message.split()
    needle = words[options % len(words)].decode("utf-8", "replace")[:40] if words else ""
    text_matches(io.BytesIO(message), needle, body_only=bool(options & 1))
    header_matches(io.BytesIO(message), "subject", needle)


if __name__ == "__main__":
    from fuzz.driver import run
    run(check)
