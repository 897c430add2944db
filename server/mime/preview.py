"""The PREVIEW text of a message (IMAP PREVIEW, RFC 8970), made once when it is stored.

The start of what a reader sees: the decoded text parts (`search.body_text`: transfer
encoding undone, charset decoded), markup removed from HTML, white space runs made
one space, at most `PREVIEW_CHARS` characters (RFC 8970 §3 allows 256). Only as much
of the message is read as that takes.
"""
from __future__ import annotations

import re
from typing import BinaryIO

from server.mime.search import body_text

PREVIEW_CHARS = 200
# Text read at most: markup and white space shrink, so some more than the preview.
_READ_CHARS = 8 * PREVIEW_CHARS
_HTML = re.compile(r"<(?:!doctype|html|head|body|div|p|br|table|span)\b", re.IGNORECASE)
_INVISIBLE = re.compile(r"<(style|script|head)\b.*?(?:</\1\s*>|$)", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>?")
_SPACE = re.compile(r"\s+")
_ENTITIES = {"&nbsp;": " ", "&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#39;": "'"}
_ENTITY = re.compile("|".join(map(re.escape, _ENTITIES)))


def preview(fp: BinaryIO) -> str:
    """The preview of the message read from `fp` ("" when it has no text)."""
    pieces: list[str] = []
    length = 0
    for piece in body_text(fp):
        if piece is None:
            pieces.append(" ")
            continue
        pieces.append(piece)
        length += len(piece)
        if length >= _READ_CHARS:
            break
    text = "".join(pieces)
    if _HTML.search(text):
        text = _ENTITY.sub(lambda m: _ENTITIES[m.group(0)], _TAG.sub(" ", _INVISIBLE.sub(" ", text)))
    return _SPACE.sub(" ", text).strip()[:PREVIEW_CHARS].rstrip()
