"""Helpers of the import/export tests and benchmark: a private Dovecot filled with known
messages, and a user's mailbox read back from the store for comparison."""
from __future__ import annotations

import imaplib
import os
import tempfile
import time
from datetime import datetime, timezone

from dovecot import PrivateDovecot
from gateways.imap.grammar import mutf7

PEER_USER = "peer"
PEER_PASSWORD = "peer secret"


def sample_message(folder: str, i: int, size: int = 0) -> bytes:
    """A CRLF message, unique by folder and number; `size` pads its body to about that size."""
    body = f"Message {i} of {folder}.\r\nFrom the start of a line, mbox must escape this.\r\n>From too.\r\n"
    if size > len(body):
        line = "x" * 70 + "\r\n"
        body += line * ((size - len(body)) // len(line))
    return (f"From: Sender {i} <sender{i}@example.org>\r\nTo: peer@example.org\r\n"
            f"Subject: {folder} {i} =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\n"
            f"Message-ID: <{folder.replace('/', '.')}.{i}@example.org>\r\n"
            f"Date: Mon, 1 Jan 2024 10:{i % 60:02d}:00 +0000\r\n\r\n{body}").encode()


def sample_flags(i: int) -> list[str]:
    return [["\\Seen"], [], ["\\Seen", "\\Flagged", "$Label1"], ["\\Answered", "project-x"],
            ["\\Draft"], ["\\Seen", "$Forwarded"]][i % 6]


def sample_date(i: int) -> int:
    return int(datetime(2023, 3, 1, tzinfo=timezone.utc).timestamp()) + i * 3607


def make_peer() -> PrivateDovecot:
    """A Dovecot (not started yet) in a new directory under the system's temporary one:
    Dovecot's users must get through every directory above its files."""
    PrivateDovecot.install("imap")
    base = tempfile.mkdtemp(prefix="gw-moving-dovecot-")
    return PrivateDovecot(os.path.join(base, "dovecot"), "imap", PEER_USER, "{PLAIN}" + PEER_PASSWORD)


def append_samples(peer: PrivateDovecot, folders: dict[str, int], start: int = 0) -> dict[str, list[tuple]]:
    """APPEND `count` sample messages to each folder (created when missing, `/` nested) with
    flags and internal dates: {folder: [(bytes, flags, internal date)]}."""
    imap = imaplib.IMAP4("127.0.0.1", peer.port)
    imap.login(PEER_USER, PEER_PASSWORD)
    try:
        typ, data = imap.list('""', '""')
        delimiter = data[0].split(b'"')[1].decode()
        out = {}
        for folder, count in folders.items():
            name = mutf7.encode(folder.replace("/", delimiter)).decode("ascii")
            if folder != "INBOX":
                imap.create(f'"{name}"')
            out[folder] = []
            for i in range(start, start + count):
                data = sample_message(folder, i)
                flags = sample_flags(i)
                date = sample_date(i)
                typ, _ = imap.append(f'"{name}"', f"({' '.join(flags)})", time.localtime(date), data)
                assert typ == "OK"
                out[folder].append((data, sorted(flags), date))
        return out
    finally:
        imap.logout()


def open_store(data_dir: str):
    from server.service import open_storage
    from shared.config import Config
    return open_storage(Config({}, str(data_dir)))


def mailbox(data_dir: str, user: str) -> dict[str, list[tuple]]:
    """{IMAP folder name: [(bytes, sorted flags, internal date)]} of a user's non-empty mail folders."""
    from groupware.moving.mailstore import MailStore

    storage = open_store(data_dir)
    try:
        store = MailStore(storage, storage.get_user(user), 1 << 30)
        out = {}
        for name, row in store.mail_folders():
            messages = [(m["data"], sorted(m["flags"]), m["internalDate"]) for m in store.messages(row["id"])]
            if messages:
                out[name] = messages
        return out
    finally:
        storage.close()
