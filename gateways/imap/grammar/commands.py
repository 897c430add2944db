"""What a parsed IMAP command carries: one frozen dataclass of arguments per command.

`parse_command` (parser.py) returns a `Command`; its `args` is one of the classes
below. Conventions shared by all of them:

- Mailbox names are str, already decoded from modified UTF-7 (RFC 3501 §5.1.3);
  `INBOX` in any case is "INBOX". LIST/LSUB patterns are decoded the same way and
  keep their `%` and `*` wildcards.
- Flags are str. The system flags are spelled canonically (`\\Seen`, `\\Answered`,
  `\\Flagged`, `\\Deleted`, `\\Draft`, `\\Recent`) whatever case the client used;
  keywords keep the client's spelling.
- Sequence sets are `SequenceSet` objects (sequence.py) and may contain `*`.
- Numbers are int, range-checked: nz-number and number 32 bits, mod-sequence 63 bits.
- Dates are `datetime.date`; date-times are timezone-aware `datetime.datetime`.
- Names that select a variant (store mode, fetch item, search key) are upper-case str.
"""
from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Union

from gateways.imap.grammar.sequence import SequenceSet


@dataclass(frozen=True)
class NoArguments:
    """CAPABILITY, NOOP, LOGOUT, STARTTLS, NAMESPACE, CHECK, CLOSE, UNSELECT, IDLE and
    UNAUTHENTICATE.
    (DONE, which ends IDLE, is read by the protocol; EXPUNGE has `Expunge`.)"""


NO_ARGUMENTS = NoArguments()


# --- not authenticated -------------------------------------------------------------

@dataclass(frozen=True)
class Authenticate:
    """AUTHENTICATE mechanism [initial-response] (RFC 3501 §6.2.2, SASL-IR RFC 4959).

    `mechanism` is upper case. `initial_response` is None when absent, the decoded
    octets otherwise; the client's `=` (an empty response) gives b"".
    """
    mechanism: str
    initial_response: bytes | None = None


@dataclass(frozen=True)
class Compress:
    """COMPRESS mechanism (RFC 4978); the mechanism upper case."""
    mechanism: str


@dataclass(frozen=True)
class Login:
    """LOGIN userid password (RFC 3501 §6.2.3). Both astrings, decoded as UTF-8."""
    userid: str
    password: str


# --- any state ---------------------------------------------------------------------

@dataclass(frozen=True)
class Enable:
    """ENABLE capability... (RFC 5161); names upper case, in the order sent."""
    capabilities: tuple[str, ...]


@dataclass(frozen=True)
class Id:
    """ID NIL | ID (field value ...) (RFC 2971).

    `fields` is None for NIL; values are None where the client sent NIL. Field names
    keep their spelling (they are compared case-insensitively by whoever reads them).
    """
    fields: tuple[tuple[str, str | None], ...] | None


# --- authenticated: mailboxes ------------------------------------------------------

@dataclass(frozen=True)
class QresyncParameters:
    """The QRESYNC select parameter (RFC 7162 §3.2.5):
    `(uidvalidity modseq [known-uids] [(seq-match-data)])`.

    `seq_match` is the pair (known sequence numbers, the UIDs they correspond to).
    """
    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True)
class Select:
    """SELECT / EXAMINE mailbox [(CONDSTORE | QRESYNC (...))] (RFC 3501 §6.3.1-2, RFC 7162).

    The command name tells SELECT from EXAMINE. `condstore` is True when the client
    sent the CONDSTORE parameter (QRESYNC implies CONDSTORE, which the protocol decides).
    """
    mailbox: str
    condstore: bool = False
    qresync: QresyncParameters | None = None


@dataclass(frozen=True)
class Create:
    """CREATE mailbox [(USE (\\Drafts ...))] (RFC 3501 §6.3.3, CREATE-SPECIAL-USE RFC 6154 §3).

    `special_use` holds the attributes as sent with canonical case for the RFC 6154
    ones (`\\All \\Archive \\Drafts \\Flagged \\Junk \\Sent \\Trash`).
    """
    mailbox: str
    special_use: tuple[str, ...] = ()


@dataclass(frozen=True)
class MailboxName:
    """DELETE, SUBSCRIBE, UNSUBSCRIBE mailbox (RFC 3501 §6.3.4, §6.3.6-7)."""
    mailbox: str


@dataclass(frozen=True)
class QuotaRoot:
    """GETQUOTA quota-root (RFC 9208 §4.2)."""
    root: str


@dataclass(frozen=True)
class SetQuota:
    """SETQUOTA quota-root (resource limit ...) (RFC 9208 §4.1.4): resource names upper case."""
    root: str
    limits: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Rename:
    """RENAME existing-mailbox new-mailbox (RFC 3501 §6.3.5)."""
    source: str
    destination: str


@dataclass(frozen=True)
class List:
    """LIST (RFC 3501 §6.3.8) and LIST-EXTENDED (RFC 5258) with LIST-STATUS (RFC 5819).

    `selection` holds selection options, upper case: SUBSCRIBED, REMOTE,
    RECURSIVEMATCH, SPECIAL-USE. `returns` holds return options other than STATUS,
    upper case: SUBSCRIBED, CHILDREN, SPECIAL-USE, MYRIGHTS (RFC 8440). `status_items` is the item list of
    RETURN (STATUS (...)), or None when STATUS was not asked. `extended` is True when
    the client used any extended syntax (selection options, RETURN, or a parenthesised
    pattern list), which changes some answers (RFC 5258 §3).
    """
    reference: str
    patterns: tuple[str, ...]
    selection: frozenset[str] = frozenset()
    returns: frozenset[str] = frozenset()
    status_items: tuple[str, ...] | None = None
    extended: bool = False


@dataclass(frozen=True)
class Lsub:
    """LSUB reference pattern (RFC 3501 §6.3.9)."""
    reference: str
    pattern: str


@dataclass(frozen=True)
class AclTarget:
    """GETACL mailbox, MYRIGHTS mailbox (`identifier` None), DELETEACL mailbox identifier and
    LISTRIGHTS mailbox identifier (RFC 4314 §3). The identifier is an astring decoded as
    UTF-8 and kept as sent (`anyone`, a login, `$group`)."""
    mailbox: str
    identifier: str | None = None


@dataclass(frozen=True)
class SetAcl:
    """SETACL mailbox identifier mod-rights (RFC 4314 §3.1). `mode` is "replace", "add"
    (a leading `+`) or "remove" (a leading `-`); `rights` the letters after it, as sent
    (which letters mean something is the command's business, not the grammar's)."""
    mailbox: str
    identifier: str
    mode: str
    rights: str


STATUS_ITEMS = frozenset({"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN",
                          "HIGHESTMODSEQ", "SIZE", "APPENDLIMIT", "MAILBOXID", "DELETED", "DELETED-STORAGE"})


@dataclass(frozen=True)
class Status:
    """STATUS mailbox (item ...) (RFC 3501 §6.3.10; HIGHESTMODSEQ RFC 7162, SIZE RFC 8438,
    APPENDLIMIT RFC 7889, MAILBOXID RFC 8474). Items upper case, in the order sent, no duplicates."""
    mailbox: str
    items: tuple[str, ...]


@dataclass(frozen=True)
class CatenatePart:
    """One part of CATENATE (RFC 4469 §5): `TEXT literal` (`text`, a memoryview into
    the raw command) or `URL astring` (`url`, as sent)."""
    text: memoryview | None = None
    url: str | None = None


@dataclass(frozen=True)
class AppendMessage:
    """One message of an APPEND: `[(flags)] [date-time] literal`, or with CATENATE
    (RFC 4469) `[(flags)] [date-time] CATENATE (part...)`.

    `message` is a memoryview into the raw command (no copy), empty with `catenate`;
    `binary` is True for a `~{N}` literal. `internal_date` is None when the client sent none.
    """
    flags: tuple[str, ...]
    internal_date: datetime.datetime | None
    message: memoryview
    binary: bool = False
    catenate: tuple[CatenatePart, ...] = ()


@dataclass(frozen=True)
class Append:
    """APPEND mailbox message... (RFC 3501 §6.3.11; MULTIAPPEND RFC 3502: several messages,
    stored all or none; LITERAL+ RFC 7888; `~{N}` literal8 of BINARY RFC 3516 §4.4)."""
    mailbox: str
    messages: tuple[AppendMessage, ...]


# --- selected: searching -----------------------------------------------------------

@dataclass(frozen=True)
class SearchAll:
    """ALL: every message."""


@dataclass(frozen=True)
class SearchAnd:
    """All of `keys`: the top level of SEARCH and any parenthesised list."""
    keys: tuple["SearchKey", ...]


@dataclass(frozen=True)
class SearchOr:
    """OR key key."""
    left: "SearchKey"
    right: "SearchKey"


@dataclass(frozen=True)
class SearchNot:
    """NOT key."""
    key: "SearchKey"


@dataclass(frozen=True)
class SearchFlag:
    """A flag set (`present`) or not set: ANSWERED/UNANSWERED, DELETED, DRAFT, FLAGGED,
    SEEN, RECENT/OLD, KEYWORD/UNKEYWORD. NEW arrives as RECENT and not SEEN."""
    flag: str
    present: bool = True


@dataclass(frozen=True)
class SearchSequence:
    """A sequence set (`uid` False) or UID set (the UID key, `uid` True)."""
    sequence: SequenceSet
    uid: bool = False


@dataclass(frozen=True)
class SearchDate:
    """BEFORE/ON/SINCE (internal date), SENTBEFORE/SENTON/SENTSINCE (Date: header) and
    SAVEDBEFORE/SAVEDON/SAVEDSINCE (save date, RFC 8514).

    `field` is "INTERNAL", "SENT" or "SAVED"; `relation` is "BEFORE", "ON" or "SINCE".
    """
    field: str
    relation: str
    date: datetime.date


@dataclass(frozen=True)
class SearchSize:
    """LARGER n (`relation` "LARGER") or SMALLER n ("SMALLER"), in octets."""
    relation: str
    size: int


@dataclass(frozen=True)
class SearchHeader:
    """A header contains `value` (case-insensitive substring, RFC 3501 §6.4.4).

    BCC, CC, FROM, SUBJECT, TO arrive as their header names ("Bcc", ...) and
    HEADER field-name string with the name as sent. An empty value matches every
    message that has the header. `address` is set for BCC, CC, FROM and TO, which
    match the field's address list rather than its text.
    """
    name: str
    value: str
    address: bool = False


@dataclass(frozen=True)
class SearchText:
    """BODY string (`where` "BODY") or TEXT string ("TEXT": header and body)."""
    where: str
    value: str


@dataclass(frozen=True)
class SearchModseq:
    """MODSEQ [entry-name entry-type] mod-sequence (RFC 7162 §3.1.5): mod-sequence at
    least `modseq`. `entry` is (name, "PRIV"|"SHARED"|"ALL") when given."""
    modseq: int
    entry: tuple[str, str] | None = None


SearchKey = Union[SearchAll, SearchAnd, SearchOr, SearchNot, SearchFlag, SearchSequence,
                  SearchDate, SearchSize, SearchHeader, SearchText, SearchModseq]


def leaf_keys(key: SearchKey) -> Iterator[SearchKey]:
    """The keys of a search tree below its AND, OR and NOT nodes, left to right."""
    pending = [key]
    while pending:
        node = pending.pop()
        if isinstance(node, SearchAnd):
            pending.extend(reversed(node.keys))
        elif isinstance(node, SearchOr):
            pending.extend((node.right, node.left))
        elif isinstance(node, SearchNot):
            pending.append(node.key)
        else:
            yield node


# UPDATE and CONTEXT are RFC 5267's (CONTEXT=SEARCH, CONTEXT=SORT), SAVE RFC 5182's (SEARCHRES).
ESEARCH_RETURNS = frozenset({"MIN", "MAX", "ALL", "COUNT", "PARTIAL", "UPDATE", "CONTEXT", "SAVE"})


@dataclass(frozen=True)
class Search:
    """SEARCH [RETURN (...)] [CHARSET name] key... (RFC 3501 §6.4.4, ESEARCH RFC 4731).

    `charset` is the upper-case name sent, or None; strings in `criteria` are already
    decoded with it. `returns` is None for a plain SEARCH (answer `* SEARCH`), else the
    upper-case return options in the order sent; RETURN () is ("ALL",) as RFC 4731 §3.1
    says. `criteria` is a SearchAnd of the top-level keys. `partial` is the range of
    RETURN (PARTIAL ...) (Reader.partial_range), which is then among `returns`.
    """
    criteria: SearchKey
    charset: str | None = None
    returns: tuple[str, ...] | None = None
    partial: tuple[int, int] | None = None


# --- selected: fetching ------------------------------------------------------------

@dataclass(frozen=True)
class Section:
    """A body section spec (RFC 3501 §6.4.5): `part` numbers then an optional text part.

    `text` is None (the whole part), "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT",
    "TEXT" or "MIME"; `headers` holds the field names for the HEADER.FIELDS forms,
    upper case, in the order sent. BINARY sections have only `part`.
    """
    part: tuple[int, ...] = ()
    text: str | None = None
    headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class FetchAttribute:
    """One FETCH data item.

    `name` is one of UID, FLAGS, INTERNALDATE, RFC822.SIZE, ENVELOPE, BODYSTRUCTURE,
    BODY (no section: the non-extensible structure), BODY[...] as name "BODY[]",
    RFC822, RFC822.HEADER, RFC822.TEXT, BINARY[...] as "BINARY[]", BINARY.SIZE,
    MODSEQ, EMAILID, THREADID (RFC 8474), SAVEDATE (RFC 8514), PREVIEW (RFC 8970; `lazy`
    for PREVIEW (LAZY)). `section` is set for "BODY[]", "BINARY[]" and "BINARY.SIZE"; `peek` for
    BODY.PEEK/BINARY.PEEK; `partial` is (origin, length) for `<origin.length>`.
    The writer's `fetch_label` renders how the answer names the item.
    """
    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None
    peek: bool = False
    lazy: bool = False


@dataclass(frozen=True)
class Fetch:
    """FETCH sequence-set items [(CHANGEDSINCE n [VANISHED])] (RFC 3501 §6.4.5, RFC 7162).

    Macros are expanded: ALL = FLAGS INTERNALDATE RFC822.SIZE ENVELOPE, FAST = FLAGS
    INTERNALDATE RFC822.SIZE, FULL = ALL + BODY. Attributes keep the order sent,
    without duplicates; with the UID prefix the protocol adds UID when missing.
    """
    sequence: SequenceSet
    attributes: tuple[FetchAttribute, ...]
    changedsince: int | None = None
    vanished: bool = False


# --- selected: changing ------------------------------------------------------------

@dataclass(frozen=True)
class Store:
    """STORE sequence-set [(UNCHANGEDSINCE n)] [+|-]FLAGS[.SILENT] flags (RFC 3501 §6.4.6,
    RFC 7162 §3.1.3). `mode` is "+" (add), "-" (remove) or "" (replace)."""
    sequence: SequenceSet
    mode: str
    silent: bool
    flags: tuple[str, ...]
    unchangedsince: int | None = None


@dataclass(frozen=True)
class CopyMove:
    """COPY / MOVE sequence-set mailbox (RFC 3501 §6.4.7, MOVE RFC 6851)."""
    sequence: SequenceSet
    mailbox: str


@dataclass(frozen=True)
class Replace:
    """REPLACE / UID REPLACE number mailbox message (RFC 8508): `number` is a sequence
    number, or a UID with the UID prefix; `message` is one APPEND message."""
    number: int
    mailbox: str
    message: AppendMessage


@dataclass(frozen=True)
class Expunge:
    """EXPUNGE, and UID EXPUNGE uid-set (UIDPLUS RFC 4315 §2.1): `uids` is None without UID."""
    uids: SequenceSet | None = None


Arguments = Union[NoArguments, Authenticate, Compress, Login, Enable, Id, Select, Create, MailboxName,
                  Rename, List, Lsub, Status, Append, Search, Fetch, Store, CopyMove, Replace,
                  Expunge, QuotaRoot, SetQuota, AclTarget, SetAcl]


@dataclass(frozen=True)
class Command:
    """One parsed command: `tag`, upper-case `name` (without the UID prefix; "SELECT",
    "FETCH", ...), `uid` True after a UID prefix, and the command's arguments."""
    tag: str
    name: str
    uid: bool = False
    args: Arguments = field(default=NO_ARGUMENTS)
