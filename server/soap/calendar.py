"""saveCalendarItems: many calendar objects saved and deleted in one transaction.

A whole-calendar import sends only what changed; each object is parsed for its
query columns, its blob written (the blobs' fsyncs overlap), and the rows change
together under one modseq. An import too large for one call is staged over several
(see `save_calendar_items`) and still stored in one transaction.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from lxml import etree

from server.icalcolumns import calendar_columns, etag_for
from server.icalsimple import simple_columns
from server.occurrences import occurrence_index
from server.soap.context import Call, require, response
from server.sessions import StagedImport
from server.storage.calendar_batch import CalendarSave
from shared.codec import add, bool_field, element, field, gw, required_int, text
from shared.errors import BadRequest, TooLarge, Unavailable

# One call saves or deletes at most this many objects.
MAX_CALENDAR_ITEMS_PER_CALL = 5000


def _columns(name: str, ical: str) -> dict[str, Any]:
    simple = simple_columns(ical, etag_for(ical))
    if simple is not None:
        return simple
    try:
        columns = calendar_columns(ical)
    except BadRequest as err:
        raise BadRequest(f"{name}: {err.message}") from None
    if columns["recurring"]:
        kind = "VTODO" if columns["itemClass"] == "IPM.Task" else "VEVENT"
        columns["occurrences"], columns["occurrencesUntil"] = occurrence_index(ical, kind, columns["dtend"])
    return columns


def _discard(st: Any, writing: Future) -> None:
    """Delete the blobs of a write that is no longer wanted, once it is done."""
    try:
        keys = writing.result()
    except Exception:
        return  # put_many cleans up after itself
    for key in keys:
        st.blobs.delete(key)


async def save_calendar_items(call: Call) -> etree._Element:
    """Save and delete calendar objects in one transaction. An import larger than one call
    is staged: calls with <stage> parse the objects and write their blobs, parked under an
    <importId> in the session; the call that names the import without <stage> stores the
    staged objects and its own in one transaction, so a crash never leaves half of it."""
    session = call.session()
    body = call.body
    folder_id = required_int(body, "folderId")
    import_id = field(body, "importId")
    stage = bool_field(body, "stage")
    objects: list[tuple[str, str]] = []
    for el in body.iterchildren(gw("item")):
        name, ical = field(el, "name"), field(el, "icalendar")
        if name is None or ical is None:
            raise BadRequest("an <item> needs <name> and <icalendar>")
        objects.append((name, ical))
    delete_names: list[str] = []
    delete_if_match: dict[str, str] = {}
    for el in body.iterchildren(gw("deleteName")):
        delete_names.append(text(el) or "")
        if el.get("ifMatch") is not None:
            delete_if_match[delete_names[-1]] = el.get("ifMatch")
    if len(objects) + len(delete_names) > MAX_CALENDAR_ITEMS_PER_CALL:
        raise BadRequest(f"at most {MAX_CALENDAR_ITEMS_PER_CALL} objects per call")
    sessions = call.services.sessions
    if import_id is not None:
        sessions.staged_import(session, import_id, folder_id)  # gone: Unavailable before any work
    if stage:
        sessions.check_staging(session, len(objects) + len(delete_names))
    max_size = call.services.limits.max_message_size

    def prepare() -> list[CalendarSave]:
        """The objects parsed and their blobs written, for the caller to store or discard."""
        st = call.storage
        require(st, session.user_id, folder_id, "write")
        datas = [ical.encode("utf-8", "surrogateescape") for _, ical in objects]
        for (name, _), data in zip(objects, datas):
            if len(data) > max_size:
                raise TooLarge(f"calendar object {name!r} exceeds {max_size} bytes")
        # The blobs are written (and wait for their fsyncs) while the objects are parsed.
        with ThreadPoolExecutor(1) as pool:
            writing = pool.submit(st.blobs.put_many, datas) if datas else None
            try:
                columns = [_columns(name, ical) for name, ical in objects]
            except BaseException:
                if writing is not None:
                    _discard(st, writing)
                raise
            keys = writing.result() if writing is not None else []
        return [CalendarSave(name, key, len(data), cols)
                for (name, _), key, data, cols in zip(objects, keys, datas, columns)]

    def delete_blobs(keys: list[str]) -> None:
        for key in keys:
            call.storage.blobs.delete(key)

    if stage:
        try:
            saves = await call.run(prepare)
        except BaseException:
            # An object of the import is refused: the import is over, its blobs go.
            dropped = sessions.take_import(session, import_id) if import_id is not None else None
            if dropped is not None and dropped.saves:
                await call.run(delete_blobs, dropped.blob_keys())
            raise
        try:
            if import_id is None:
                import_id, staged = sessions.new_import(session, folder_id)
            else:
                staged = sessions.staged_import(session, import_id, folder_id)
        except Unavailable:  # committed or dropped meanwhile
            await call.run(delete_blobs, [save.blob_key for save in saves])
            raise
        staged.saves.extend(saves)
        staged.delete_names.extend(delete_names)
        staged.delete_if_match.update(delete_if_match)
        out = response("saveCalendarItems")
        add(out, "deleted", "")
        add(out, "importId", import_id)
        return out

    staged = sessions.take_import(session, import_id) if import_id is not None else None
    if staged is None:
        staged = StagedImport(folder_id)

    def work() -> dict[str, Any]:
        try:
            saves = prepare()
        except BaseException:
            delete_blobs(staged.blob_keys())
            raise
        try:
            return call.storage.save_calendar_items(
                folder_id, staged.saves + saves, staged.delete_names + delete_names,
                {**staged.delete_if_match, **delete_if_match})
        except BaseException as err:
            call.storage.discard_unstored(staged.blob_keys() + [save.blob_key for save in saves], err)
            raise

    result = await call.run(work)
    if result["saved"] or result["deleted"]:
        call.services.notifier.changed(folder_id, result["modseq"])
    out = response("saveCalendarItems")
    add(out, "highestModseq", result["modseq"])
    for saved in result["saved"]:
        el = element("saved", uid=str(saved["uid"]), created="true" if saved["created"] else "false")
        add(el, "name", saved["name"])
        add(el, "etag", saved["etag"])
        out.append(el)
    add(out, "deleted", " ".join(str(u) for u in result["deleted"]))
    return out
