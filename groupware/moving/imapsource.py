"""Another IMAP server as the source of an import (RFC 3501, with Python's imaplib).

`imaps://` speaks TLS from the start (port 993); `imap://` (port 143) upgrades with
STARTTLS, and logs in over plain text only when STARTTLS is not offered and the caller
allowed it. Every folder is opened read-only (EXAMINE) and bodies are fetched with
BODY.PEEK, so the source mailbox is left exactly as it was, \\Seen flags included.
"""
from __future__ import annotations

import imaplib
import re
import ssl
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote, urlsplit

from gateways.imap.grammar import mutf7

from .mailstore import header_message_id

# Bodies travel in fetches of at most this many messages or (roughly) bytes.
FETCH_MESSAGES = 100
FETCH_BYTES = 8 * 1024 * 1024
_LIST = re.compile(rb'^\((?P<attrs>[^)]*)\) (?:"(?P<delim>(?:[^"\\]|\\.)*)"|NIL) (?P<name>.*)$', re.I)
_UID = re.compile(rb"\bUID (\d+)", re.I)
_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)", re.I)
_DATE = re.compile(rb'\bINTERNALDATE "([^"]+)"', re.I)
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)", re.I)


class SourceError(Exception):
    """The source server refused or failed; the text says what."""


@dataclass
class ImapURL:
    secure: bool
    user: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> "ImapURL":
        parts = urlsplit(text)
        if parts.scheme not in ("imap", "imaps") or not parts.hostname:
            raise ValueError(f"not an imap://user@host[:port] or imaps:// URL: {text!r}")
        if parts.password is not None:
            raise ValueError("put the password in --password-file, not in the URL (it would show in ps)")
        if not parts.username:
            raise ValueError(f"{text!r} names no user (imap://user@host)")
        secure = parts.scheme == "imaps"
        return cls(secure, unquote(parts.username), parts.hostname, parts.port or (993 if secure else 143))

    def __str__(self) -> str:
        return f"{'imaps' if self.secure else 'imap'}://{self.user}@{self.host}:{self.port}"


@dataclass
class Entry:
    """A source message as its listing describes it."""
    uid: int
    flags: list[str]
    internal_date: int
    size: int
    message_id: str | None


@dataclass
class RemoteFolder:
    name: str  # `/` between levels, decoded
    raw: bytes  # the name as the server spells it
    special_use: tuple[str, ...]


def parse_internal_date(text: str) -> int:
    """`17-Jul-1996 02:44:25 -0700` (RFC 3501 date-time) as a Unix time."""
    return int(datetime.strptime(text.strip(), "%d-%b-%Y %H:%M:%S %z").timestamp())


def _quote(raw: bytes) -> bytes:
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _fetch_records(data: list) -> Iterator[tuple[bytes, bytes | None]]:
    """(meta, literal) per message of an imaplib FETCH answer: the text around the literal
    joined, so that items after it (Dovecot sends some there) are seen too."""
    meta: bytes | None = None
    literal: bytes | None = None
    for part in data:
        if isinstance(part, tuple):
            if meta is not None:
                yield meta, literal
            meta, literal = part[0], part[1]
        elif part is None:
            continue
        elif meta is not None and literal is not None and not re.match(rb"^\d+ \(", part):
            meta += b" " + part
        else:
            if meta is not None:
                yield meta, literal
            meta, literal = part, None
    if meta is not None:
        yield meta, literal


class ImapSource:
    def __init__(self, url: ImapURL, password: str, allow_plaintext: bool = False,
                 cafile: str | None = None, timeout: float = 120.0) -> None:
        self.url = url
        context = ssl.create_default_context(cafile=cafile)
        try:
            if url.secure:
                self.imap = imaplib.IMAP4_SSL(url.host, url.port, ssl_context=context, timeout=timeout)
            else:
                self.imap = imaplib.IMAP4(url.host, url.port, timeout=timeout)
                if "STARTTLS" in self.imap.capabilities:
                    self.imap.starttls(context)
                elif not allow_plaintext:
                    self.imap.logout()
                    raise SourceError(f"{url.host} offers no STARTTLS; use imaps://, or "
                                      "--allow-plaintext to send the password unencrypted")
            self.imap.login(url.user, password)
        except (imaplib.IMAP4.error, OSError) as exc:
            raise SourceError(f"{url}: {exc}") from None

    def close(self) -> None:
        try:
            self.imap.logout()
        except (imaplib.IMAP4.error, OSError):
            pass

    def _check(self, typ: str, data: list, what: str) -> list:
        if typ != "OK":
            raise SourceError(f"{what}: {typ} {b' '.join(d for d in data if isinstance(d, bytes)).decode('utf-8', 'replace')}")
        return data

    def folders(self) -> list[RemoteFolder]:
        typ, data = self.imap.list()
        out = []
        for item in self._check(typ, data, "LIST"):
            if isinstance(item, tuple):  # the name came as a literal
                line, raw = item[0], item[1]
                match = _LIST.match(line.rsplit(b" ", 1)[0] + b" x")
            else:
                match = _LIST.match(item or b"")
                raw = None
            if match is None:
                continue
            attrs = tuple(a.decode("ascii", "replace") for a in match.group("attrs").split())
            if any(a.lower() in ("\\noselect", "\\nonexistent") for a in attrs):
                continue
            if raw is None:
                raw = match.group("name")
                if raw.startswith(b'"') and raw.endswith(b'"'):
                    raw = re.sub(rb"\\(.)", rb"\1", raw[1:-1])
            delimiter = match.group("delim")
            name = mutf7.decode(raw)
            if delimiter:
                delim = re.sub(r"\\(.)", r"\1", delimiter.decode("ascii"))
                if delim != "/":
                    name = name.replace("/", "_").replace(delim, "/")
            if name.upper() == "INBOX":
                name = "INBOX"
            out.append(RemoteFolder(name, raw, attrs))
        out.sort(key=lambda f: (f.name != "INBOX", f.name.split("/")))
        return out

    def examine(self, folder: RemoteFolder) -> tuple[int, int]:
        """Open `folder` read-only: (UIDVALIDITY, message count)."""
        typ, data = self.imap.select(_quote(folder.raw).decode("latin-1"), readonly=True)
        self._check(typ, data, f"EXAMINE {folder.name}")
        _, validity = self.imap.response("UIDVALIDITY")
        return int(validity[0]) if validity and validity[0] else 0, int(data[0] or 0)

    def entries(self, after_uid: int = 0) -> list[Entry]:
        """Flags, internal date, size and Message-ID of the open folder's messages above
        `after_uid`, in UID order."""
        typ, data = self.imap.uid("FETCH", f"{after_uid + 1}:*",
                                  "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        out = []
        for meta, literal in _fetch_records(self._check(typ, data, "FETCH")):
            uid = _UID.search(meta)
            if uid is None or int(uid.group(1)) <= after_uid:
                continue  # `n:*` names the last message even when its UID is below n
            flags = _FLAGS.search(meta)
            date = _DATE.search(meta)
            size = _SIZE.search(meta)
            out.append(Entry(int(uid.group(1)),
                             [f for f in (flags.group(1).decode("utf-8", "replace").split() if flags else [])
                              if f.lower() != "\\recent"],
                             parse_internal_date(date.group(1).decode("ascii")) if date else 0,
                             int(size.group(1)) if size else 0,
                             header_message_id(literal) if literal else None))
        out.sort(key=lambda e: e.uid)
        return out

    def bodies(self, entries: Iterable[Entry]) -> Iterator[tuple[Entry, bytes]]:
        """The messages' bytes, in the order given, fetched a batch at a time."""
        pending: list[Entry] = []
        size = 0
        for entry in entries:
            pending.append(entry)
            size += entry.size
            if len(pending) >= FETCH_MESSAGES or size >= FETCH_BYTES:
                yield from self._fetch(pending)
                pending, size = [], 0
        if pending:
            yield from self._fetch(pending)

    def _fetch(self, entries: list[Entry]) -> Iterator[tuple[Entry, bytes]]:
        uids = ",".join(str(e.uid) for e in entries)
        typ, data = self.imap.uid("FETCH", uids, "(UID BODY.PEEK[])")
        got = {}
        for meta, literal in _fetch_records(self._check(typ, data, "FETCH")):
            uid = _UID.search(meta)
            if uid is not None and literal is not None:
                got[int(uid.group(1))] = literal
        for entry in entries:
            if entry.uid in got:  # a message expunged meanwhile is simply gone
                yield entry, got[entry.uid]
