"""Mail into a user's store from another IMAP server, a Maildir or an mbox.

Folders keep their names and nesting, messages their bytes, flags (keywords too) and
internal dates, and are stored in their source order. Nothing is copied twice: a
message whose Message-ID, internal date and size are in the target folder already is
skipped (imapsync's test), and for an IMAP source the last UID copied of each folder is
remembered with the folder's UIDVALIDITY in `import-state/` of the data directory, so
that a second run asks the server only for newer messages. Messages go in batches, one
transaction each; an interrupted import loses at most the batch it was in, and the
same command resumes it.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .imapsource import Entry, ImapSource
from .mailfiles import LocalFolder, maildir_folders, mbox_folders, read_maildir, read_mbox
from .mailstore import Batcher, Incoming, MailStore, header_message_id, message_key
from .progress import Progress

STATE_DIR = "import-state"


@dataclass
class Tally:
    copied: int = 0
    skipped: int = 0
    too_large: int = 0
    folders: list[str] = field(default_factory=list)

    def line(self) -> str:
        extra = f", {self.too_large} over max_message_size left out" if self.too_large else ""
        return (f"{self.copied} messages copied, {self.skipped} already there{extra}, "
                f"{len(self.folders)} folders")


class ImportState:
    """Per source and folder: the source's UIDVALIDITY, the last UID copied, and which
    target folder (id and UIDVALIDITY) it went to. Written after every batch."""

    def __init__(self, data_dir: str, user: str, source: str) -> None:
        directory = os.path.join(data_dir, STATE_DIR)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.path = os.path.join(directory, re.sub(r"[^\w.@+-]", "_", user) + ".json")
        self.source = source
        try:
            with open(self.path, encoding="utf-8") as fp:
                self.all = json.load(fp)
        except (FileNotFoundError, ValueError):
            self.all = {}
        self.folders = self.all.setdefault(source, {})

    def last_uid(self, folder: str, uidvalidity: int, target: tuple[int, int]) -> int:
        entry = self.folders.get(folder)
        if entry and entry.get("uidvalidity") == uidvalidity and entry.get("target") == list(target):
            return int(entry.get("uid", 0))
        return 0

    def remember(self, folder: str, uidvalidity: int, target: tuple[int, int], uid: int) -> None:
        self.folders[folder] = {"uidvalidity": uidvalidity, "uid": uid, "target": list(target)}
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fp:
            json.dump(self.all, fp, indent=1, sort_keys=True)
        os.replace(tmp, self.path)


def _fits(store: MailStore, size: int, tally: Tally, progress: Progress, where: str) -> bool:
    if size > store.max_message_size:
        tally.too_large += 1
        progress.note(f"{where}: {size} bytes, over max_message_size: left out")
        return False
    return True


def import_imap(store: MailStore, source: ImapSource, state: ImportState,
                folders: Iterable[str] | None = None) -> Tally:
    tally = Tally()
    wanted = set(folders) if folders else None
    remote = [f for f in source.folders() if wanted is None or f.name in wanted]
    plans: list[tuple[Any, int, int, list[Entry], tuple[int, int]]] = []
    total = 0
    # First the listings (flags, dates, sizes, Message-IDs: small), so the bar knows its total.
    for folder in remote:
        uidvalidity, _ = source.examine(folder)
        folder_id = store.folder_for(folder.name, folder.special_use)
        target = (folder_id, store.uidvalidity(folder_id))
        after = state.last_uid(folder.name, uidvalidity, target)
        entries = source.entries(after)
        present = store.keys(folder_id) if entries else set()
        new = []
        for entry in entries:
            if message_key(entry.message_id, entry.internal_date, entry.size) in present:
                tally.skipped += 1
            else:
                new.append(entry)
        plans.append((folder, uidvalidity, folder_id, new, target))
        tally.folders.append(folder.name)
        total += len(new)
        if entries and not new:
            state.remember(folder.name, uidvalidity, target, entries[-1].uid)
    with Progress(f"import {source.url}", total) as progress:
        for folder, uidvalidity, folder_id, entries, target in plans:
            if not entries:
                continue
            source.examine(folder)

            def written(batch: list[Incoming], folder=folder, uidvalidity=uidvalidity, target=target) -> None:
                tally.copied += len(batch)
                progress.update(len(batch))
                state.remember(folder.name, uidvalidity, target, batch[-1].source_uid)

            batcher = Batcher(store, folder_id, written)
            fitting = [e for e in entries if _fits(store, e.size, tally, progress, f"{folder.name} UID {e.uid}")]
            for entry, data in source.bodies(fitting):
                batcher.add(Incoming(data, entry.flags, entry.internal_date, entry.uid))
            batcher.flush()
            state.remember(folder.name, uidvalidity, target, entries[-1].uid)
    return tally


def import_files(store: MailStore, kind: str, path: str, folders: Iterable[str] | None = None) -> Tally:
    """A Maildir (`kind` "maildir") or an mbox file or directory of them ("mbox")."""
    tally = Tally()
    local: list[LocalFolder] = maildir_folders(path) if kind == "maildir" else mbox_folders(path)
    wanted = set(folders) if folders else None
    reader = read_maildir if kind == "maildir" else read_mbox
    with Progress(f"import from {kind}", None) as progress:
        for folder in local:
            if wanted is not None and folder.name not in wanted:
                continue
            folder_id = store.folder_for(folder.name)
            tally.folders.append(folder.name)
            present = store.keys(folder_id)

            def written(batch: list[Incoming]) -> None:
                tally.copied += len(batch)
                progress.update(len(batch))

            batcher = Batcher(store, folder_id, written)
            for message in reader(folder):
                key = message_key(header_message_id(message.data), message.internal_date, len(message.data))
                if key in present:
                    tally.skipped += 1
                    continue
                if not _fits(store, len(message.data), tally, progress, folder.name):
                    continue
                present.add(key)
                batcher.add(message)
            batcher.flush()
    return tally
