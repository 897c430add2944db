"""encoded-character (RFC 5228 §2.4.2.4): ${hex:...} and ${unicode:...} in strings."""
from __future__ import annotations

import re

from shared.sieve.errors import SieveError
from shared.sieve.registry import Registry

_ENCODED = re.compile(r"\$\{(hex|unicode):([ \t\r\n0-9a-fA-F]*)\}", re.IGNORECASE)
_BLANKS = re.compile(r"[ \t\r\n]+")


def decode(value: str, line: int) -> str:
    """A malformed sequence stays as written; a code point outside Unicode is an error."""
    def replace(found: re.Match[str]) -> str:
        numbers = _BLANKS.split(found.group(2).strip())
        if numbers == [""]:
            return ""
        if found.group(1).lower() == "hex":
            octets = bytes(int(number, 16) for number in numbers if len(number) <= 2)
            if len(octets) != len(numbers):
                return found.group(0)
            return octets.decode("utf-8", "replace")
        text = []
        for number in numbers:
            code = int(number[-8:] if len(number.lstrip("0")) <= 8 else "110000", 16)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise SieveError(f"${{unicode:{number}}} is not a Unicode character", line)
            text.append(chr(code))
        return "".join(text)

    return _ENCODED.sub(replace, value) if "${" in value else value


def register(registry: Registry) -> None:
    registry.capability("encoded-character")
    registry.string_transform("encoded-character", decode)
