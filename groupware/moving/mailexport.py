"""A user's mail out to a Maildir or to mbox files.

Maildir keeps everything IMAP shows: bytes, flags, keywords and internal dates, so that
importing the export reproduces the mailbox. An export into the same Maildir again
writes only what is not there yet (file names carry the folder's UIDVALIDITY and the
message's UID), so an interrupted export resumes. mbox files are written whole, each
to a temporary name that replaces the file once complete.
"""
from __future__ import annotations

import os
from collections.abc import Iterable

from .mailfiles import MaildirWriter, mbox_escape, mbox_path, mbox_separator
from .mailstore import MailStore
from .progress import Progress


def export_mail(store: MailStore, kind: str, path: str, folders: Iterable[str] | None = None) -> tuple[int, int]:
    """(messages written, messages already there)."""
    wanted = set(folders) if folders else None
    chosen = [(name, row) for name, row in store.mail_folders() if wanted is None or name in wanted]
    total = sum(store.storage.query_items(row["id"], [], limit=0)[0] for _, row in chosen)
    written = present = 0
    os.makedirs(path, exist_ok=True)
    with Progress(f"export to {kind}", total) as progress:
        for name, row in chosen:
            if kind == "maildir":
                writer = MaildirWriter(path, name, store.uidvalidity(row["id"]))
                for message in store.messages(row["id"]):
                    if writer.write(message["uid"], message["data"], message["flags"], message["internalDate"]):
                        written += 1
                    else:
                        present += 1
                    progress.update()
            else:
                target = mbox_path(path, name)
                tmp = target + ".tmp"
                with open(tmp, "wb") as fp:
                    for message in store.messages(row["id"]):
                        fp.write(mbox_separator(message["internalDate"]))
                        fp.write(mbox_escape(message["data"]))
                        fp.write(b"\n")
                        written += 1
                        progress.update()
                    fp.flush()
                    os.fsync(fp.fileno())
                os.replace(tmp, target)
    return written, present
