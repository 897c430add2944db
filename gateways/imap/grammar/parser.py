"""The IMAP4 command parser: one complete command in, a `Command` out (RFC 3501 §9).

The input is what the framer collects: the command line(s) with every literal kept
inline as sent (`{N}\\r\\n`, `{N+}\\r\\n` or `~{N}\\r\\n` followed by N octets), without
the final CRLF. The parser is a hand-written recursive descent over bytes, one
function per command on top of the primitives of reader.py; every mistake becomes a
`ParseError` (with the tag once it is known), never another exception, whatever the
input.
"""
from __future__ import annotations

import binascii
import re
from collections.abc import Callable

from gateways.imap.grammar import commands as c
from gateways.imap.grammar.errors import ParseError
from gateways.imap.grammar.reader import TAG, Reader, unique
from gateways.imap.grammar.sequence import SequenceSet

MAX_DEPTH = 64              # parentheses, NOT and OR in one search program
MAX_ID_FIELDS = 30          # RFC 2971 §3.3

_FETCH_NAME = re.compile(rb"[A-Za-z0-9.]+")
_BASE64 = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\Z")

SPECIAL_USE = {f.upper(): f for f in
               ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")}
SEARCH_CHARSETS = ("US-ASCII", "UTF-8")
_CHARSET_CODE = "BADCHARSET (" + " ".join(SEARCH_CHARSETS) + ")"


# --- commands --------------------------------------------------------------------------

def _no_args(r: Reader, uid: bool) -> c.Arguments:
    return c.NO_ARGUMENTS


def _authenticate(r: Reader, uid: bool) -> c.Authenticate:
    r.sp()
    mechanism = r.atom("a mechanism name").decode("ascii").upper()
    if r.at_end():
        return c.Authenticate(mechanism)
    r.sp()
    if r.maybe(b"="):
        return c.Authenticate(mechanism, b"")
    raw = r.atom("a base64 initial response")
    return c.Authenticate(mechanism, decode_base64(raw, r.tag))


def decode_base64(raw: bytes, tag: str | None = None) -> bytes:
    """Strict base64 of a SASL response (RFC 3501 §9 `base64`); "" and "=" are not handled here."""
    if _BASE64.match(raw) is None:
        raise ParseError("bad base64", tag)
    try:
        return binascii.a2b_base64(raw, strict_mode=True)
    except binascii.Error:
        raise ParseError("bad base64", tag) from None


def _login(r: Reader, uid: bool) -> c.Login:
    r.sp()
    user = r.text(r.astring("a user name"))
    r.sp()
    password = r.text(r.astring("a password"))
    return c.Login(user, password)


def _enable(r: Reader, uid: bool) -> c.Enable:
    names = []
    while not r.at_end():
        r.sp()
        names.append(r.atom("a capability name").decode("ascii").upper())
    if not names:
        raise r.fail("ENABLE needs at least one capability")
    return c.Enable(tuple(names))


def _id(r: Reader, uid: bool) -> c.Id:
    r.sp()
    if r.maybe_word(b"NIL"):
        return c.Id(None)

    def pair() -> tuple[str, str | None]:
        name = r.string()
        r.sp()
        value = r.nstring()
        if len(name) > 30 or (value is not None and len(value) > 1024):
            raise r.fail("ID field name or value too long")
        return (r.text(name), None if value is None else r.text(value))

    fields = r.paren_list(pair)
    if len(fields) > MAX_ID_FIELDS:
        raise r.fail("too many ID fields")
    return c.Id(tuple(fields))


def _select(r: Reader, uid: bool) -> c.Select:
    r.sp()
    mailbox = r.mailbox()
    condstore = False
    qresync = None
    if not r.at_end():
        r.sp()

        def param() -> None:
            nonlocal condstore, qresync
            if r.maybe_word(b"CONDSTORE"):
                condstore = True
            elif r.maybe_word(b"QRESYNC"):
                if qresync is not None:
                    raise r.fail("QRESYNC given twice")
                r.sp()
                qresync = _qresync(r)
            else:
                raise r.fail("unknown SELECT parameter")

        r.paren_list(param, empty_ok=False)
    return c.Select(mailbox, condstore, qresync)


def _qresync(r: Reader) -> c.QresyncParameters:
    r.expect(b"(")
    uidvalidity = r.nz_number(what="a UIDVALIDITY")
    r.sp()
    modseq = r.modseq()
    known = None
    match = None
    if r.maybe(b" "):
        if r.peek() != 0x28:
            known = r.sequence_set()
            if r.maybe(b" "):
                match = _seq_match(r)
        else:
            match = _seq_match(r)
    r.expect(b")")
    return c.QresyncParameters(uidvalidity, modseq, known, match)


def _seq_match(r: Reader) -> tuple[SequenceSet, SequenceSet]:
    r.expect(b"(")
    seqs = r.sequence_set()
    r.sp()
    uids = r.sequence_set()
    r.expect(b")")
    return (seqs, uids)


def _create(r: Reader, uid: bool) -> c.Create:
    r.sp()
    mailbox = r.mailbox()
    uses: list[str] = []
    if not r.at_end():
        r.sp()

        def param() -> None:
            if not r.maybe_word(b"USE"):
                raise r.fail("unknown CREATE parameter")
            r.sp()
            uses.extend(r.paren_list(use_attr))

        def use_attr() -> str:
            r.expect(b"\\")
            name = "\\" + r.atom("a special-use attribute").decode("ascii")
            return SPECIAL_USE.get(name.upper(), name)

        r.paren_list(param, empty_ok=False)
    return c.Create(mailbox, unique(uses))


def _mailbox_only(r: Reader, uid: bool) -> c.MailboxName:
    r.sp()
    return c.MailboxName(r.mailbox())


def _quota_root(r: Reader, uid: bool) -> c.QuotaRoot:
    r.sp()
    return c.QuotaRoot(r.text(r.astring("a quota root")))


def _setquota(r: Reader, uid: bool) -> c.SetQuota:
    r.sp()
    root = r.text(r.astring("a quota root"))
    r.sp()

    def resource() -> tuple[str, int]:
        name = r.atom("a resource name").decode("ascii").upper()
        r.sp()
        return name, r.number(what="a resource limit")

    return c.SetQuota(root, tuple(r.paren_list(resource)))


def _rename(r: Reader, uid: bool) -> c.Rename:
    r.sp()
    source = r.mailbox()
    r.sp()
    return c.Rename(source, r.mailbox())


_LIST_SELECTION = {b"SUBSCRIBED", b"REMOTE", b"RECURSIVEMATCH", b"SPECIAL-USE"}
_LIST_RETURNS = {b"SUBSCRIBED", b"CHILDREN", b"SPECIAL-USE", b"MYRIGHTS"}


def _list(r: Reader, uid: bool) -> c.List:
    r.sp()
    extended = False
    selection: list[str] = []
    if r.peek() == 0x28:
        extended = True

        def option() -> str:
            name = r.atom("a selection option").upper()
            if name not in _LIST_SELECTION:
                raise r.fail(f"unknown LIST selection option {name.decode()}")
            return name.decode()

        selection = r.paren_list(option)
        if "RECURSIVEMATCH" in selection and not set(selection) - {"RECURSIVEMATCH", "REMOTE"}:
            raise r.fail("RECURSIVEMATCH needs another selection option", "CLIENTBUG")
        r.sp()
    reference = r.mailbox_name(r.astring("a reference name"))
    r.sp()
    if r.peek() == 0x28:
        extended = True
        patterns = tuple(r.paren_list(r.list_mailbox, empty_ok=False))
    else:
        patterns = (r.list_mailbox(),)
    returns: list[str] = []
    status_items = None
    if not r.at_end():
        r.sp()
        if not r.maybe_word(b"RETURN"):
            raise r.fail("expected RETURN")
        r.sp()
        extended = True

        def return_option() -> None:
            nonlocal status_items
            name = r.atom("a return option").upper()
            if name == b"STATUS":
                r.sp()
                status_items = _status_items(r)
            elif name in _LIST_RETURNS:
                returns.append(name.decode())
            else:
                raise r.fail(f"unknown LIST return option {name.decode()}")

        r.paren_list(return_option)
    return c.List(reference, patterns, frozenset(selection), frozenset(returns),
                  status_items, extended)


def _lsub(r: Reader, uid: bool) -> c.Lsub:
    r.sp()
    reference = r.mailbox_name(r.astring("a reference name"))
    r.sp()
    return c.Lsub(reference, r.list_mailbox())


def _acl_mailbox(r: Reader, uid: bool) -> c.AclTarget:
    r.sp()
    return c.AclTarget(r.mailbox())


def _acl_identifier(r: Reader) -> str:
    identifier = r.text(r.astring("an identifier"))
    if not identifier:
        raise r.fail("empty identifier")
    return identifier


def _acl_mailbox_identifier(r: Reader, uid: bool) -> c.AclTarget:
    r.sp()
    mailbox = r.mailbox()
    r.sp()
    return c.AclTarget(mailbox, _acl_identifier(r))


def _setacl(r: Reader, uid: bool) -> c.SetAcl:
    """RFC 4314 §3.1: mod-rights is an astring, `+` or `-` in front adding or removing."""
    r.sp()
    mailbox = r.mailbox()
    r.sp()
    identifier = _acl_identifier(r)
    r.sp()
    rights = r.text(r.astring("rights"))
    mode = {"+": "add", "-": "remove"}.get(rights[:1], "replace")
    return c.SetAcl(mailbox, identifier, mode, rights[1:] if mode != "replace" else rights)


def _status_items(r: Reader) -> tuple[str, ...]:
    def item() -> str:
        name = r.atom("a status item").upper().decode("ascii")
        if name not in c.STATUS_ITEMS:
            raise r.fail(f"unknown status item {name}")
        return name
    return unique(r.paren_list(item, empty_ok=False))


def _status(r: Reader, uid: bool) -> c.Status:
    r.sp()
    mailbox = r.mailbox()
    r.sp()
    return c.Status(mailbox, _status_items(r))


def _append(r: Reader, uid: bool) -> c.Append:
    r.sp()
    mailbox = r.mailbox()
    messages = [_append_message(r)]
    while r.peek() == 0x20:  # MULTIAPPEND (RFC 3502 §6.3.11)
        messages.append(_append_message(r))
    return c.Append(mailbox, tuple(messages))


def _append_message(r: Reader) -> c.AppendMessage:
    """SP [flag-list SP] [date-time SP] literal"""
    r.sp()
    flags: tuple[str, ...] = ()
    date = None
    if r.peek() == 0x28:
        flags = r.flag_list()
        r.sp()
    if r.peek() == 0x22:
        date = r.date_time()
        r.sp()
    if r.utf8 and r.maybe_word(b"UTF8"):  # RFC 6855 §4: UTF8 SP "(" literal8 ")"
        r.sp()
        r.expect(b"(")
        if r.peek() != 0x7E:
            raise r.fail("UTF8 needs a literal8")
        message, binary = r.literal_view(binary_ok=True)
        r.expect(b")")
        return c.AppendMessage(flags, date, message, binary)
    if r.maybe_word(b"CATENATE"):
        r.sp()
        return c.AppendMessage(flags, date, memoryview(b""), catenate=tuple(r.paren_list(
            lambda: _catenate_part(r), empty_ok=False)))
    if r.peek() not in (0x7B, 0x7E):
        raise r.fail("APPEND needs the message as a literal")
    message, binary = r.literal_view(binary_ok=True)
    return c.AppendMessage(flags, date, message, binary)


def _catenate_part(r: Reader) -> c.CatenatePart:
    """cat-part = "TEXT" SP literal / "URL" SP astring (RFC 4469 §5)."""
    if r.maybe_word(b"TEXT"):
        r.sp()
        if r.peek() != 0x7B:
            raise r.fail("TEXT needs a literal")
        return c.CatenatePart(text=r.literal_view()[0])
    if r.maybe_word(b"URL"):
        r.sp()
        return c.CatenatePart(url=r.text(r.astring("a URL"), "UTF-8"))
    raise r.fail("a CATENATE part is TEXT or URL")


def _expunge(r: Reader, uid: bool) -> c.Expunge:
    if not uid:
        return c.Expunge()
    r.sp()
    return c.Expunge(r.sequence_set())


def _compress(r: Reader, uid: bool) -> c.Compress:
    r.sp()
    return c.Compress(r.atom("a compression mechanism").upper().decode("ascii"))


def _replace(r: Reader, uid: bool) -> c.Replace:
    """REPLACE SP seq-number SP mailbox append-message (RFC 8508 §6); seq-number is a UID
    after the UID prefix."""
    r.sp()
    number = r.nz_number(what="a message number")
    r.sp()
    mailbox = r.mailbox()
    return c.Replace(number, mailbox, _append_message(r))


def _copy_move(r: Reader, uid: bool) -> c.CopyMove:
    r.sp()
    sequence = r.sequence_set()
    r.sp()
    return c.CopyMove(sequence, r.mailbox())


# --- SEARCH ----------------------------------------------------------------------

def _search(r: Reader, uid: bool) -> c.Search:
    r.sp()
    returns, partial = None, None
    if r.maybe_word(b"RETURN"):
        r.sp()
        returns, partial = return_options(r)
        r.sp()
    charset, keys = search_criteria(r, charset_required=False)
    return c.Search(keys, charset, returns, partial)


def return_options(r: Reader) -> tuple[tuple[str, ...], tuple[int, int] | None]:
    """"(" [option *(SP option)] ")" of ESEARCH (RFC 4731) and ESORT (RFC 5267), with
    PARTIAL's range; RETURN () is ("ALL",)."""
    partial = None

    def option() -> str:
        nonlocal partial
        name = r.atom("a return option").upper().decode("ascii")
        if name not in c.ESEARCH_RETURNS:
            raise r.fail(f"unknown return option {name}")
        if name == "PARTIAL":
            r.sp()
            partial = r.partial_range()
        return name

    return unique(r.paren_list(option)) or ("ALL",), partial


def search_criteria(r: Reader, charset_required: bool) -> tuple[str | None, c.SearchAnd]:
    """[CHARSET name SP] search-key *(SP search-key) (SORT and THREAD require the charset,
    bare: RFC 5256 §4) -> (upper-case charset or None, the keys)."""
    charset = None
    if charset_required or r.maybe_word(b"CHARSET"):
        if not charset_required:
            r.sp()
        charset = r.text(r.astring("a charset name"), "US-ASCII").upper()
        if charset not in SEARCH_CHARSETS:
            raise r.fail(f"unsupported charset {charset}", _CHARSET_CODE)
        r.sp()
    program = _SearchProgram(r, charset or "UTF-8")
    keys = [program.key(0)]
    while not r.at_end():
        r.sp()
        keys.append(program.key(0))
    return charset, c.SearchAnd(tuple(keys))


_FLAG_KEYS = {
    b"ANSWERED": ("\\Answered", True), b"UNANSWERED": ("\\Answered", False),
    b"DELETED": ("\\Deleted", True), b"UNDELETED": ("\\Deleted", False),
    b"DRAFT": ("\\Draft", True), b"UNDRAFT": ("\\Draft", False),
    b"FLAGGED": ("\\Flagged", True), b"UNFLAGGED": ("\\Flagged", False),
    b"SEEN": ("\\Seen", True), b"UNSEEN": ("\\Seen", False),
    b"RECENT": ("\\Recent", True), b"OLD": ("\\Recent", False),
}
_HEADER_KEYS = {b"BCC": "Bcc", b"CC": "Cc", b"FROM": "From", b"SUBJECT": "Subject", b"TO": "To"}
_DATE_KEYS = {
    b"BEFORE": ("INTERNAL", "BEFORE"), b"ON": ("INTERNAL", "ON"), b"SINCE": ("INTERNAL", "SINCE"),
    b"SENTBEFORE": ("SENT", "BEFORE"), b"SENTON": ("SENT", "ON"), b"SENTSINCE": ("SENT", "SINCE"),
    # SAVEDATE (RFC 8514 §4.3)
    b"SAVEDBEFORE": ("SAVED", "BEFORE"), b"SAVEDON": ("SAVED", "ON"), b"SAVEDSINCE": ("SAVED", "SINCE"),
}
_VALUED_KEYS = frozenset(_HEADER_KEYS) | frozenset(_DATE_KEYS) | {
    b"NOT", b"OR", b"KEYWORD", b"UNKEYWORD", b"LARGER", b"SMALLER", b"BODY", b"TEXT", b"HEADER",
    b"UID", b"MODSEQ"}
_SEARCH_ALL = c.SearchAll()
_SEARCH_NEW = c.SearchAnd((c.SearchFlag("\\Recent", True), c.SearchFlag("\\Seen", False)))


class _SearchProgram:
    """search-key (RFC 3501 §6.4.4, MODSEQ of RFC 7162 §3.1.5) as a tree, depth-limited."""

    def __init__(self, reader: Reader, charset: str) -> None:
        self.r = reader
        self.charset = charset

    def string(self) -> str:
        return self.r.text(self.r.astring(), self.charset)

    def key(self, depth: int) -> c.SearchKey:
        r = self.r
        if depth > MAX_DEPTH:
            raise r.fail("search program nested too deeply")
        ch = r.peek()
        if ch == 0x28:  # "("
            keys = r.paren_list(lambda: self.key(depth + 1), empty_ok=False)
            return keys[0] if len(keys) == 1 else c.SearchAnd(tuple(keys))
        if ch == 0x2A or ch == 0x24 or 0x30 <= ch <= 0x39:  # "*", "$" (RFC 5182) or a digit
            return c.SearchSequence(r.sequence_set())
        name = r.atom("a search key").upper()
        if name in _FLAG_KEYS:
            return c.SearchFlag(*_FLAG_KEYS[name])
        if name == b"ALL":
            return _SEARCH_ALL
        if name == b"NEW":
            return _SEARCH_NEW
        if name == b"SAVEDATESUPPORTED":  # every mailbox keeps save dates (RFC 8514 §4.3)
            return _SEARCH_ALL
        if name not in _VALUED_KEYS:
            raise r.fail(f"unknown search key {name[:40].decode()}")
        r.sp()
        if name in _HEADER_KEYS:
            return c.SearchHeader(_HEADER_KEYS[name], self.string(), address=name != b"SUBJECT")
        if name in _DATE_KEYS:
            return c.SearchDate(*_DATE_KEYS[name], r.date())
        if name == b"NOT":
            return c.SearchNot(self.key(depth + 1))
        if name == b"OR":
            left = self.key(depth + 1)
            r.sp()
            return c.SearchOr(left, self.key(depth + 1))
        if name in (b"KEYWORD", b"UNKEYWORD"):
            keyword = r.atom("a keyword").decode("ascii")
            return c.SearchFlag(keyword, name == b"KEYWORD")
        if name in (b"LARGER", b"SMALLER"):
            return c.SearchSize(name.decode(), r.number())
        if name in (b"BODY", b"TEXT"):
            return c.SearchText(name.decode(), self.string())
        if name == b"HEADER":
            field = r.text(r.astring("a header name"), "US-ASCII")
            r.sp()
            return c.SearchHeader(field, self.string())
        if name == b"UID":
            return c.SearchSequence(r.sequence_set(), uid=True)
        return self.modseq()

    def modseq(self) -> c.SearchModseq:
        r = self.r
        entry = None
        if r.peek() == 0x22:
            entry_name = r.text(r.quoted(), "US-ASCII")
            r.sp()
            kind = r.atom("an entry type").upper().decode("ascii")
            if kind not in ("PRIV", "SHARED", "ALL"):
                raise r.fail("entry type must be priv, shared or all")
            r.sp()
            entry = (entry_name, kind)
        return c.SearchModseq(r.modseq(zero=True), entry)


# --- FETCH -----------------------------------------------------------------------

_SIMPLE_ATTRIBUTES = {name: c.FetchAttribute(name) for name in (
    "UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODYSTRUCTURE", "BODY",
    "RFC822", "RFC822.HEADER", "RFC822.TEXT", "MODSEQ", "EMAILID", "THREADID", "SAVEDATE", "PREVIEW")}
_MACROS = {
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
_SECTION_TEXTS = (b"HEADER.FIELDS.NOT", b"HEADER.FIELDS", b"HEADER", b"TEXT", b"MIME")


def _fetch(r: Reader, uid: bool) -> c.Fetch:
    r.sp()
    sequence = r.sequence_set()
    r.sp()
    if r.peek() == 0x28:
        attributes = r.paren_list(lambda: _fetch_attribute(r), empty_ok=False)
    else:
        name = r.match(_FETCH_NAME, "a fetch attribute").upper().decode("ascii")
        if name in _MACROS:
            attributes = [_SIMPLE_ATTRIBUTES[n] for n in _MACROS[name]]
        else:
            r.pos -= len(name)
            attributes = [_fetch_attribute(r)]
    changedsince = None
    vanished = False
    if not r.at_end():
        r.sp()

        def modifier() -> None:
            nonlocal changedsince, vanished
            if r.maybe_word(b"CHANGEDSINCE"):
                r.sp()
                changedsince = r.modseq(zero=True)
            elif r.maybe_word(b"VANISHED"):
                vanished = True
            else:
                raise r.fail("unknown FETCH modifier")

        r.paren_list(modifier, empty_ok=False)
        if vanished and (not uid or changedsince is None):
            raise r.fail("VANISHED needs UID FETCH with CHANGEDSINCE")
    return c.Fetch(sequence, unique(attributes), changedsince, vanished)


_LAZY = b" (LAZY)"


def _fetch_attribute(r: Reader) -> c.FetchAttribute:
    name = r.match(_FETCH_NAME, "a fetch attribute").upper().decode("ascii")
    if r.peek() != 0x5B:  # "["
        attribute = _SIMPLE_ATTRIBUTES.get(name)
        if attribute is None:
            raise r.fail(f"unknown fetch attribute {name[:40]}")
        if name == "PREVIEW" and r.data[r.pos:r.pos + len(_LAZY)].upper() == _LAZY:  # RFC 8970 §4
            r.pos += len(_LAZY)
            return c.FetchAttribute("PREVIEW", lazy=True)
        return attribute
    if name in ("BODY", "BODY.PEEK"):
        section = section_spec(r)
        return c.FetchAttribute("BODY[]", section, _partial(r), name == "BODY.PEEK")
    if name in ("BINARY", "BINARY.PEEK", "BINARY.SIZE"):
        r.expect(b"[")
        part = _part_numbers(r) if r.peek() != 0x5D else ()
        r.expect(b"]")
        section = c.Section(part)
        if name == "BINARY.SIZE":
            return c.FetchAttribute("BINARY.SIZE", section)
        return c.FetchAttribute("BINARY[]", section, _partial(r), name == "BINARY.PEEK")
    raise r.fail(f"unknown fetch attribute {name[:40]}[")


def _part_numbers(r: Reader) -> tuple[int, ...]:
    part = [r.nz_number(what="a part number")]
    while r.data.startswith(b".", r.pos) and 0x30 <= _at(r, r.pos + 1) <= 0x39:
        r.pos += 1
        part.append(r.nz_number(what="a part number"))
    return tuple(part)


def _at(r: Reader, pos: int) -> int:
    return r.data[pos] if pos < len(r.data) else -1


def section_spec(r: Reader) -> c.Section:
    """"[" [section-spec] "]" of FETCH (RFC 3501 §9); also the SECTION of an IMAP URL."""
    r.expect(b"[")
    part: tuple[int, ...] = ()
    text = None
    headers: tuple[str, ...] = ()
    if r.peek() != 0x5D:
        if 0x30 <= r.peek() <= 0x39:
            part = _part_numbers(r)
            if r.maybe(b"."):
                text = _section_text(r, allow_mime=True)
        else:
            text = _section_text(r, allow_mime=False)
        if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
            r.sp()
            # Kept as sent, twins too: the response names the section the way the
            # client asked for it (RFC 3501 §7.4.2), and some clients match on that.
            headers = tuple(r.paren_list(
                lambda: r.text(r.astring("a header name"), "US-ASCII").upper(), empty_ok=False))
    r.expect(b"]")
    return c.Section(part, text, headers)


def _section_text(r: Reader, allow_mime: bool) -> str:
    for word in _SECTION_TEXTS:
        end = r.pos + len(word)
        if r.data[r.pos:end].upper() == word and _at(r, end) in (0x20, 0x5D):
            if word == b"MIME" and not allow_mime:
                raise r.fail("MIME needs a part number")
            r.pos = end
            return word.decode()
    raise r.fail(f"bad section text at octet {r.pos}")


def _partial(r: Reader) -> tuple[int, int] | None:
    if not r.maybe(b"<"):
        return None
    origin = r.number(what="a partial origin")
    r.expect(b".")
    length = r.nz_number(what="a partial length")
    r.expect(b">")
    return (origin, length)


# --- STORE -----------------------------------------------------------------------

def _store(r: Reader, uid: bool) -> c.Store:
    r.sp()
    sequence = r.sequence_set()
    r.sp()
    unchangedsince = None
    if r.peek() == 0x28:
        def modifier() -> None:
            nonlocal unchangedsince
            if not r.maybe_word(b"UNCHANGEDSINCE"):
                raise r.fail("unknown STORE modifier")
            r.sp()
            unchangedsince = r.modseq(zero=True)

        r.paren_list(modifier, empty_ok=False)
        r.sp()
    mode = ""
    if r.peek() in (0x2B, 0x2D):  # "+" "-"
        mode = chr(r.peek())
        r.pos += 1
    item = r.atom("FLAGS").upper()
    if item not in (b"FLAGS", b"FLAGS.SILENT"):
        raise r.fail("expected FLAGS or FLAGS.SILENT")
    r.sp()
    if r.peek() == 0x28:
        flags = r.flag_list()
    else:
        items = [r.flag()]
        while not r.at_end():
            r.sp()
            items.append(r.flag())
        flags = unique(items)
    return c.Store(sequence, mode, item == b"FLAGS.SILENT", flags, unchangedsince)


# --- dispatch --------------------------------------------------------------------

_Parser = Callable[[Reader, bool], c.Arguments]

COMMANDS: dict[bytes, _Parser] = {
    b"CAPABILITY": _no_args, b"NOOP": _no_args, b"LOGOUT": _no_args,
    b"STARTTLS": _no_args, b"NAMESPACE": _no_args, b"CHECK": _no_args,
    b"CLOSE": _no_args, b"UNSELECT": _no_args, b"IDLE": _no_args,
    b"AUTHENTICATE": _authenticate, b"LOGIN": _login, b"ENABLE": _enable, b"ID": _id,
    b"SELECT": _select, b"EXAMINE": _select, b"CREATE": _create,
    b"DELETE": _mailbox_only, b"SUBSCRIBE": _mailbox_only, b"UNSUBSCRIBE": _mailbox_only,
    b"RENAME": _rename, b"LIST": _list, b"LSUB": _lsub, b"STATUS": _status,
    b"APPEND": _append, b"EXPUNGE": _expunge, b"SEARCH": _search, b"FETCH": _fetch,
    b"STORE": _store, b"COPY": _copy_move, b"MOVE": _copy_move,
    b"UNAUTHENTICATE": _no_args, b"REPLACE": _replace, b"COMPRESS": _compress,
    b"GETQUOTAROOT": _mailbox_only, b"GETQUOTA": _quota_root, b"SETQUOTA": _setquota,
    b"GETACL": _acl_mailbox, b"MYRIGHTS": _acl_mailbox, b"DELETEACL": _acl_mailbox_identifier,
    b"LISTRIGHTS": _acl_mailbox_identifier, b"SETACL": _setacl,
}
UID_COMMANDS = frozenset({b"COPY", b"MOVE", b"FETCH", b"STORE", b"SEARCH", b"EXPUNGE", b"REPLACE"})


def parse_command(raw: bytes, utf8: bool = False) -> c.Command:
    """Parse one complete command (literals inline, no final CRLF) into a Command;
    `utf8` once the client enabled UTF8=ACCEPT (RFC 6855): mailbox names are UTF-8
    and APPEND takes `UTF8 (~{n})`."""
    data = raw if isinstance(raw, bytes) else bytes(raw)
    r = Reader(data, utf8)
    try:
        m = TAG.match(data)
        if m is None:
            raise r.fail("missing or bad tag")
        r.pos = m.end()
        r.tag = m.group().decode("ascii")
        r.sp()
        name = r.atom("a command name").upper()
        uid = False
        if name == b"UID":
            uid = True
            r.sp()
            name = r.atom("a command name").upper()
            if name not in UID_COMMANDS:
                raise r.fail(f"UID {name[:40].decode()} is not a command")
        handler = COMMANDS.get(name)
        if handler is None:
            raise r.fail(f"unknown command {name[:40].decode()}")
        args = handler(r, uid)
        r.end()
        return c.Command(r.tag, name.decode("ascii"), uid, args)
    except ParseError:
        raise
    except RecursionError:
        raise r.fail("command nested too deeply") from None
    except (ValueError, IndexError, UnicodeError, OverflowError) as e:  # a gap in the checks above
        raise r.fail(f"malformed command ({type(e).__name__})") from None
