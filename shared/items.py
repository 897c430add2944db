"""Value objects the adapter hands to gateways: messages, calendar items and call results."""
from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from lxml import etree
from twisted.internet import defer

from shared import codec
from shared.errors import NotFound
from shared.flags import flag_names

if TYPE_CHECKING:
    from shared.model import Folder

_G = "{%s}" % codec.NS


@dataclass
class ItemChange:
    uid: int
    modseq: int
    flags: list[str]


def item_changes_from_xml(table_el: etree._Element | None) -> list[ItemChange]:
    """The ItemChange rows of a reply's table (uid, modseq, flags, keywords)."""
    rows, table = codec.table_from_xml(table_el)
    if not rows:
        return []
    uids, modseqs = table.get("uid", []), table.get("modseq", [None] * rows)
    bits, keywords = table.get("flags", [0] * rows), table.get("keywords", [None] * rows)
    return [ItemChange(u, m, flag_names(b or 0, (k or "").split())) for u, m, b, k in zip(uids, modseqs, bits, keywords)]


@dataclass
class FlagResult:
    highest_modseq: int | None
    changed: list[ItemChange]
    failed: list[int]


@dataclass
class Changes:
    highest_modseq: int
    expired: bool
    changed: list[ItemChange]
    deleted: list[int]
    # uid -> resource name of deleted calendar objects
    deleted_names: dict[int, str] = field(default_factory=dict)


@dataclass
class ChangedItems:
    """A folder's changes since a modseq with the changed items themselves (getChangedItems)."""
    highest_modseq: int
    uid_validity: int
    expired: bool
    items: list[Any]  # Message or CalendarItem, in uid order
    deleted: list[int]
    # uid -> resource name of deleted calendar objects
    deleted_names: dict[int, str] = field(default_factory=dict)


class UidPairs(list):
    """[(source uid, new uid)], plus the target's highestModseq and uidValidity (for COPYUID)."""
    highest_modseq: int | None = None
    uid_validity: int | None = None


class Message:
    """One item as listed: the row's columns, with typed accessors for the common ones."""

    def __init__(self, folder: Folder, row: Mapping[str, Any]) -> None:
        self.folder = folder
        self.row = dict(row)
        self.uid: int = self.row["uid"]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.folder.id}/{self.uid}>"

    def __getitem__(self, column: str) -> Any:
        return self.row[column]

    def get(self, column: str, default: Any = None) -> Any:
        return self.row.get(column, default)

    @property
    def modseq(self) -> int | None:
        return self.row.get("modseq")

    @property
    def size(self) -> int | None:
        return self.row.get("size")

    @property
    def internal_date(self) -> int | None:
        return self.row.get("internalDate")

    @property
    def flag_bits(self) -> int:
        return self.row.get("flags") or 0

    @property
    def keywords(self) -> list[str]:
        return (self.row.get("keywords") or "").split()

    @property
    def flags(self) -> list[str]:
        """System flags and keywords by name (`\\Seen`, `$Junk`)."""
        return flag_names(self.flag_bits, self.keywords)

    @property
    def subject(self) -> str | None:
        return self.row.get("subject")

    @cached_property
    def envelope(self) -> Any:
        """The cached IMAP ENVELOPE as parsed JSON (parsed on first use)."""
        text = self.row.get("envelope")
        return None if text is None else json.loads(text)

    @cached_property
    def bodystructure(self) -> Any:
        text = self.row.get("bodystructure")
        return None if text is None else json.loads(text)

    def read(self, consumer: Any, start: int | None = None, end: int | None = None) -> defer.Deferred:
        """Stream the source (or `[start:end]` of it) to an IConsumer or a callback.

        Fires with the number of bytes delivered; the consumer's pauses reach the socket.
        """
        def go(href_size: tuple[str, int]) -> defer.Deferred:
            return self.folder.stream(href_size[0], consumer, start, end)
        return self.folder.open_stream(self.uid).addCallback(go)

    def source(self) -> defer.Deferred:
        """The whole source as bytes; for small items (larger ones are streamed into memory)."""
        limit = self.folder.session.adapter.inline_limit
        size = self.row.get("size")
        if size is not None and size <= limit:
            def decode(r: etree._Element) -> bytes:
                rows, table = codec.table_from_xml(r.find(_G + "table"))
                if rows != 1 or table.get("source", [None])[0] is None:
                    raise NotFound(f"no source for item {self.uid}")
                return base64.b64decode(table["source"][0])
            return self.folder.call("getItem", ("uid", self.uid), ("columns", "uid source")).addCallback(decode)
        parts: list[bytes] = []
        return self.read(parts.append).addCallback(lambda _: b"".join(parts))


class CalendarItem(Message):
    """An appointment or task: its iCalendar text lives in the source."""

    @property
    def name(self) -> str | None:
        return self.row.get("name")

    @property
    def etag(self) -> str | None:
        return self.row.get("etag")

    @property
    def ical_uid(self) -> str | None:
        return self.row.get("icalUid")

    @property
    def summary(self) -> str | None:
        return self.row.get("summary")

    @property
    def dtstart(self) -> int | None:
        return self.row.get("dtstart")

    @property
    def dtend(self) -> int | None:
        return self.row.get("dtend")

    @property
    def recurring(self) -> bool:
        return bool(self.row.get("recurring"))

    @property
    def text(self) -> str | None:
        """The iCalendar text when it was listed with the "source" column (None: not inline)."""
        source = self.row.get("source")
        return None if source is None else base64.b64decode(source).decode("utf-8")

    def ical(self) -> defer.Deferred:
        """Fires with the iCalendar text."""
        return self.source().addCallback(lambda data: data.decode("utf-8"))


