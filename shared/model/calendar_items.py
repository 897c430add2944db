"""Calendar objects in a folder: saving and deleting them by resource name with ETag
conditions, in batches for imports, and listing them with their iCalendar text."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lxml import etree
from twisted.internet import defer

from shared import codec
from shared.model.operations import truthy
from shared.model.tables import FolderTables

# save_calendar_items: the server takes at most 5000 objects per call (and stages larger imports).
CALENDAR_BATCH_ITEMS = 2000
CALENDAR_BATCH_BYTES = 4 * 1024 * 1024
CALENDAR_BATCHES_IN_FLIGHT = 2
CALENDAR_COLUMNS = ("uid", "modseq", "name", "etag", "icalUid", "summary", "dtstart", "dtend",
                    "recurring", "itemClass", "size")


class CalendarItems(FolderTables):
    """Appointments and tasks, addressed by their resource names (CalDAV's view)."""

    def save_calendar_item(self, name: str, ical_text: str, if_match: str | None = None,
                           if_none_match: bool = False) -> defer.Deferred:
        """Create or replace the calendar object `name`; fires with {uid, modseq, etag, created}.

        Fails with Conflict when `if_match` does not match or `if_none_match` finds one.
        """
        fields = [("name", name), ("icalendar", ical_text), ("ifMatch", if_match),
                  ("ifNoneMatch", True if if_none_match else None)]
        return self.call("saveCalendarItem", *fields).addCallback(lambda r: {
            "uid": codec.int_field(r, "uid"), "modseq": codec.int_field(r, "modseq"),
            "etag": codec.field(r, "etag"), "created": truthy(codec.field(r, "created"))})

    @defer.inlineCallbacks
    def save_calendar_items(self, objects: Sequence[tuple[str, str]],
                            delete_names: Sequence[str] = ()) -> Any:
        """Create or replace the calendar objects `(name, text)` and delete the objects named
        in `delete_names`, all in one transaction on the server: the folder changes at once or
        not at all, even if the server dies half way. It goes in calls of at most
        `CALENDAR_BATCH_ITEMS` objects and names and about `CALENDAR_BATCH_BYTES` of text; when
        there is more than one, all but the last are staged (parsed and their blobs written,
        `CALENDAR_BATCHES_IN_FLIGHT` at a time) and the last stores everything. Objects not
        named keep their ETags. Fires with {highest_modseq, saved: {name: {uid, etag,
        created}}, deleted: [uid]}; fails with Conflict (reason uidConflict) when a UID would
        be held by two objects, Unavailable when the server lost the staged import (it
        restarted): the caller sends it again."""
        objects, deletes = list(objects), list(delete_names)
        out: dict[str, Any] = {"highest_modseq": self.highest_modseq, "saved": {}, "deleted": []}

        def merge(r: etree._Element) -> None:
            modseq = codec.int_field(r, "highestModseq")
            if modseq is not None and (out["highest_modseq"] is None or modseq > out["highest_modseq"]):
                out["highest_modseq"] = modseq
            for el in r.iterchildren(codec.gw("saved")):
                out["saved"][codec.field(el, "name")] = {
                    "uid": int(el.get("uid", "0")), "etag": codec.field(el, "etag"),
                    "created": truthy(el.get("created"))}
            out["deleted"].extend(int(u) for u in (codec.field(r, "deleted") or "").split())

        def fields(part: tuple[list[tuple[str, str]], list[str]]) -> list[tuple[str, Any]]:
            batch, names = part
            out_fields: list[tuple[str, Any]] = []
            for name, text in batch:
                el = codec.element("item")
                codec.add(el, "name", name)
                codec.add(el, "icalendar", text)
                out_fields.append(("item", el))
            # The schema puts the items before the names to delete.
            return out_fields + [("deleteName", n) for n in names]

        # The names to delete first, then the objects, filling each call up.
        parts: list[tuple[list[tuple[str, str]], list[str]]] = [
            ([], deletes[i:i + CALENDAR_BATCH_ITEMS]) for i in range(0, len(deletes), CALENDAR_BATCH_ITEMS)]
        size = 0
        for obj in objects:
            if not parts or len(parts[-1][0]) + len(parts[-1][1]) >= CALENDAR_BATCH_ITEMS \
                    or size >= CALENDAR_BATCH_BYTES:
                parts.append(([], []))
                size = 0
            parts[-1][0].append(obj)
            size += len(obj[1])
        if not parts:
            return out
        import_id = None
        if len(parts) > 1:
            first = yield self.call("saveCalendarItems", ("stage", True), *fields(parts[0]))
            import_id = codec.field(first, "importId")
            lanes = defer.DeferredSemaphore(CALENDAR_BATCHES_IN_FLIGHT)
            yield defer.gatherResults(
                [lanes.run(self.call, "saveCalendarItems", ("importId", import_id), ("stage", True), *fields(part))
                 for part in parts[1:-1]],
                consumeErrors=True).addErrback(lambda f: f.value.subFailure if f.check(defer.FirstError) else f)
        merge((yield self.call("saveCalendarItems", ("importId", import_id), *fields(parts[-1]))))
        if out["highest_modseq"] is not None:
            self.highest_modseq = out["highest_modseq"]
        return out

    def delete_calendar_item(self, name: str, if_match: str | None = None) -> defer.Deferred:
        """Delete the calendar object `name` in one transaction that also checks `if_match`
        (its ETag, or "*"); fires with the uids deleted ([] when there was none), fails with
        Conflict (reason preconditionFailed) when the condition does not hold."""
        el = codec.element("deleteName")
        codec.add_text(el, name)
        if if_match is not None:
            el.set("ifMatch", if_match)

        def done(r: etree._Element) -> list[int]:
            modseq = codec.int_field(r, "highestModseq")
            if modseq is not None:
                self.highest_modseq = modseq
            return [int(u) for u in (codec.field(r, "deleted") or "").split()]
        return self.call("saveCalendarItems", ("deleteName", el)).addCallback(done)

    def calendar_items(self, restriction: Mapping[str, Any] | None = None,
                       with_text: bool = False) -> defer.Deferred:
        """Fires with [CalendarItem] matching `restriction`, in uid order, in one round trip;
        with `with_text` each carries its iCalendar text (`CalendarItem.text`) when small
        enough to travel inline."""
        columns = list(CALENDAR_COLUMNS) + (["source"] if with_text else [])
        return self.messages(columns, restriction, sort=[("uid", False)]).addCallback(lambda r: r[1])
