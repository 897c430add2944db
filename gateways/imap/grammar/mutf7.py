"""Modified UTF-7 for mailbox names (RFC 3501 §5.1.3).

Printable US-ASCII stands for itself, "&" is written "&-", and every other run of
characters is UTF-16BE in base64 (with "," for "/", no padding) between "&" and "-".
Decoding is strict: there is one correct encoding of every name, and anything else
(raw 8-bit, unterminated or empty shifts, ASCII hidden in base64, adjacent shifts,
non-zero padding bits, lone surrogates) is refused, so two spellings can never name
the same mailbox.
"""
from __future__ import annotations

import binascii


class MUTF7Error(ValueError):
    """Not a correctly encoded modified UTF-7 name."""


_B64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,")


def encode(name: str) -> bytes:
    """Encode a mailbox name for the wire."""
    if name.isascii() and "&" not in name and name.isprintable():
        return name.encode("ascii")  # the common case, no shifting at all
    out = bytearray()
    run: list[str] = []

    def flush() -> None:
        if run:
            raw = "".join(run).encode("utf-16-be", "surrogatepass")
            b64 = binascii.b2a_base64(raw, newline=False).rstrip(b"=").replace(b"/", b",")
            out.extend(b"&" + b64 + b"-")
            run.clear()

    for ch in name:
        if " " <= ch <= "~":
            flush()
            out.extend(b"&-" if ch == "&" else ch.encode("ascii"))
        else:
            run.append(ch)
    flush()
    return bytes(out)


def decode(data: bytes) -> str:
    """Decode a mailbox name from the wire; raises MUTF7Error on anything not canonical."""
    if b"&" not in data:
        if data.isascii() and all(0x20 <= c <= 0x7E for c in data):
            return data.decode("ascii")
        raise MUTF7Error("mailbox name is not 7-bit printable")
    parts: list[str] = []
    i, n = 0, len(data)
    last_shift_end = -1
    while i < n:
        c = data[i]
        if c < 0x20 or c > 0x7E:
            raise MUTF7Error("mailbox name is not 7-bit printable")
        if c != 0x26:  # "&"
            parts.append(chr(c))
            i += 1
            continue
        end = data.find(b"-", i + 1)
        if end < 0:
            raise MUTF7Error("unterminated &-shift in mailbox name")
        if end == i + 1:
            parts.append("&")
            i = end + 1
            continue
        if last_shift_end == i:
            raise MUTF7Error("adjacent &-shifts in mailbox name")
        parts.append(_decode_shift(data[i + 1:end]))
        i = last_shift_end = end + 1
    return "".join(parts)


def _decode_shift(b64: bytes) -> str:
    if not all(c in _B64 for c in b64):
        raise MUTF7Error("bad base64 in mailbox name")
    bits = len(b64) * 6
    nbytes = bits // 8
    if nbytes % 2 or bits - nbytes * 8 >= 6:
        raise MUTF7Error("bad length of &-shift in mailbox name")
    padded = b64.replace(b",", b"/") + b"=" * (-len(b64) % 4)
    try:
        raw = binascii.a2b_base64(padded, strict_mode=True)
    except binascii.Error as e:
        raise MUTF7Error("bad base64 in mailbox name") from e
    # the bits past the last whole byte must be zero (else two spellings decode alike)
    if binascii.b2a_base64(raw, newline=False).rstrip(b"=") != padded.rstrip(b"="):
        raise MUTF7Error("non-zero padding bits in mailbox name")
    try:
        text = raw.decode("utf-16-be")
    except UnicodeDecodeError as e:
        raise MUTF7Error("bad UTF-16 in mailbox name") from e
    if any(ch <= "\x7f" for ch in text):
        raise MUTF7Error("ASCII inside &-shift in mailbox name")
    return text
