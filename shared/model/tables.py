"""Reading a folder's contents as tables: rows with a column set, a restriction, a sort and
a window in one round trip, single items, and what changed since a modseq."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lxml import etree
from twisted.internet import defer

from shared import codec
from shared.errors import NotFound
from shared.items import CalendarItem, ChangedItems, Changes, Message, item_changes_from_xml
from shared.model.operations import FolderOperations, truthy
from shared.uidset import uid_list

MESSAGE_COLUMNS = ("uid", "modseq", "flags", "keywords", "size", "internalDate")


def _with_uid(columns: Iterable[str]) -> list[str]:
    # Items are made from rows by uid, so every listing asks for it.
    cols = list(columns)
    if "uid" not in cols:
        cols.insert(0, "uid")
    return cols


def _deleted_names(r: etree._Element) -> dict[int, str]:
    """uid -> resource name of the deleted calendar objects in a changes reply."""
    _, names = codec.table_from_xml(r.find(codec.gw("deletedNames")))
    return dict(zip(names.get("uid", []), names.get("name", [])))


class FolderTables(FolderOperations):
    """Table queries on a folder and the Message / CalendarItem objects made from their rows."""

    def query(self, columns: Iterable[str] | str, restriction: Mapping[str, Any] | None = None,
              sort: Iterable[tuple[str, bool]] = (), offset: int = 0,
              limit: int | None = None) -> defer.Deferred:
        """Fires with (total, {column: values}) for any number of rows in one round trip."""
        cols = columns if isinstance(columns, str) else " ".join(columns)
        fields: list[tuple[str, Any]] = [("columns", cols)]
        if restriction:
            fields.append(("restriction", codec.restriction_to_xml(restriction)))
        fields += [("sort", codec.sort_to_xml(sort)), ("offset", offset or None), ("limit", limit)]

        def decode(r: etree._Element) -> tuple[int, dict[str, list[Any]]]:
            _, table = codec.table_from_xml(r.find(codec.gw("table")))
            return codec.int_field(r, "total", 0), table  # type: ignore[return-value]
        return self.call("queryRows", *fields).addCallback(decode)

    def messages(self, columns: Iterable[str] = MESSAGE_COLUMNS, restriction: Mapping[str, Any] | None = None,
                 sort: Iterable[tuple[str, bool]] = (), offset: int = 0,
                 limit: int | None = None) -> defer.Deferred:
        """Like `query`, but fires with (total, [Message | CalendarItem])."""
        return self.query(_with_uid(columns), restriction, sort, offset, limit).addCallback(
            lambda result: (result[0], [self._item(row) for row in codec.rows_of(result[1], len(result[1]["uid"]))]))

    def uids_and_flags(self) -> defer.Deferred:
        """Fires with every item as a Message holding uid, modseq, flags and keywords, by uid."""
        return self.messages(("uid", "modseq", "flags", "keywords"), sort=[("uid", False)]).addCallback(
            lambda result: result[1])

    def _item(self, row: dict[str, Any]) -> Message:
        if self.container_class in ("calendar", "tasks", "journal", "contacts") or (
                row.get("itemClass") or "").startswith(("IPM.Appointment", "IPM.Task", "IPM.Activity", "IPM.Contact")):
            return CalendarItem(self, row)  # type: ignore[arg-type]
        return Message(self, row)  # type: ignore[arg-type]

    def _items_of(self, r: etree._Element) -> list[Message]:
        """The items of the table in a reply, in its order."""
        rows, table = codec.table_from_xml(r.find(codec.gw("table")))
        return [self._item(row) for row in codec.rows_of(table, rows)] if rows else []

    def message(self, uid: int, columns: Iterable[str] | None = None) -> defer.Deferred:
        """Fires with one item (NotFound if absent); `columns` None = the server's default set."""
        fields: list[tuple[str, Any]] = [("uid", uid)]
        if columns is not None:
            fields.append(("columns", " ".join(columns)))

        def decode(r: etree._Element) -> Message:
            rows, table = codec.table_from_xml(r.find(codec.gw("table")))
            if rows != 1:
                raise NotFound(f"no item {uid}")
            row = codec.rows_of(table, 1)[0]
            row.setdefault("uid", uid)
            return self._item(row)
        return self.call("getItem", *fields).addCallback(decode)

    def items_by_name(self, names: Iterable[str], columns: Iterable[str]) -> defer.Deferred:
        """Fires with the items (as `messages` gives them) that have these resource names,
        in uid order; names not there are left out. At most 1000 names per call."""
        return self.call("getItemsByName", ("name", list(names)),
                         ("columns", " ".join(_with_uid(columns)))).addCallback(self._items_of)

    # -- changes since a modseq
    def changes(self, since_modseq: int) -> defer.Deferred:
        """Fires with the Changes since a modseq (flag changes, new items, deletions)."""
        def decode(r: etree._Element) -> Changes:
            return Changes(codec.int_field(r, "highestModseq", 0),  # type: ignore[arg-type]
                           truthy(codec.field(r, "expired")), item_changes_from_xml(r.find(codec.gw("table"))),
                           uid_list(codec.field(r, "deleted")), _deleted_names(r))
        return self.call("getChanges", ("sinceModseq", since_modseq)).addCallback(decode)

    def changed_items(self, since_modseq: int, columns: Iterable[str]) -> defer.Deferred:
        """Fires with the ChangedItems since a modseq: the changed items with `columns`
        (as `messages` gives them) and the deletions, in one round trip."""
        def decode(r: etree._Element) -> ChangedItems:
            return ChangedItems(codec.int_field(r, "highestModseq", 0),  # type: ignore[arg-type]
                                codec.int_field(r, "uidValidity", 0),  # type: ignore[arg-type]
                                truthy(codec.field(r, "expired")), self._items_of(r),
                                uid_list(codec.field(r, "deleted")), _deleted_names(r))
        return self.call("getChangedItems", ("sinceModseq", since_modseq),
                         ("columns", " ".join(_with_uid(columns)))).addCallback(decode)
