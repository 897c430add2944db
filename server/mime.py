"""Listing columns of a mail message, derived from its RFC 822 bytes.

Part boundaries are found in the original bytes so that every size in the
BODYSTRUCTURE is the exact octet count IMAP clients rely on for partial
fetches; the stdlib email package only parses the header blocks.
"""
from __future__ import annotations

import base64
import binascii
import json
import quopri
import re
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import collapse_rfc2231_value, parsedate_to_datetime
from typing import Any, BinaryIO

_HEADER_LINE = re.compile(rb"[!-9;-~]+[ \t]*:")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
# Hostile nesting or part counts are cut off rather than followed.
MAX_DEPTH = 40
MAX_PARTS = 5000
_parser = BytesHeaderParser(policy=compat32)


# -- text helpers ------------------------------------------------------------

def _clean(text: str) -> str:
    """Turn undecodable header bytes (kept as surrogates) back into text."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogateescape")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")


def _raw(msg: Message, name: str) -> str | None:
    """A header's raw value, unfolded, or None."""
    # raw_items: compat32 wraps 8-bit values in Header objects on plain access.
    wanted = name.lower()
    value = next((v for k, v in msg.raw_items() if k.lower() == wanted), None)
    if value is None:
        return None
    if not isinstance(value, str):
        value = str(value)
    return _clean(_FOLD.sub("", value)).strip("\r\n")


def _decoded(value: str | None) -> str | None:
    """RFC 2047 encoded words decoded for display; raw text when they are broken."""
    if value is None or "=?" not in value:
        return value
    try:
        return _clean(str(make_header(decode_header(value))))
    except Exception:  # malformed encoded words or unknown charsets
        return value


def _lines(body: bytes) -> int:
    return body.count(b"\n") + (1 if body and not body.endswith(b"\n") else 0)


# -- splitting ---------------------------------------------------------------

def split_header(raw: bytes) -> tuple[bytes, bytes]:
    """Split at the end of the header block; a line that is not a header starts the body."""
    pos, n = 0, len(raw)
    while pos < n:
        eol = raw.find(b"\n", pos)
        end = n if eol < 0 else eol + 1
        line = raw[pos:end]
        if line in (b"\n", b"\r\n"):
            return raw[:pos], raw[end:]
        # An mbox "From " line may lead the headers; it belongs to neither part.
        if _HEADER_LINE.match(line) or (pos > 0 and line[:1] in (b" ", b"\t")) or \
                (pos == 0 and line.startswith(b"From ")):
            pos = end
            continue
        return raw[:pos], raw[pos:]
    return raw, b""


def split_multipart(body: bytes, boundary: bytes) -> list[bytes]:
    """The body parts between boundary lines (RFC 2046 5.1.1): the CRLF before a
    delimiter belongs to the delimiter, text before the first and after the last is dropped."""
    delim = b"--" + boundary
    marks: list[tuple[int, int, bool]] = []  # (line start, line end, closing)
    pos = 0
    while len(marks) < MAX_PARTS:
        i = body.find(delim, pos)
        if i < 0:
            break
        pos = i + len(delim)
        if i and body[i - 1:i] != b"\n":
            continue
        eol = body.find(b"\n", i)
        end = len(body) if eol < 0 else eol + 1
        rest = body[pos:end]
        closing = rest.startswith(b"--")
        if closing:
            rest = rest[2:]
        if rest.strip():
            continue  # a longer boundary that merely starts with ours
        marks.append((i, end, closing))
        if closing:
            break
    parts: list[bytes] = []
    for (_, start, closing), nxt in zip(marks, marks[1:] + [None]):
        if closing:
            break
        if nxt is None:
            parts.append(body[start:])  # unterminated: the part runs to the end
            break
        stop = nxt[0]
        if body[stop - 2:stop] == b"\r\n":
            stop -= 2
        elif body[stop - 1:stop] == b"\n":
            stop -= 1
        parts.append(body[start:max(start, stop)])
    return parts


# -- addresses ---------------------------------------------------------------

_SPECIALS = set(",:;<>@")


def _tokens(text: str) -> list[tuple[str, str]]:
    """Tokenise an address header: ('q', quoted), ('c', comment), ('l', [literal]),
    ('s', special) or ('a', atom)."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == '"':
            j, buf = i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(text[j])
                j += 1
            out.append(("q", "".join(buf)))
            i = j + 1
        elif ch == "(":
            depth, j = 1, i + 1
            while j < n and depth:
                if text[j] == "\\":
                    j += 1
                elif text[j] == "(":
                    depth += 1
                elif text[j] == ")":
                    depth -= 1
                j += 1
            out.append(("c", text[i + 1:j - 1]))
            i = j
        elif ch == "[":
            j = text.find("]", i)
            j = n if j < 0 else j + 1
            out.append(("l", text[i:j]))
            i = j
        elif ch in _SPECIALS:
            out.append(("s", ch))
            i += 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in _SPECIALS and text[j] not in '"(':
                j += 1
            out.append(("a", text[i:j]))
            i = j
    return out


def _phrase(tokens: list[tuple[str, str]]) -> str | None:
    words = [t for k, t in tokens if k in ("a", "q")]
    return " ".join(words) if words else None


def _addr_spec(tokens: list[tuple[str, str]]) -> tuple[str | None, str | None, str | None]:
    """(route, mailbox, host) of an addr-spec, possibly with an obsolete route."""
    route = None
    for idx, (kind, text) in enumerate(tokens):
        if kind == "s" and text == ":":
            route = "".join(t for _, t in tokens[:idx])
            tokens = tokens[idx + 1:]
            break
    parts = [(k, t) for k, t in tokens if k != "c"]
    at = max((i for i, (k, t) in enumerate(parts) if k == "s" and t == "@"), default=-1)

    def join(seq: list[tuple[str, str]]) -> str:
        return "".join('"%s"' % t.replace("\\", "\\\\").replace('"', '\\"') if k == "q" else t
                       for k, t in seq)

    if at < 0:
        local = join(parts)
        return route, local or None, None
    return route, join(parts[:at]) or None, join(parts[at + 1:]) or None


def _mailbox(tokens: list[tuple[str, str]]) -> list | None:
    if not tokens:
        return None
    if ("s", "<") in tokens:
        lt = tokens.index(("s", "<"))
        gt = tokens.index(("s", ">")) if ("s", ">") in tokens[lt:] else len(tokens)
        name = _phrase(tokens[:lt])
        route, local, host = _addr_spec(tokens[lt + 1:gt])
    else:
        name = None
        route, local, host = _addr_spec(tokens)
    if local is None and host is None and name is None:
        return None
    return [name, route, local, host]


def parse_addresses(value: str | None) -> list[list] | None:
    """IMAP ENVELOPE address list: [name, adl, mailbox, host]; groups open with
    [None, None, group, None] and close with [None, None, None, None] (RFC 3501 7.4.2)."""
    if not value:
        return None
    out: list[list] = []
    current: list[tuple[str, str]] = []
    in_group = in_angle = False

    def flush() -> None:
        box = _mailbox(current)
        if box is not None:
            out.append(box)
        current.clear()

    for tok in _tokens(value):
        kind, text = tok
        if kind == "s" and text == "<":
            in_angle = True
        elif kind == "s" and text == ">":
            in_angle = False
        if kind == "s" and not in_angle:
            if text == ",":
                flush()
                continue
            if text == ":" and not in_group and ("s", "<") not in current:
                out.append([None, None, _phrase(current) or "", None])
                current.clear()
                in_group = True
                continue
            if text == ";" and in_group:
                flush()
                out.append([None, None, None, None])
                in_group = False
                continue
        current.append(tok)
    flush()
    if in_group:
        out.append([None, None, None, None])
    return out or None


def envelope(msg: Message) -> dict:
    """The IMAP ENVELOPE fields, raw (encoded words stay encoded)."""
    sender_from = parse_addresses(_raw(msg, "From"))
    return {
        "date": _raw(msg, "Date"),
        "subject": _raw(msg, "Subject"),
        "from": sender_from,
        # RFC 3501: Sender and Reply-To default to From.
        "sender": parse_addresses(_raw(msg, "Sender")) or sender_from,
        "replyTo": parse_addresses(_raw(msg, "Reply-To")) or sender_from,
        "to": parse_addresses(_raw(msg, "To")),
        "cc": parse_addresses(_raw(msg, "Cc")),
        "bcc": parse_addresses(_raw(msg, "Bcc")),
        "inReplyTo": _raw(msg, "In-Reply-To"),
        "messageId": _raw(msg, "Message-ID"),
    }


# -- body structure ----------------------------------------------------------

def _param_value(value: Any) -> str:
    if isinstance(value, tuple):
        value = collapse_rfc2231_value(value)
    return _clean(str(value))


def _params(msg: Message, header: str) -> tuple[str | None, dict[str, str]]:
    try:
        pairs = msg.get_params(header=header)
    except Exception:
        pairs = None
    if not pairs:
        return None, {}
    first = pairs[0][0].strip().lower() or None
    params: dict[str, str] = {}
    for key, value in pairs[1:]:
        if key:
            params[_clean(key).lower()] = _param_value(value)
    return first, params


def _decode_transfer(body: bytes, encoding: str) -> bytes:
    try:
        if encoding == "BASE64":
            return base64.b64decode(re.sub(rb"[^A-Za-z0-9+/=]", b"", body) + b"==", validate=False)
        if encoding == "QUOTED-PRINTABLE":
            return quopri.decodestring(body)
    except (binascii.Error, ValueError):
        pass
    return body


def _part(raw: bytes, default_type: str = "text/plain", depth: int = 0) -> dict:
    header, body = split_header(raw)
    msg = _parser.parsebytes(header)
    if msg.get("Content-Type") is None:
        ctype, params = default_type, ({"charset": "us-ascii"} if default_type == "text/plain" else {})
    else:
        ctype, params = _params(msg, "content-type")
        if not ctype or ctype.count("/") != 1 or not all(ctype.split("/")):
            ctype, params = "text/plain", {"charset": "us-ascii"}
    maintype, subtype = ctype.split("/")
    encoding = (_raw(msg, "Content-Transfer-Encoding") or "7BIT").strip().upper()
    disp_type, disp_params = _params(msg, "content-disposition")
    language = _raw(msg, "Content-Language")
    node: dict[str, Any] = {
        "type": maintype, "subtype": subtype, "params": params,
        "id": _raw(msg, "Content-ID"), "description": _raw(msg, "Content-Description"),
        "encoding": encoding, "size": len(body),
        "md5": _raw(msg, "Content-MD5"),
        "disposition": [disp_type, disp_params] if disp_type else None,
        "language": [x.strip() for x in language.split(",") if x.strip()] if language else None,
        "location": _raw(msg, "Content-Location"),
    }
    if maintype == "multipart":
        boundary = params.get("boundary")
        parts = split_multipart(body, boundary.encode("utf-8", "surrogateescape")) if boundary else []
        if parts and depth < MAX_DEPTH:
            child_default = "message/rfc822" if subtype == "digest" else "text/plain"
            node["parts"] = [_part(p, child_default, depth + 1) for p in parts]
            return node
        # No usable parts: show the body as plain text, as most servers do.
        node.update(type="text", subtype="plain", params={"charset": "us-ascii"})
        maintype = "text"
    if maintype == "message" and subtype in ("rfc822", "global") and depth < MAX_DEPTH:
        inner = _decode_transfer(body, encoding)
        inner_header, _ = split_header(inner)
        node["envelope"] = envelope(_parser.parsebytes(inner_header))
        node["body"] = _part(inner, "text/plain", depth + 1)
        node["lines"] = _lines(body)
    elif maintype == "text":
        node["lines"] = _lines(body)
    return node


def _plain(raw: bytes) -> dict:
    return {"type": "text", "subtype": "plain", "params": {"charset": "us-ascii"}, "id": None,
            "description": None, "encoding": "7BIT", "size": len(raw), "md5": None,
            "disposition": None, "language": None, "location": None, "lines": _lines(raw)}


# -- the columns -------------------------------------------------------------

def _columns(raw: bytes) -> dict:
    header, _ = split_header(raw)
    msg = _parser.parsebytes(header)
    env = envelope(msg)
    date = env["date"]
    internal = None
    if date:
        try:
            internal = int(parsedate_to_datetime(date).timestamp())
        except (TypeError, ValueError, IndexError, OverflowError):
            internal = None
    return {
        "subject": _decoded(env["subject"]),
        "from": _decoded(_raw(msg, "From")),
        "to": _decoded(_raw(msg, "To")),
        "cc": _decoded(_raw(msg, "Cc")),
        "messageId": env["messageId"],
        "inReplyTo": env["inReplyTo"],
        "date": date,
        "internalDate": internal,
        "envelope": json.dumps(env, ensure_ascii=False, separators=(",", ":")),
        "bodystructure": json.dumps(_part(raw), ensure_ascii=False, separators=(",", ":")),
    }


def message_columns(fp: BinaryIO) -> dict:
    """Columns for a message read from `fp`; never raises on a malformed message.

    "internalDate" is the Date header as epoch seconds (None when unparsable),
    a guess the caller may use when no delivery time is given.
    """
    raw = fp.read()
    try:
        return _columns(raw)
    except Exception:  # whatever a hostile message triggers, it is still stored
        empty = {"date": None, "subject": None, "from": None, "sender": None, "replyTo": None,
                 "to": None, "cc": None, "bcc": None, "inReplyTo": None, "messageId": None}
        return {"subject": None, "from": None, "to": None, "cc": None, "messageId": None,
                "inReplyTo": None, "date": None, "internalDate": None,
                "envelope": json.dumps(empty), "bodystructure": json.dumps(_plain(raw))}
