"""Rendering IMAP4 response values to bytes (RFC 3501 §7, §9).

Everything returns bytes ready for the transport. The functions on the FETCH path
(numbers, flag lists, quoted strings, `fetch_line`) avoid per-call work that can be
done once: flag lists are cached by their tuple, system flags are bytes constants,
and the common "nothing to escape" case of a string is a single check.

ENVELOPE and BODYSTRUCTURE come from the JSON the store caches for every message:
an envelope is {date, subject, from, sender, replyTo, to, cc, bcc, inReplyTo,
messageId} with address lists of [name, adl, mailbox, host]; a body node is {type,
subtype, params, id, description, encoding, size, md5, disposition, language,
location} plus `lines` (text and message parts), `envelope` and `body` (message/rfc822)
or `parts` (multipart).
"""
from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping
from typing import Any

from gateways.imap.grammar.commands import FetchAttribute
from gateways.imap.grammar.mutf7 import encode as mutf7_encode
from gateways.imap.grammar.sequence import format_numbers, format_ranges

NIL = b"NIL"
CRLF = b"\r\n"

# Octets that force a literal in a server string: NUL, CR, LF and 8-bit. The rest of
# TEXT-CHAR may be quoted, with " and \ escaped.
_NEEDS_LITERAL = re.compile(rb"[\x00\r\n\x80-\xff]")
_NEEDS_ESCAPE = re.compile(rb'["\\]')
_ATOM_SAFE = re.compile(rb"[!#$&'+,\-./0-9:;<=>?@A-Z\[^_`a-z|}~]+\Z")  # ATOM-CHARs (and no ])
_CTL_IN_TEXT = re.compile(rb"[\x00-\x1f\x7f]+")


# --- strings -------------------------------------------------------------------------

def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value


def literal(data: bytes) -> bytes:
    """A synchronizing-form literal `{N}\\r\\n<data>` (servers never use `{N+}`)."""
    return b"{%d}\r\n" % len(data) + data


def literal_header(size: int, binary: bool = False) -> bytes:
    """What precedes `size` streamed octets: `{N}\\r\\n`, or `~{N}\\r\\n` (literal8) for
    BINARY content that contains NUL (RFC 3516 §4.3)."""
    return (b"~{%d}\r\n" if binary else b"{%d}\r\n") % size


def quoted(value: str | bytes) -> bytes:
    """A quoted string; the caller has made sure it needs no literal."""
    data = _bytes(value)
    if _NEEDS_ESCAPE.search(data):
        data = data.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return b'"' + data + b'"'


def string(value: str | bytes) -> bytes:
    """`string`: quoted, or a literal for 8-bit, CR or LF content.

    NUL may appear in neither (RFC 3501 §9: CHAR8 excludes it), so a NUL from a broken header becomes
    U+FFFD rather than an answer the client cannot parse.
    """
    data = _bytes(value)
    if _NEEDS_LITERAL.search(data):
        if b"\x00" in data:
            data = data.replace(b"\x00", "\ufffd".encode("utf-8"))
        return literal(data)
    if _NEEDS_ESCAPE.search(data):
        data = data.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return b'"' + data + b'"'


def nstring(value: str | bytes | None) -> bytes:
    """`nstring`: NIL for None, else `string`."""
    return NIL if value is None else string(value)


def astring(value: str | bytes) -> bytes:
    """`astring`: a bare atom when possible (never "NIL"), else `string`."""
    data = _bytes(value)
    if _ATOM_SAFE.match(data) and data.upper() != b"NIL":
        return data
    return string(data)


def number(n: int) -> bytes:
    return b"%d" % n


def text(value: str) -> bytes:
    """Human-readable `text` of a status response: one line, no control characters."""
    return _CTL_IN_TEXT.sub(b" ", _bytes(value)) or b" "


# --- mailboxes and flags -------------------------------------------------------------

def mailbox(name: str, utf8: bool = False) -> bytes:
    """A mailbox name as sent: modified UTF-7, then atom or quoted (RFC 3501 §5.1); with
    `utf8` (UTF8=ACCEPT enabled, RFC 6855 §3) UTF-8 as it is."""
    return astring(name if utf8 else mutf7_encode(name))


_FLAG_BYTES = {name: name.encode("ascii") for name in (
    "\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "\\Recent", "\\*")}
_flag_lists: dict[tuple[str, ...], bytes] = {}
# Combinations remembered, and the longest rendering that is: keywords are the client's
# to choose, so the memo holds about 4096 x 2 x 256 bytes at most.
_FLAG_CACHE_LIMIT = 4096
_FLAG_CACHE_LONGEST = 256


def flag_list(flags: Iterable[str]) -> bytes:
    """`(flag flag ...)`; the rendering of each distinct short combination is cached."""
    key = flags if isinstance(flags, tuple) else tuple(flags)
    cached = _flag_lists.get(key)
    if cached is not None:
        return cached
    rendered = b"(" + b" ".join(
        _FLAG_BYTES.get(f) or f.encode("utf-8", "surrogateescape") for f in key) + b")"
    if len(rendered) > _FLAG_CACHE_LONGEST:
        return rendered
    if len(_flag_lists) >= _FLAG_CACHE_LIMIT:
        _flag_lists.clear()
    _flag_lists[key] = rendered
    return rendered


# --- dates ---------------------------------------------------------------------------

_MONTHS = (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun",
           b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec")
_UTC = datetime.timezone.utc


def date_time(value: datetime.datetime | int | float) -> bytes:
    """`date-time` as INTERNALDATE answers it: "17-Jul-1996 02:44:25 -0700".

    Epoch seconds are written in UTC; an aware datetime keeps its offset.
    """
    if isinstance(value, datetime.datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=_UTC)
    else:
        dt = datetime.datetime.fromtimestamp(value, _UTC)
    offset = dt.utcoffset() or datetime.timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = b"+" if minutes >= 0 else b"-"
    minutes = abs(minutes)
    return b'"%2d-%s-%04d %02d:%02d:%02d %s%02d%02d"' % (
        dt.day, _MONTHS[dt.month - 1], dt.year, dt.hour, dt.minute, dt.second,
        sign, minutes // 60, minutes % 60)


# --- ENVELOPE and BODYSTRUCTURE ------------------------------------------------------

_ENVELOPE_KEYS = ("date", "subject", "from", "sender", "replyTo", "to", "cc", "bcc",
                  "inReplyTo", "messageId")
_ADDRESS_KEYS = frozenset({"from", "sender", "replyTo", "to", "cc", "bcc"})
_EMPTY_ENVELOPE = b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"


MISSING_MAILBOX = "MISSING_MAILBOX"
MISSING_DOMAIN = "MISSING_DOMAIN"


def _addresses(value: Any) -> bytes:
    """`"(" 1*address ")" / nil`; addresses follow each other without a space.

    A NIL host marks a group (RFC 3501 §7.4.2): mailbox = group name opens it, a NIL
    mailbox closes it. An ordinary address that lacks its mailbox or domain (a bare
    "MAILER DAEMON", a "user" without "@") would read as such a marker, so the missing
    parts are filled with placeholders, as Dovecot does.
    """
    if not value:
        return NIL
    out = []
    closers = sum(1 for a in value if a[2] is None and a[3] is None and a[0] is None)
    open_groups = 0
    for name, adl, mailbox, host in value:
        if host is None:
            if mailbox is None and name is None and open_groups:
                open_groups -= 1  # end of group
            elif mailbox is not None and name is None and closers > open_groups:
                open_groups += 1  # start of group
            elif mailbox is None and name is None:
                continue  # a stray end of group
            else:
                mailbox = mailbox if mailbox is not None else MISSING_MAILBOX
                host = MISSING_DOMAIN
        elif mailbox is None:
            mailbox = MISSING_MAILBOX
        out.append(b"(" + nstring(name) + b" " + nstring(adl) + b" " + nstring(mailbox) + b" "
                   + nstring(host) + b")")
    return b"(" + b"".join(out) + b")" if out else NIL


def envelope(env: Mapping[str, Any] | None) -> bytes:
    """The ENVELOPE structure (RFC 3501 §7.4.2) from the store's cached JSON."""
    if not env:
        return _EMPTY_ENVELOPE
    out = []
    for key in _ENVELOPE_KEYS:
        value = env.get(key)
        out.append(_addresses(value) if key in _ADDRESS_KEYS else nstring(value))
    return b"(" + b" ".join(out) + b")"


def _params(params: Mapping[str, str] | None) -> bytes:
    """`body-fld-param`: ("name" "value" ...) or NIL when there are none."""
    if not params:
        return NIL
    return b"(" + b" ".join(string(k) + b" " + string(v) for k, v in params.items()) + b")"


def _disposition(value: Any) -> bytes:
    if not value:
        return NIL
    kind, params = value
    return b"(" + string(kind) + b" " + _params(params) + b")"


def _language(value: Any) -> bytes:
    if not value:
        return NIL
    if isinstance(value, str):
        return string(value)
    return b"(" + b" ".join(string(v) for v in value) + b")"


_EMPTY_BODY = b'("text" "plain" NIL NIL NIL "7BIT" 0 0)'


def body_structure(node: Mapping[str, Any] | None, extensible: bool = True) -> bytes:
    """BODYSTRUCTURE (`extensible`) or BODY (without extension data) of a body node."""
    if not node:
        return _EMPTY_BODY
    out: list[bytes] = []
    _body(node, extensible, out)
    return b"".join(out)


def _body(node: Mapping[str, Any], ext: bool, out: list[bytes]) -> None:
    parts = node.get("parts")
    if node.get("type", "").lower() == "multipart" and parts:
        out.append(b"(")
        for part in parts:
            _body(part, ext, out)
        out.append(b" " + string(node.get("subtype") or "mixed"))
        if ext:
            out.append(b" " + _params(node.get("params")) + _extension_tail(node))
        out.append(b")")
        return
    kind = node.get("type") or "text"
    subtype = node.get("subtype") or "plain"
    out.append(b"(" + string(kind) + b" " + string(subtype) + b" "
               + _params(node.get("params")) + b" "
               + nstring(node.get("id")) + b" "
               + nstring(node.get("description")) + b" "
               + string(node.get("encoding") or "7BIT") + b" "
               + b"%d" % int(node.get("size") or 0))
    lower = kind.lower()
    if lower == "message" and "envelope" in node:
        out.append(b" " + envelope(node.get("envelope")) + b" ")
        inner = node.get("body")
        if inner:
            _body(inner, ext, out)
        else:
            out.append(_EMPTY_BODY)
        out.append(b" %d" % int(node.get("lines") or 0))
    elif lower == "text":
        out.append(b" %d" % int(node.get("lines") or 0))
    if ext:
        out.append(b" " + nstring(node.get("md5")) + _extension_tail(node))
    out.append(b")")


def _extension_tail(node: Mapping[str, Any]) -> bytes:
    """The body extension fields every part ends with (RFC 3501 §7.4.2): disposition,
    language and location, each preceded by a space."""
    return (b" " + _disposition(node.get("disposition")) + b" " + _language(node.get("language"))
            + b" " + nstring(node.get("location")))


# --- FETCH ---------------------------------------------------------------------------

def section_label(attribute: FetchAttribute) -> bytes:
    """The section spec between the brackets, as the answer repeats it."""
    section = attribute.section
    if section is None:
        return b""
    parts = [b".".join(b"%d" % p for p in section.part)] if section.part else []
    if section.text:
        label = section.text.encode("ascii")
        if section.headers:
            label += b" (" + b" ".join(astring(h) for h in section.headers) + b")"
        parts.append(label)
    return b".".join(parts)


def fetch_label(attribute: FetchAttribute) -> bytes:
    """How a FETCH answer names an item: "BODY[HEADER]<0>", "BINARY.SIZE[1]", "FLAGS".

    `.PEEK` is not repeated, and a partial shows only its origin (RFC 3501 §7.4.2).
    """
    name = attribute.name
    if name == "BODY[]":
        label = b"BODY[" + section_label(attribute) + b"]"
    elif name == "BINARY[]":
        label = b"BINARY[" + section_label(attribute) + b"]"
    elif name == "BINARY.SIZE":
        return b"BINARY.SIZE[" + section_label(attribute) + b"]"
    else:
        return name.encode("ascii")
    if attribute.partial is not None:
        label += b"<%d>" % attribute.partial[0]
    return label


def fetch_line(number: int, items: bytes) -> bytes:
    """`* n FETCH (items)\\r\\n`; `items` is the already joined `name value ...` text."""
    return b"* %d FETCH (%s)\r\n" % (number, items)


def fetch_uid_flags(number: int, uid: int, flags: Iterable[str]) -> bytes:
    """The commonest answer of all: `* n FETCH (UID u FLAGS (...))`."""
    return b"* %d FETCH (UID %d FLAGS %s)\r\n" % (number, uid, flag_list(flags))


# --- responses -----------------------------------------------------------------------

def _code(code: str | bytes | None) -> bytes:
    return b"" if not code else b"[" + _bytes(code) + b"] "


def tagged(tag: str, status: str, message: str, code: str | bytes | None = None) -> bytes:
    """`<tag> OK|NO|BAD [code] text`."""
    return (tag.encode("ascii") + b" " + status.encode("ascii") + b" "
            + _code(code) + text(message) + CRLF)


def untagged(status: str, message: str, code: str | bytes | None = None) -> bytes:
    """`* OK|NO|BAD|BYE|PREAUTH [code] text`."""
    return b"* " + status.encode("ascii") + b" " + _code(code) + text(message) + CRLF


def data(payload: bytes) -> bytes:
    """An untagged data response: `* <payload>`."""
    return b"* " + payload + CRLF


def continuation(message: str | bytes = b"") -> bytes:
    """`+ text` (or `+ base64` during AUTHENTICATE)."""
    body = message if isinstance(message, bytes) else text(message)
    return b"+ " + body + CRLF


def capability(names: Iterable[str]) -> bytes:
    return b"* CAPABILITY " + " ".join(names).encode("ascii") + CRLF


def capability_code(names: Iterable[str]) -> bytes:
    return b"CAPABILITY " + " ".join(names).encode("ascii")


def exists(count: int) -> bytes:
    return b"* %d EXISTS\r\n" % count


def recent(count: int) -> bytes:
    return b"* %d RECENT\r\n" % count


def expunge(number: int) -> bytes:
    return b"* %d EXPUNGE\r\n" % number


def flags(names: Iterable[str]) -> bytes:
    return b"* FLAGS " + flag_list(names) + CRLF


def permanent_flags_code(names: Iterable[str]) -> bytes:
    return b"PERMANENTFLAGS " + flag_list(names)


def enabled(names: Iterable[str]) -> bytes:
    names = list(names)
    return b"* ENABLED" + b"".join(b" " + n.encode("ascii") for n in names) + CRLF


def list_response(attributes: Iterable[str], delimiter: str | None, name: str,
                  kind: str = "LIST", extended: bytes = b"", utf8: bool = False) -> bytes:
    """`* LIST (\\HasNoChildren) "/" name` (or LSUB); `extended` is appended verbatim,
    e.g. b' ("CHILDINFO" ("SUBSCRIBED"))' of RFC 5258; `utf8`: see `mailbox`."""
    delim = NIL if delimiter is None else quoted(delimiter)
    return (b"* " + kind.encode("ascii") + b" (" + " ".join(attributes).encode("ascii")
            + b") " + delim + b" " + mailbox(name, utf8) + extended + CRLF)


def status_response(name: str, items: Iterable[tuple[str, int | bytes]], utf8: bool = False) -> bytes:
    """`* STATUS name (MESSAGES 3 UIDNEXT 7)`; a bytes value goes as it is (`MAILBOXID (F1)`)."""
    body = b" ".join(k.encode("ascii") + (b" %d" % v if isinstance(v, int) else b" " + v) for k, v in items)
    return b"* STATUS " + mailbox(name, utf8) + b" (" + body + b")" + CRLF


def acl_response(name: str, entries: Iterable[tuple[str, str]], utf8: bool = False) -> bytes:
    """`* ACL name identifier rights ...` (RFC 4314 §3.6); empty rights as `""`."""
    body = b"".join(b" " + astring(identifier) + b" " + astring(rights) for identifier, rights in entries)
    return b"* ACL " + mailbox(name, utf8) + body + CRLF


def listrights_response(name: str, identifier: str, required: str, optional: Iterable[str],
                        utf8: bool = False) -> bytes:
    """`* LISTRIGHTS name identifier required optional...` (RFC 4314 §3.7)."""
    rest = b"".join(b" " + astring(group) for group in optional)
    return (b"* LISTRIGHTS " + mailbox(name, utf8) + b" " + astring(identifier) + b" "
            + astring(required) + rest + CRLF)


def myrights_response(name: str, rights: str, utf8: bool = False) -> bytes:
    """`* MYRIGHTS name rights` (RFC 4314 §3.8)."""
    return b"* MYRIGHTS " + mailbox(name, utf8) + b" " + astring(rights) + CRLF


def search_response(numbers: Iterable[int], modseq: int | None = None) -> bytes:
    """`* SEARCH 1 2 3` with the optional `(MODSEQ n)` of RFC 7162 §3.1.5."""
    out = b"* SEARCH" + b"".join(b" %d" % n for n in numbers)
    if modseq is not None:
        out += b" (MODSEQ %d)" % modseq
    return out + CRLF


def esearch_response(tag: str, uid: bool, results: Iterable[tuple[str, Any]]) -> bytes:
    """`* ESEARCH (TAG "a1") UID MIN 2 COUNT 5 ALL 1:3,7` (RFC 4731 §3.1).

    `results` pairs a return option with its value: ints for MIN, MAX, COUNT and
    MODSEQ; resolved (low, high) ranges for ALL; (partial range, resolved ranges)
    for PARTIAL (RFC 9394 §3.1: `PARTIAL (1:100 3:7,9)`, NIL for none).
    """
    out = [b"* ESEARCH (TAG " + quoted(tag) + b")"]
    if uid:
        out.append(b"UID")
    for name, value in results:
        if name == "ALL":
            out.append(b"ALL " + format_ranges(value))
        elif name == "PARTIAL":
            (first, last), ranges = value
            out.append(b"PARTIAL (%d:%d %s)" % (first, last, format_ranges(ranges) if ranges else b"NIL"))
        else:
            out.append(name.encode("ascii") + b" %d" % value)
    return b" ".join(out) + CRLF


def vanished(uids: Iterable[tuple[int, int]], earlier: bool = False) -> bytes:
    """`* VANISHED [(EARLIER)] 3:5,9` from resolved ranges (RFC 7162 §3.2.10)."""
    return (b"* VANISHED " + (b"(EARLIER) " if earlier else b"")
            + format_ranges(uids) + CRLF)


def copyuid_code(uidvalidity: int, source: Iterable[int], destination: Iterable[int]) -> bytes:
    """`COPYUID v src dst` (RFC 4315 §3): both sets keep the order of the pairs."""
    return b"COPYUID %d %s %s" % (uidvalidity, format_numbers(source, keep_order=True),
                                  format_numbers(destination, keep_order=True))


def appenduid_code(uidvalidity: int, uids: Iterable[int]) -> bytes:
    """`APPENDUID v uid-set` (RFC 4315 §3; several uids after a MULTIAPPEND, in order)."""
    return b"APPENDUID %d %s" % (uidvalidity, format_numbers(uids, keep_order=True))


def id_response(fields: Iterable[tuple[str, str | None]] | None) -> bytes:
    """`* ID ("name" "groupware" ...)` or `* ID NIL` (RFC 2971)."""
    if fields is None:
        return b"* ID NIL\r\n"
    body = b" ".join(string(k) + b" " + nstring(v) for k, v in fields)
    return b"* ID (" + body + b")\r\n" if body else b"* ID NIL\r\n"


def namespace_response(personal: Iterable[tuple[str, str | None]] | None,
                       other: Iterable[tuple[str, str | None]] | None = None,
                       shared: Iterable[tuple[str, str | None]] | None = None) -> bytes:
    """`* NAMESPACE (("" "/")) NIL NIL` (RFC 2342): each group of (prefix, delimiter)."""
    def group(entries: Iterable[tuple[str, str | None]] | None) -> bytes:
        entries = list(entries or ())
        if not entries:
            return NIL
        return b"(" + b"".join(
            b"(" + string(mutf7_encode(prefix)) + b" " + (NIL if d is None else quoted(d)) + b")"
            for prefix, d in entries) + b")"
    return b"* NAMESPACE " + group(personal) + b" " + group(other) + b" " + group(shared) + CRLF


def quotaroot_response(mailbox_name: str, roots: Iterable[str], utf8: bool = False) -> bytes:
    """`* QUOTAROOT INBOX ""` (RFC 9208 §5.2)."""
    return b"* QUOTAROOT " + b" ".join([mailbox(mailbox_name, utf8)] + [astring(r) for r in roots]) + CRLF


def quota_response(root: str, resources: Iterable[tuple[str, int, int]]) -> bytes:
    """`* QUOTA "" (STORAGE 10 512 MESSAGE 3 1000)`: name, usage, limit (RFC 9208 §5.1)."""
    body = b" ".join(name.encode("ascii") + b" " + number(used) + b" " + number(limit)
                     for name, used, limit in resources)
    return b"* QUOTA " + astring(root) + b" (" + body + b")" + CRLF
