"""Header blocks of a message or part: raw and display values, RFC 5322 address
lists, the IMAP ENVELOPE and Content-Type/Disposition parameters.

Values are read the way Dovecot reads them for its ENVELOPE and BODYSTRUCTURE, so
that clients see the same answers from both: a line end and the blanks that
follow it unfold into one space, a line that is not a header field is skipped,
parameters keep their RFC 2231 form (only continuations are joined, RFC 2231 §3).
"""
from __future__ import annotations

import re
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from urllib.parse import unquote_to_bytes

from shared.charsets import text_encoding

_FOLD = re.compile(r"\r?\n(?=[ \t])")
header_parser = BytesHeaderParser(policy=compat32)
_FIELD_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:[ \t]*")


# -- text helpers ------------------------------------------------------------

def _clean_text(text: str) -> str:
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


class HeaderBlock:
    """The fields of a header block by lowercased name, raw value bytes in order.

    A line end followed by blanks unfolds into one space; the blanks after the colon
    are not part of the value. A line that is not a field (no colon), and its
    continuation lines, are skipped rather than ending the block.
    """

    __slots__ = ("fields",)

    def __init__(self, data: bytes) -> None:
        fields: dict[bytes, list[list[bytes]]] = {}
        current: list[bytes] | None = None
        for line in data.split(b"\n"):
            if line.endswith(b"\r"):
                line = line[:-1]
            if line[:1] in (b" ", b"\t"):
                if current is not None:
                    current.append(line.lstrip(b" \t"))
                continue
            m = _FIELD_NAME.match(line)
            if m is None:
                current = None
                continue
            current = [line[m.end():]]
            fields.setdefault(m.group(1).lower(), []).append(current)
        # lowercased name -> its values in order
        self.fields = {name: [b" ".join(pieces) for pieces in values] for name, values in fields.items()}

    def all(self, name: bytes) -> list[str]:
        return [_clean(value) for value in self.fields.get(name, ())]

    def first(self, name: bytes) -> str | None:
        values = self.fields.get(name)
        return _clean(values[0]) if values else None

    def last(self, name: bytes) -> str | None:
        values = self.fields.get(name)
        return _clean(values[-1]) if values else None


def _clean(value: bytes) -> str:
    """Header bytes as text: UTF-8 where they are, else Latin-1."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def decode_words(value: str | None) -> str | None:
    """RFC 2047 encoded words decoded for display; raw text when they are broken."""
    if value is None or "=?" not in value:
        return value
    try:
        return _clean_text(str(make_header(decode_header(value))))
    except Exception:  # malformed encoded words or unknown charsets
        return value


# -- addresses ---------------------------------------------------------------

_SPECIALS = set(",:;<>@")
# What Dovecot writes for the missing parts of an address.
MISSING_MAILBOX = "MISSING_MAILBOX"
MISSING_DOMAIN = "MISSING_DOMAIN"


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
        # A quoted local part is its text, unquoted, as Dovecot's ENVELOPE has it.
        return "".join(t for _, t in seq)

    if at < 0:
        local = join(parts)
        return route, local or None, None
    return route, join(parts[:at]) or None, join(parts[at + 1:]) or None


def _mailbox(tokens: list[tuple[str, str]], tidy: bool = True) -> list | None:
    tidied = for_humans if tidy else (lambda text: text)
    if not tokens:
        return None
    if ("s", "<") in tokens:
        lt = tokens.index(("s", "<"))
        gt = tokens.index(("s", ">")) if ("s", ">") in tokens[lt:] else len(tokens)
        name = _phrase(tokens[:lt])
        route, local, host = _addr_spec(tokens[lt + 1:gt])
        if local is None and host is None and name is None and route is None:
            return [None, None, MISSING_MAILBOX, MISSING_DOMAIN]  # `<>`, filled in as Dovecot does
    else:
        # A bare addr-spec takes its last comment as the display name, as Dovecot
        # shows `bbb@ddd.com (John X. Doe)`.
        name = next((t for k, t in reversed(tokens) if k == "c"), None)
        if name is not None and all(k == "c" for k, _ in tokens[:tokens.index(("c", name))]):
            name = None  # a comment before the address is not its name
        words = [(k, t) for k, t in tokens if k != "c"]
        if name is None and words and all(k in ("a", "q") for k, _ in words) and \
                (len(words) > 1 or words[0][0] == "q"):
            # Words without "@": a display name with no address, as Dovecot reads
            # `MAILER DAEMON` or `"Someone"` (a lone atom stays a local part).
            return [tidied(_phrase(words)), None, None, None]
        route, local, host = _addr_spec(tokens)
    if local is None and host is None and name is None:
        return None
    return [tidied(name), route, local, host]


def parse_addresses(value: str | None, tidy: bool = True) -> list[list] | None:
    """IMAP ENVELOPE address list: [name, adl, mailbox, host]; groups open with
    [None, None, group, None] and close with [None, None, None, None] (RFC 3501 7.4.2).
    Display names have their blanks tidied as Dovecot's ENVELOPE has them, unless
    `tidy` is false (its searches keep a quoted name's blanks)."""
    if not value:
        return None
    out: list[list] = []
    current: list[tuple[str, str]] = []
    in_group = in_angle = False

    def flush() -> None:
        box = _mailbox(current, tidy)
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


def _address_list(block: HeaderBlock, name: bytes) -> list[list] | None:
    """Every occurrence of an address field, one list after the other."""
    out: list[list] = []
    for value in block.all(name):
        out.extend(parse_addresses(value) or ())
    return out or None


_BLANK_RUN = re.compile(r"[ \t\r\n]+")


def for_humans(text: str | None) -> str | None:
    """A subject or display name the way Dovecot sends it: each run of blanks one space,
    none at either end."""
    if text is None or not _BLANK_RUN.search(text):
        return text
    return _BLANK_RUN.sub(" ", text).strip(" ")


def envelope(block: HeaderBlock) -> dict:
    """The IMAP ENVELOPE fields, raw (encoded words stay encoded). A repeated
    address field adds its addresses; of a repeated text field the last counts."""
    sender_from = _address_list(block, b"from")
    return {
        "date": block.last(b"date"),
        "subject": for_humans(block.last(b"subject")),
        "from": sender_from,
        # RFC 3501: Sender and Reply-To default to From.
        "sender": _address_list(block, b"sender") or sender_from,
        "replyTo": _address_list(block, b"reply-to") or sender_from,
        "to": _address_list(block, b"to"),
        "cc": _address_list(block, b"cc"),
        "bcc": _address_list(block, b"bcc"),
        "inReplyTo": block.last(b"in-reply-to"),
        "messageId": block.last(b"message-id"),
    }


# -- Content-Type / Content-Disposition parameters ---------------------------

_TOKEN = re.compile(r"""[^\x00-\x20()<>@,;:\\"/\[\]?=\x7f]+""")
_BLANKS = re.compile(r"[ \t\r\n]*")
_UNQUOTED_WORD = re.compile(r"[^; \t\r\n]*")
_CONTINUATION = re.compile(r"(.*?)\*(\d*)(\*?)\Z", re.S)


def _skip(text: str, pos: int) -> int:
    """Past blanks and (nested) comments."""
    n = len(text)
    while True:
        pos = _BLANKS.match(text, pos).end()
        if pos >= n or text[pos] != "(":
            return pos
        depth = 0
        while pos < n:
            ch = text[pos]
            if ch == "\\":
                pos += 1
            elif ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if not depth:
                    pos += 1
                    break
            pos += 1


def _quoted(text: str, pos: int) -> tuple[str | None, int]:
    """The content of the quoted string at text[pos] == '"' (None when it is not
    closed), and the position after it."""
    out, pos, n = [], pos + 1, len(text)
    while pos < n and text[pos] != '"':
        if text[pos] == "\\" and pos + 1 < n:
            pos += 1
        out.append(text[pos])
        pos += 1
    return ("".join(out) if pos < n else None), pos + 1


def _parameter(text: str, pos: int) -> tuple[tuple[str, str] | None, int]:
    """`";" attribute "=" value` at text[pos]: the pair (None where malformed) and
    the position after it."""
    n = len(text)
    if text[pos] != ";":
        return None, pos
    pos = _skip(text, pos + 1)
    m = _TOKEN.match(text, pos)
    if m is None:
        return None, pos
    key, pos = m.group(0), _skip(text, m.end())
    if pos >= n or text[pos] != "=":
        return None, pos
    pos = _skip(text, pos + 1)
    if pos < n and text[pos] == '"':
        value, pos = _quoted(text, pos)
        if value is None:  # not closed
            return None, n
    elif pos < n and text[pos] == "=":  # name==?utf-8?b?...?= sent unquoted
        m = _UNQUOTED_WORD.match(text, pos)
        value, pos = m.group(0), m.end()
    else:
        m = _TOKEN.match(text, pos)
        value, pos = (m.group(0), m.end()) if m else ("", pos)
    return (key, value), _skip(text, pos)


def _parameters(text: str, pos: int) -> list[tuple[str, str]]:
    """`*(";" parameter)`. Where a parameter is malformed the reading goes on one
    character further, looking for the next ";", as Dovecot reads it."""
    out: list[tuple[str, str]] = []
    n = len(text)
    while pos < n:
        pair, pos = _parameter(text, pos)
        if pair is not None:
            out.append(pair)
        elif pos < n:
            pos += 1
    return out


def _rfc2231_escape(value: str) -> str:
    """A plain piece joined to encoded ones: only "%" would change its meaning."""
    return value.replace("%", "%25")


def _join_continuations(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """RFC 2231 continuations (`name*0`, `name*1*`, ...) joined into one parameter,
    `name` or (when any piece is extended) `name*` with the value still encoded;
    they follow the plain parameters. Pieces with a gap in their numbers stay apart."""
    plain: list[tuple[str, str]] = []
    pieces: list[tuple[str, int, bool, str]] = []
    for key, value in pairs:
        m = _CONTINUATION.match(key) if "*" in key else None
        if m is None:
            plain.append((key, value))
        else:
            # `name*` alone is an extended value of its own (number 0)
            pieces.append((m.group(1), int(m.group(2) or 0), bool(m.group(3)) or not m.group(2), value))
    if not pieces:
        return plain
    pieces.sort(key=lambda p: (p[0].lower(), p[1]))
    i = 0
    while i < len(pieces):
        name = pieces[i][0].lower()
        j = i
        while j < len(pieces) and pieces[j][0].lower() == name:
            j += 1
        group = pieces[i:j]
        extended = any(p[2] for p in group)
        if any(p[1] != k for k, p in enumerate(group)):
            plain.extend((f"{p[0]}*{p[1]}{'*' if p[2] else ''}", p[3]) for p in group)
        else:
            value = "''" if extended and not group[0][2] else ""
            value += "".join(_rfc2231_escape(p[3]) if extended and not p[2] else p[3] for p in group)
            plain.append((group[0][0] + ("*" if extended else ""), value))
        i = j
    return plain


def content_type(value: str | None) -> tuple[str | None, dict[str, str]]:
    """The lowercased `type/subtype` of a Content-Type value (None when absent or
    malformed) and its parameters, names lowercased, values as sent."""
    if value is None:
        return None, {}
    pos = _skip(value, 0)
    m = _TOKEN.match(value, pos)
    if m is None:
        return None, {}
    pos = _skip(value, m.end())
    if pos >= len(value) or value[pos] != "/":
        return None, {}
    sub = _TOKEN.match(value, _skip(value, pos + 1))
    if sub is None:
        return None, {}
    end = _skip(value, sub.end())
    if end < len(value) and value[end] != ";":
        return None, {}  # junk after the subtype: not a media type
    return (m.group(0) + "/" + sub.group(0)).lower(), _param_dict(value, end)


def disposition(value: str | None) -> tuple[str | None, dict[str, str]]:
    """The lowercased disposition type of a Content-Disposition value and its parameters."""
    if value is None:
        return None, {}
    m = _TOKEN.match(value, _skip(value, 0))
    if m is None:
        return None, {}
    return m.group(0).lower(), _param_dict(value, m.end())


def _param_dict(text: str, pos: int) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in _join_continuations(_parameters(text, pos)):
        params.setdefault(key.lower(), value)
    return params


def decoded_parameter(params: dict[str, str], name: str) -> str | None:
    """A parameter's value with RFC 2231 encoding undone (`name*=charset'lang'%XX`)."""
    if name in params:
        return params[name]
    value = params.get(name + "*")
    if value is None:
        return None
    charset, _, rest = value.partition("'")
    _, _, rest = rest.partition("'")
    raw = unquote_to_bytes(rest)
    try:
        return raw.decode(text_encoding(charset or "us-ascii") or "latin-1")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
