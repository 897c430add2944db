"""A user's mail folders on the configured storage, as import writes and export reads them.

Folders are named as the IMAP gateway names them (`shared.mailboxnames`: `/` between
levels, the inbox as `INBOX`). A message is recognised as already there by its
Message-ID, internal date and size, the way imapsync tells copies apart, so an import
run again, or resumed after an interruption, copies nothing twice.
"""
from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from server.mime import message_columns
from server.storage import NewMessage
from shared.flags import flag_names, split_flags
from shared.mailboxnames import DELIMITER, mailbox_names, normalize

# Special-use attributes (RFC 6154) and the store's roles.
SPECIAL_USE_ROLES = {"\\sent": "sent", "\\drafts": "drafts", "\\trash": "trash", "\\junk": "junk",
                     "\\archive": "archive"}
# Names other servers give those folders, when they do not say their special use.
ROLE_NAMES = {"sent": "sent", "sent items": "sent", "sent messages": "sent", "gesendet": "sent",
              "drafts": "drafts", "entwürfe": "drafts", "trash": "trash", "deleted items": "trash",
              "deleted messages": "trash", "papierkorb": "trash", "junk": "junk", "spam": "junk",
              "junk e-mail": "junk", "archive": "archive", "archiv": "archive"}
# A batch is one transaction: this many messages or this many bytes, whichever comes first.
BATCH_MESSAGES = 200
BATCH_BYTES = 16 * 1024 * 1024

MessageKey = tuple[str, int, int]


def message_key(message_id: str | None, internal_date: int, size: int) -> MessageKey:
    return ((message_id or "").strip(), int(internal_date), int(size))


def header_message_id(data: bytes) -> str | None:
    """The Message-ID as the store's parser reads it from the message's header."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        end = data.find(b"\n\n")
    head = data if end < 0 else data[:end + 2]
    return message_columns(io.BytesIO(head)).get("messageId")


@dataclass
class Incoming:
    """One message to import: its bytes, IMAP flag names (keywords included), internal date."""
    data: bytes
    flags: Sequence[str]
    internal_date: int
    source_uid: int = 0  # the UID on an IMAP source, for resuming


class MailStore:
    """The mail folders of one user's private store."""

    def __init__(self, storage: Any, user: dict, max_message_size: int,
                 changed: Callable[[int, int], None] = lambda folder_id, modseq: None) -> None:
        self.storage = storage
        self.changed = changed
        self.store_id = user["store_id"]
        self.max_message_size = max_message_size
        self.refresh()

    def refresh(self) -> None:
        rows = self.storage.list_folders(self.store_id, counts=False)
        self.rows = rows
        self.by_name = mailbox_names(SimpleNamespace(**row) for row in rows)

    # -- folders ----------------------------------------------------------
    def mail_folders(self) -> list[tuple[str, dict]]:
        """(IMAP name, folder row) of every mail folder, parents before children."""
        return sorted(((name, vars(f)) for name, f in self.by_name.items()),
                      key=lambda pair: (pair[0] != "INBOX", pair[0].split(DELIMITER)))

    def folders_of(self, container_class: str) -> list[dict]:
        return [row for row in self.rows if row["container_class"] == container_class]

    def role_folder(self, role: str) -> dict | None:
        return next((row for row in self.rows if row["role"] == role
                     and row["container_class"] == "mail"), None)

    def folder_for(self, name: str, special_use: Sequence[str] = ()) -> int:
        """The id of the mail folder `name` (levels joined by `/`), created with its parents
        when missing. A top-level folder the source marks as Sent, Trash... (or names so)
        lands in the store's folder of that role."""
        name = normalize(name)
        found = self.by_name.get(name)
        if found is not None:
            return found.id
        if DELIMITER not in name:
            role = next((SPECIAL_USE_ROLES[a.lower()] for a in special_use if a.lower() in SPECIAL_USE_ROLES),
                        None) or ROLE_NAMES.get(name.lower())
            row = self.role_folder(role) if role else None
            if row is not None:
                return row["id"]
        parent_id = None
        path = ""
        for level in name.split(DELIMITER):
            path = f"{path}{DELIMITER}{level}" if path else level
            existing = self.by_name.get(normalize(path))
            if existing is None:
                created = self.storage.create_folder(self.store_id, parent_id, level, "mail")
                self.refresh()
                parent_id = created["id"] if isinstance(created, dict) else created
            else:
                parent_id = existing.id
        return parent_id

    # -- reading ----------------------------------------------------------
    def keys(self, folder_id: int) -> set[MessageKey]:
        _, rows = self.storage.query_items(folder_id, ["messageId", "internalDate", "size"])
        return {message_key(m, d, s) for m, d, s in zip(rows["messageId"], rows["internalDate"], rows["size"])}

    def messages(self, folder_id: int, after_uid: int = 0) -> Iterator[dict]:
        """Every message of a folder in uid order: uid, flags (IMAP names), internalDate,
        size and its bytes, read one at a time."""
        _, rows = self.storage.query_items(folder_id, ["uid", "flags", "keywords", "internalDate", "size",
                                                       "blob_key"])
        for uid, bits, keywords, date, size, key in zip(rows["uid"], rows["flags"], rows["keywords"],
                                                        rows["internalDate"], rows["size"], rows["blob_key"]):
            if uid <= after_uid:
                continue
            with self.storage.blobs.open(key) as fp:
                data = fp.read()
            yield {"uid": uid, "flags": flag_names(bits or 0, (keywords or "").split()),
                   "internalDate": int(date), "size": int(size), "data": data}

    def uidvalidity(self, folder_id: int) -> int:
        return int(self.storage.get_folder(folder_id)["uidvalidity"])

    # -- writing ----------------------------------------------------------
    def append(self, folder_id: int, batch: Sequence[Incoming]) -> None:
        """Store `batch` in one transaction, in order; nothing of it if that fails."""
        if not batch:
            return
        datas = [m.data for m in batch]
        keys = self.storage.blobs.put_many(datas)
        try:
            stored = []
            for m, key in zip(batch, keys):
                bits, keywords = split_flags(f for f in m.flags if f.lower() != "\\recent")
                stored.append(NewMessage(key, len(m.data), m.internal_date, bits, tuple(keywords),
                                         message_columns(io.BytesIO(m.data))))
            result = self.storage.create_messages(folder_id, stored)
        except BaseException as error:
            self.storage.discard_unstored(keys, error)
            raise
        self.changed(folder_id, result["modseq"])


class Batcher:
    """Collects messages for MailStore.append and writes them in batches; `written` is
    called with each batch after its commit."""

    def __init__(self, store: MailStore, folder_id: int, written=lambda batch: None) -> None:
        self.store, self.folder_id, self.written = store, folder_id, written
        self.batch: list[Incoming] = []
        self.size = 0

    def add(self, message: Incoming) -> None:
        self.batch.append(message)
        self.size += len(message.data)
        if len(self.batch) >= BATCH_MESSAGES or self.size >= BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        batch, self.batch, self.size = self.batch, [], 0
        if batch:
            self.store.append(self.folder_id, batch)
            self.written(batch)
