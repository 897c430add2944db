"""Charset names as messages carry them (MIME parameters, encoded words), checked before use.

A name in a message is untrusted text: Python's codec registry also knows bytes-to-bytes
codecs (`base64`, `zlib`, `uu`), text transforms (`rot13`) and `undefined`, and refuses
names with a NUL with a ValueError. Only a real text encoding may decode a message.
"""
from __future__ import annotations

import codecs


def text_encoding(charset: str | None) -> str | None:
    """The canonical name of the text encoding `charset` names, or None when it names none."""
    if not charset:
        return None
    try:
        b"a".decode(charset, "replace")  # LookupError for codecs that are not text encodings
        return codecs.lookup(charset).name
    except (LookupError, ValueError, TypeError):
        return None
