"""The text IMAP SEARCH FROM, TO, CC and BCC look in, written the way Dovecot writes it.

RFC 3501 §6.4.4 asks for a substring of the header; Dovecot, whose answers clients
know, matches the address list rather than the header as typed: it parses the
field (as for ENVELOPE, missing parts filled in), writes each address again in one
normal form and then decodes RFC 2047 encoded words in what it wrote:

    Display Name <local@domain>        "Quoted, Name" <"quoted local"@domain>
    <bare@address>                     Group: <a@b>, Name <c@d>;

Comments go (a bare address's last comment becomes its display name), blanks
outside quotes collapse, a display name or local part that is not all atom
characters is quoted. Each occurrence of the field is written on a line of its
own, so that no match spans two of them.
"""
from __future__ import annotations

import base64
import binascii
import re

from server.mime.headers import MISSING_DOMAIN, MISSING_MAILBOX, HeaderBlock, parse_addresses
from server.mime.search import fold
from shared.charsets import text_encoding

# RFC 5322 atext; octets beyond ASCII count as atom characters too.
_ATEXT = r"A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff"
_ATOM = re.compile(f"[{_ATEXT}]*")
_DOT_ATOM = re.compile(f"[{_ATEXT}.]*")
_ESCAPED = re.compile(r"([\"\\'])")


def _maybe_quoted(text: str, dot_is_atom: bool) -> str:
    """`text` as it is when it is atom characters only (and dots, for a local part),
    else as a quoted string."""
    if (_DOT_ATOM if dot_is_atom else _ATOM).fullmatch(text):
        return text
    return '"' + _ESCAPED.sub(r"\\\1", text) + '"'


def _name(name: str) -> str:
    # Encoded words may not stand inside a quoted string (RFC 2047 §5), so a name
    # holding one is written as it is, to be decoded afterwards.
    return name if "=?" in name else _maybe_quoted(name, dot_is_atom=False)


def written(addresses: list[list] | None) -> str:
    """An address list (as `parse_addresses` gives it) in the normal form, encoded
    words not yet decoded."""
    addresses = [a for a in addresses or () if isinstance(a, (list, tuple)) and len(a) == 4]
    # A group opens with [None, None, name, None] and closes with four Nones; a bare
    # "user" without domain looks like an opening, so an opening needs a closing.
    closers = sum(1 for a in addresses if a[0] is None and a[2] is None and a[3] is None)
    out: list[str] = []
    separator = ""
    open_groups = 0
    for name, route, mailbox, host in addresses:
        if host is None and name is None:
            if mailbox is None:
                if open_groups:
                    open_groups -= 1
                    out.append(";")
                    separator = ", "
                continue
            if closers > open_groups:
                open_groups += 1
                out.append(separator + (_name(mailbox) if mailbox else '""') + ":")
                separator = " "
                continue
        out.append(separator)
        if name is not None:
            out.append(_name(name))
            if name:
                out.append(" ")
        local = mailbox if mailbox is not None else MISSING_MAILBOX
        out.append("<" + (route + ":" if route else "") + (_maybe_quoted(local, dot_is_atom=True) if local else '""'))
        out.append("@" + (host or MISSING_DOMAIN) + ">")
        separator = ", "
    return "".join(out)


# -- RFC 2047 encoded words, decoded as Dovecot decodes them -------------------

_WORD = re.compile(r"=\?([^?\s]*)\?([bBqQ])\?([^?\s]*)\?=")
_BLANKS = re.compile(r"[ \t\r\n]*")


def _decode_word(charset: str, encoding: str, text: str) -> str | None:
    charset = charset.split("*", 1)[0]  # RFC 2231 §5 language tag
    try:
        if encoding in "bB":
            data = base64.b64decode(text + "=" * (-len(text) % 4))
        else:
            data = re.sub(rb"=([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]),
                          text.replace("_", " ").encode("latin-1", "replace"))
    except (binascii.Error, ValueError):
        return None
    encoding = text_encoding(charset)
    return None if encoding is None else data.decode(encoding, "replace")


def decoded(text: str) -> str:
    """Encoded words decoded; the blanks between two of them go (RFC 2047 §6.2)."""
    if "=?" not in text:
        return text
    out: list[str] = []
    pos, after_word = 0, False
    for m in _WORD.finditer(text):
        between = text[pos:m.start()]
        word = _decode_word(*m.groups())
        if word is None:
            out.append(between + m.group(0))
            after_word = False
        else:
            if not (after_word and _BLANKS.fullmatch(between)):
                out.append(between)
            out.append(word)
            after_word = True
        pos = m.end()
    out.append(text[pos:])
    return "".join(out)


def search_text(addresses: list[list] | None) -> str:
    """What FROM/TO/CC/BCC search in an address list."""
    return decoded(written(addresses))


def holds(addresses: list[list] | None, needle: str) -> bool:
    """Whether FROM/TO/CC/BCC `needle` matches a field with these addresses."""
    return fold(needle) in fold(search_text(addresses))


# Characters the normal form adds, drops or escapes (a quoted name's ' gets a
# backslash); what lies between them is taken over from the header.
_STRUCTURE = re.compile(r"[\s<>\"\\',:;@()]+")
_FILLED = tuple(fold(word) for word in (MISSING_MAILBOX, MISSING_DOMAIN, "INVALID_ROUTE", "SYNTAX_ERROR"))


def needle_pieces(needle: str) -> list[str]:
    """Case-folded pieces of `needle` every address list it matches holds in its
    parsed form (the cached ENVELOPE), unless encoded words hide them there."""
    return [piece for piece in _STRUCTURE.split(fold(needle))
            if piece and not any(piece in filled for filled in _FILLED)]


# Columns of the stored search text (server/storage/schema.py) and their fields.
ADDRESS_COLUMNS = {"fromAddresses": b"from", "toAddresses": b"to", "ccAddresses": b"cc", "bccAddresses": b"bcc"}


def field_text(block: HeaderBlock, name: bytes) -> str:
    """The stored search text of an address field: each occurrence on a line of its
    own, after a line end ("\\n..."), so that no match spans two; "" when the message
    has no such field."""
    return "".join("\n" + search_text(parse_addresses(value, tidy=False)) for value in block.all(name))
