"""Header blocks of a message or part: raw and display values, RFC 5322 address
lists, the IMAP ENVELOPE and Content-Type/Disposition parameters."""
from __future__ import annotations

import re
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import collapse_rfc2231_value
from typing import Any

_FOLD = re.compile(r"\r?\n(?=[ \t])")
header_parser = BytesHeaderParser(policy=compat32)


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


def raw_header(msg: Message, name: str) -> str | None:
    """A header's raw value, unfolded, or None."""
    # raw_items: compat32 wraps 8-bit values in Header objects on plain access.
    wanted = name.lower()
    value = next((v for k, v in msg.raw_items() if k.lower() == wanted), None)
    if value is None:
        return None
    if not isinstance(value, str):
        value = str(value)
    return _clean(_FOLD.sub("", value)).strip("\r\n")


def decode_words(value: str | None) -> str | None:
    """RFC 2047 encoded words decoded for display; raw text when they are broken."""
    if value is None or "=?" not in value:
        return value
    try:
        return _clean(str(make_header(decode_header(value))))
    except Exception:  # malformed encoded words or unknown charsets
        return value


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
    sender_from = parse_addresses(raw_header(msg, "From"))
    return {
        "date": raw_header(msg, "Date"),
        "subject": raw_header(msg, "Subject"),
        "from": sender_from,
        # RFC 3501: Sender and Reply-To default to From.
        "sender": parse_addresses(raw_header(msg, "Sender")) or sender_from,
        "replyTo": parse_addresses(raw_header(msg, "Reply-To")) or sender_from,
        "to": parse_addresses(raw_header(msg, "To")),
        "cc": parse_addresses(raw_header(msg, "Cc")),
        "bcc": parse_addresses(raw_header(msg, "Bcc")),
        "inReplyTo": raw_header(msg, "In-Reply-To"),
        "messageId": raw_header(msg, "Message-ID"),
    }


# -- Content-Type / Content-Disposition parameters ---------------------------

def _param_value(value: Any) -> str:
    if isinstance(value, tuple):
        value = collapse_rfc2231_value(value)
    return _clean(str(value))


def header_params(msg: Message, header: str) -> tuple[str | None, dict[str, str]]:
    """The lowercased value of a parameterised header (None when absent or
    unparsable) and its parameters, RFC 2231 continuations collapsed."""
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
