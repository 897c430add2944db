"""Maildir and mbox, read for import and written by export.

Maildir is Maildir++ as Dovecot and Courier lay it out: the inbox at the top, each
other folder a `.A.B` directory beside it (levels joined by `.`, names in modified
UTF-7), flags in the file name after `:2,` and keywords as letters that the folder's
`dovecot-keywords` file maps to names. A message's internal date is its file's mtime.

mbox is mboxrd: each message starts with a `From ` line carrying its internal date in
UTC; a body line that starts with `From ` (after any `>`) gets one more `>`. A message
is followed by one empty line, which the reader takes off again, so an exported
message reads back byte for byte. mbox has no place for flags but the `Status`,
`X-Status` and `X-Keywords` header fields other programs write; they are read on
import, and export leaves messages as they are (flags travel in Maildir).

Messages are kept as their bytes. A file that uses bare LF line ends throughout (as
Maildir and mbox files written by Unix programs do) is given CRLF, which is what IMAP
serves; one that already holds CRLF is kept exactly.
"""
from __future__ import annotations

import calendar
import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from gateways.imap.grammar import mutf7
from shared.spool import crlf

from .mailstore import Incoming

# Maildir info letters (Maildir spec "info semantics") and the IMAP flags they mean.
MAILDIR_FLAGS = {"D": "\\Draft", "F": "\\Flagged", "P": "$Forwarded", "R": "\\Answered", "S": "\\Seen",
                 "T": "\\Deleted"}
LETTER_OF_FLAG = {flag.lower(): letter for letter, flag in MAILDIR_FLAGS.items()}
KEYWORD_LETTERS = "abcdefghijklmnopqrstuvwxyz"
KEYWORDS_FILE = "dovecot-keywords"
MBOX_SUFFIX = ".mbox"
_FROM_LINE = re.compile(rb"^>*From ", re.M)
_ESCAPED_FROM_LINE = re.compile(rb"^>+From ", re.M)
_MBOX_START = re.compile(rb"^From [^\r\n]*\r?\n", re.M)


def as_crlf(data: bytes) -> bytes:
    """CRLF line ends for a message written with bare LFs; anything else unchanged."""
    return data if b"\r\n" in data or b"\n" not in data else crlf(data)


@dataclass
class LocalFolder:
    name: str  # IMAP name, `/` between levels
    paths: list[str] = field(default_factory=list)
    special_use: tuple[str, ...] = ()


# -- Maildir ---------------------------------------------------------------

def _maildir_name(directory: str) -> str:
    """`.A.B` -> `A/B` (modified UTF-7 decoded)."""
    return "/".join(mutf7.decode(part.encode("ascii")) for part in directory[1:].split("."))


def maildir_folders(root: str) -> list[LocalFolder]:
    if not os.path.isdir(os.path.join(root, "cur")) and not os.path.isdir(os.path.join(root, "new")):
        raise ValueError(f"{root} is not a Maildir (no cur/ or new/)")
    out = [LocalFolder("INBOX", [root])]
    for entry in sorted(os.listdir(root)):
        path = os.path.join(root, entry)
        if entry.startswith(".") and entry not in (".", "..") and os.path.isdir(os.path.join(path, "cur")):
            out.append(LocalFolder(_maildir_name(entry), [path]))
    return out


def _maildir_keywords(folder: str) -> dict[str, str]:
    try:
        with open(os.path.join(folder, KEYWORDS_FILE), encoding="utf-8") as fp:
            lines = fp.read().split("\n")
    except FileNotFoundError:
        return {}
    letters = {}
    for line in lines:
        number, _, name = line.partition(" ")
        if number.isdigit() and int(number) < len(KEYWORD_LETTERS) and name:
            letters[KEYWORD_LETTERS[int(number)]] = name
    return letters


_EXPORTED_NAME = re.compile(r"^\d+\.U\d+-(\d+)\.")


def _dovecot_uids(folder: str) -> dict[str, int]:
    """Base name -> UID from Dovecot's `dovecot-uidlist` (version 3: `UID [ext...] :name`)."""
    try:
        with open(os.path.join(folder, "dovecot-uidlist"), encoding="utf-8", errors="replace") as fp:
            lines = fp.read().split("\n")[1:]
    except FileNotFoundError:
        return {}
    uids = {}
    for line in lines:
        head, sep, base = line.partition(":")
        number = head.split(" ", 1)[0]
        if sep and number.isdigit():
            uids[base.split(":2,")[0]] = int(number)
    return uids


def _maildir_sort_key(name: str, uids: dict[str, int]) -> tuple:
    """The folder's order: Dovecot's UIDs, the UID our export put in the name, else the
    delivery time the name starts with."""
    base = name.split(":2,")[0]
    if base in uids:
        return (0, uids[base], name)
    exported = _EXPORTED_NAME.match(name)
    if exported:
        return (1, int(exported.group(1)), name)
    head = name.split(".", 1)[0]
    return (2, int(head) if head.isdigit() else 0, name)


def read_maildir(folder: LocalFolder) -> Iterator[Incoming]:
    """The messages of one Maildir folder, oldest file name first."""
    directory = folder.paths[0]
    keywords = _maildir_keywords(directory)
    files = []
    for sub in ("cur", "new"):
        try:
            files += [(name, os.path.join(directory, sub, name)) for name in os.listdir(os.path.join(directory, sub))
                      if not name.startswith(".")]
        except FileNotFoundError:
            pass
    uids = _dovecot_uids(directory)
    for name, path in sorted(files, key=lambda pair: _maildir_sort_key(pair[0], uids)):
        info = name.rpartition(":2,")[2] if ":2," in name else ""
        flags = [MAILDIR_FLAGS[c] for c in info if c in MAILDIR_FLAGS]
        flags += [keywords[c] for c in info if c in keywords]
        try:
            with open(path, "rb") as fp:
                data = fp.read()
            mtime = int(os.stat(path).st_mtime)
        except FileNotFoundError:
            continue  # expunged or moved by a client since the listing
        yield Incoming(as_crlf(data), flags, mtime)


class MaildirWriter:
    """One Maildir++ folder being exported; a message already there (same unique name,
    which comes from the folder's UIDVALIDITY and the message's UID) is not written again."""

    def __init__(self, root: str, name: str, uidvalidity: int) -> None:
        if name == "INBOX":
            self.directory = root
        else:
            self.directory = os.path.join(root, "." + ".".join(mutf7.encode(level).decode("ascii")
                                                             for level in name.split("/")))
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(self.directory, sub), exist_ok=True)
        self.uidvalidity = uidvalidity
        self.keywords = {name: letter for letter, name in _maildir_keywords(self.directory).items()}
        self.present = {entry.split(":2,")[0].split(",S=")[0]
                        for entry in os.listdir(os.path.join(self.directory, "cur"))}
        self.host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")

    def _letter(self, keyword: str) -> str | None:
        letter = self.keywords.get(keyword)
        if letter is None and len(self.keywords) < len(KEYWORD_LETTERS):
            letter = KEYWORD_LETTERS[len(self.keywords)]
            self.keywords[keyword] = letter
            with open(os.path.join(self.directory, KEYWORDS_FILE), "w", encoding="utf-8") as fp:
                fp.writelines(f"{KEYWORD_LETTERS.index(l)} {k}\n"
                              for k, l in sorted(self.keywords.items(), key=lambda kv: kv[1]))
        return letter

    def has(self, uid: int, internal_date: int) -> bool:
        return self._base(uid, internal_date) in self.present

    def _base(self, uid: int, internal_date: int) -> str:
        return f"{internal_date}.U{self.uidvalidity}-{uid}.{self.host}"

    def write(self, uid: int, data: bytes, flags: list[str], internal_date: int) -> bool:
        """False if the message was there already (an earlier, interrupted export)."""
        base = self._base(uid, internal_date)
        if base in self.present:
            return False
        letters = {LETTER_OF_FLAG[f.lower()] for f in flags if f.lower() in LETTER_OF_FLAG}
        for flag in flags:
            if not flag.startswith("\\") and flag.lower() not in LETTER_OF_FLAG:
                letter = self._letter(flag)
                if letter:
                    letters.add(letter)
        name = f"{base},S={len(data)}:2,{''.join(sorted(letters))}"
        tmp = os.path.join(self.directory, "tmp", name)
        with open(tmp, "wb") as fp:
            fp.write(data)
            fp.flush()
            os.fsync(fp.fileno())
        os.utime(tmp, (internal_date, internal_date))
        os.rename(tmp, os.path.join(self.directory, "cur", name))
        self.present.add(base)
        return True


# -- mbox --------------------------------------------------------------------

def mbox_folders(path: str) -> list[LocalFolder]:
    """A single mbox file is the inbox; a directory holds one `NAME.mbox` file per folder,
    subfolders in subdirectories (`Archive/2024.mbox` is `Archive/2024`)."""
    if os.path.isfile(path):
        return [LocalFolder("INBOX", [path])]
    if not os.path.isdir(path):
        raise ValueError(f"{path}: no such mbox file or directory")
    out = []
    for parent, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(MBOX_SUFFIX):
                relative = os.path.relpath(os.path.join(parent, name), path)[:-len(MBOX_SUFFIX)]
                out.append(LocalFolder(relative.replace(os.sep, "/"), [os.path.join(parent, name)]))
    out.sort(key=lambda f: (f.name.upper() != "INBOX", f.name.split("/")))
    return out


def _mbox_date(line: bytes) -> int | None:
    """The date at the end of a `From sender date` line (asctime, UTC)."""
    parts = line.decode("latin-1").split()
    if len(parts) < 7:
        return None
    try:
        return calendar.timegm(time.strptime(" ".join(parts[2:7]), "%a %b %d %H:%M:%S %Y"))
    except ValueError:
        return None


def _mbox_flags(data: bytes) -> list[str]:
    end = data.find(b"\n\n")
    crlf_end = data.find(b"\r\n\r\n")
    head = data[:min(e for e in (end, crlf_end, len(data)) if e >= 0)]
    flags: list[str] = []
    for line in head.split(b"\n"):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        value = value.strip().decode("latin-1")
        if name == b"status":
            flags += ["\\Seen"] if "R" in value else []
        elif name == b"x-status":
            flags += [flag for letter, flag in (("A", "\\Answered"), ("F", "\\Flagged"), ("D", "\\Deleted"),
                                                ("T", "\\Draft")) if letter in value]
        elif name == b"x-keywords":
            flags += [k for k in re.split(r"[\s,]+", value) if k]
    return list(dict.fromkeys(flags))


def read_mbox(folder: LocalFolder) -> Iterator[Incoming]:
    with open(folder.paths[0], "rb") as fp:
        text = fp.read()
    starts = [m.start() for m in _MBOX_START.finditer(text)]
    if text and (not starts or starts[0] != 0):
        raise ValueError(f"{folder.paths[0]} is not an mbox file (it does not start with a From line)")
    fallback = int(os.stat(folder.paths[0]).st_mtime)
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(text)
        newline = text.index(b"\n", start)
        date = _mbox_date(text[start:newline].rstrip(b"\r"))
        body = text[newline + 1:end]
        if body.endswith(b"\n\n"):
            body = body[:-1]
        body = _ESCAPED_FROM_LINE.sub(lambda m: m.group(0)[1:], body) if b">From " in body else body
        yield Incoming(as_crlf(body), _mbox_flags(body), date if date is not None else fallback)


def mbox_separator(internal_date: int) -> bytes:
    return b"From MAILER-DAEMON " + time.asctime(time.gmtime(internal_date)).encode("ascii") + b"\n"


def mbox_escape(data: bytes) -> bytes:
    return _FROM_LINE.sub(lambda m: b">" + m.group(0), data)


def mbox_path(root: str, name: str) -> str:
    path = os.path.join(root, *name.split("/")) + MBOX_SUFFIX
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path
