"""Read-only access to the message a script looks at, through Python's `email` package.

Header values are unfolded and their encoded words decoded (RFC 2047) as RFC 5228 §5.7
asks; addresses are read from the undecoded value so an encoded display name cannot add
a comma or an '@'.
"""
from __future__ import annotations

import email
import email.errors
import email.header
import email.policy
import email.utils
from email.message import Message

from shared.charsets import text_encoding

_RAW_CHARSETS = ("utf-8", "latin-1")


def unfold(value: str) -> str:
    """RFC 5322 §2.2.3: a line break followed by white space is only white space."""
    return value.replace("\r\n", "\n").replace("\n ", " ").replace("\n\t", "\t").replace("\n", "")


def decode_words(value: str) -> str:
    """RFC 2047 encoded words to text; a broken encoding leaves the text as written."""
    if "=?" not in value:
        return value
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (email.errors.HeaderParseError, LookupError, UnicodeError, ValueError, TypeError):
        return value


def _text(raw: str) -> str:
    """Header text as parsed (surrogate-escaped octets) to str, 8-bit read as UTF-8."""
    return raw.encode("ascii", "surrogateescape").decode("utf-8", "replace")


def split_address(address: str) -> tuple[str, str]:
    """addr-spec to (local part, domain); the last '@' separates them."""
    local, at, domain = address.rpartition("@")
    return (local, domain) if at else (address, "")


class MessageView:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.parsed: Message = email.message_from_bytes(raw, policy=email.policy.compat32)
        self._fields: list[tuple[str, str]] | None = None

    @property
    def size(self) -> int:
        return len(self.raw)

    def fields(self) -> list[tuple[str, str]]:
        """Every header field in order: (lower-case name, unfolded undecoded value)."""
        if self._fields is None:
            self._fields = [(name.lower(), unfold(_text(value)).strip())
                            for name, value in self.parsed.raw_items()]
        return self._fields

    def raw_values(self, name: str) -> list[str]:
        name = name.lower()
        return [value for field, value in self.fields() if field == name]

    def header(self, name: str) -> list[str]:
        """The decoded values of every field called `name`, in order (RFC 5228 §5.7)."""
        return [decode_words(value) for value in self.raw_values(name)]

    def has_header(self, name: str) -> bool:
        name = name.lower()
        return any(field == name for field, _ in self.fields())

    def addresses(self, name: str) -> list[list[str]]:
        """Per field called `name`, the addr-specs it holds (groups flattened)."""
        result = []
        for value in self.raw_values(name):
            pairs = email.utils.getaddresses([value])
            result.append([address for _, address in pairs if address])
        return result

    def raw_body(self) -> str:
        """The body as sent, no transfer decoding (RFC 5173 §5.1 :raw)."""
        raw = self.raw
        ends = [index for index in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if index >= 0]
        if not ends:
            return ""
        start = min(ends)
        start += 4 if raw.startswith(b"\r\n\r\n", start) else 2
        return raw[start:].decode("utf-8", "replace")

    def parts(self, content_types: tuple[str, ...]) -> list[str]:
        """Decoded leaf parts whose type matches one of `content_types` (RFC 5173 §5.2):
        "" matches all, "text" a whole type, "text/plain" one subtype."""
        wanted = [kind.lower() for kind in content_types]
        texts = []
        for part in self.parsed.walk():
            if part.is_multipart():
                continue
            kind = part.get_content_type().lower()
            major = kind.split("/", 1)[0]
            if not any(want in ("", major, kind) for want in wanted):
                continue
            texts.append(_decoded_payload(part))
        return texts


def _decoded_payload(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except (ValueError, TypeError, LookupError):
        payload = None
    if not isinstance(payload, bytes):
        text = part.get_payload()
        return text if isinstance(text, str) else ""
    charset = text_encoding(part.get_content_charset() or "us-ascii")
    for name in (charset, *_RAW_CHARSETS) if charset else _RAW_CHARSETS:
        try:
            return payload.decode(name, "replace").replace("\r\n", "\n")
        except LookupError:
            continue
    return payload.decode("latin-1")



def mailbox_address(text: str) -> str | None:
    """The addr-spec of one RFC 5322 mailbox ("a@b" or "Name <a@b>"), or None."""
    if "\r" in text or "\n" in text:
        return None
    pairs = email.utils.getaddresses([text])
    if len(pairs) != 1:
        return None
    address = pairs[0][1]
    local, domain = split_address(address)
    if not local or not domain or any(char.isspace() for char in address):
        return None
    return address
