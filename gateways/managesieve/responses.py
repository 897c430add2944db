"""The ManageSieve output grammar (RFC 5804 §4): strings, response codes, OK/NO/BYE."""
from __future__ import annotations

from gateways.managesieve.parsing import MAX_QUOTED

# Response codes of RFC 5804 §1.3.
AUTH_TOO_WEAK = "AUTH-TOO-WEAK"
ENCRYPT_NEEDED = "ENCRYPT-NEEDED"
QUOTA = "QUOTA"
QUOTA_MAXSCRIPTS = "QUOTA/MAXSCRIPTS"
QUOTA_MAXSIZE = "QUOTA/MAXSIZE"
TRYLATER = "TRYLATER"
ACTIVE = "ACTIVE"
NONEXISTENT = "NONEXISTENT"
ALREADYEXISTS = "ALREADYEXISTS"
WARNINGS = "WARNINGS"


def string(value: str | bytes) -> bytes:
    """A string as the server sends it: quoted when short and plain, else a literal
    (`literal-s2c`, RFC 5804 §4)."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    if len(data) <= MAX_QUOTED and not any(c in data for c in b"\r\n\x00"):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(data) + data


def tagged(code: str, value: str | bytes) -> bytes:
    """A response code with a string argument, such as TAG (RFC 5804 §2.11) or SASL."""
    return code.encode("ascii") + b" " + string(value)


def response(kind: str, code: str | bytes | None = None, text: str | None = None) -> bytes:
    """`OK`, `NO` or `BYE`, with an optional response code and human-readable text, and CRLF."""
    out = kind.encode("ascii")
    if code:
        out += b" (" + (code.encode("ascii") if isinstance(code, str) else code) + b")"
    if text:
        out += b" " + string(text)
    return out + b"\r\n"
