"""Streaming Content-Transfer-Encoding decoders: fed arbitrary chunks, they
return what the stdlib decoders would return for the whole input."""
from __future__ import annotations

import binascii
import re

# A line longer than this is handled in pieces; the quoted-printable decoder
# holds at most this much of an unfinished line.
LINE_CAP = 64 * 1024

_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/=]+")
_HEX = frozenset(b"0123456789ABCDEFabcdef")


class Base64Decoder:
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


class QuotedPrintableDecoder:
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
