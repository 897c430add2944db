"""saveCalendarItems: many calendar objects (or vCards) saved and deleted in one transaction.

A whole-calendar import sends only what changed; each object is parsed for its
query columns, its blob written (the blobs' fsyncs overlap), and the rows change
together under one modseq. An import too large for one call is staged over several
(see `save_calendar_items`) and still stored in one transaction.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from lxml import etree

from shared import rights as R
from server.soap.context import Call, require, response
from server.soap.items import calendar_object_columns
from server.storage.calendar_batch import CalendarSave
from server.storage.calendar_imports import ImportGone
from shared.codec import add, bool_field, element, field, gw, required_int, text
from shared.errors import BadRequest, TooLarge

log = logging.getLogger(__name__)

# One call saves or deletes at most this many objects.
MAX_CALENDAR_ITEMS_PER_CALL = 5000


def _discard_keys(st: Any, keys: list[str]) -> None:
    for key in keys:
        st.blobs.delete(key)


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
    is staged: calls with <stage> parse the objects and write their blobs, parked in the
    database under an <importId> (server.storage.calendar_imports), so that any store
    process or instance may take the next call; the call that names the import without
    <stage> stores the staged objects and its own in one transaction, so a crash never
    leaves half of it."""
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
    limits = call.services.limits
    max_size, max_staged = limits.max_message_size, limits.max_calendar_import_objects
    user_id = session.user_id
    nonce = session.id.partition(".")[0]
    count = len(objects) + len(delete_names)

    def prepare() -> list[CalendarSave]:
        """The objects parsed and their blobs written, for the caller to store or discard."""
        st = call.storage
        datas = [ical.encode("utf-8", "surrogateescape") for _, ical in objects]
        for (name, _), data in zip(objects, datas):
            if len(data) > max_size:
                raise TooLarge(f"calendar object {name!r} exceeds {max_size} bytes")
        # The blobs are written (and wait for their fsyncs) while the objects are parsed.
        with ThreadPoolExecutor(1) as pool:
            writing = pool.submit(st.blobs.put_many, datas) if datas else None
            try:
                columns = [calendar_object_columns(ical, name) for name, ical in objects]
            except BaseException:
                if writing is not None:
                    _discard(st, writing)
                raise
            keys = writing.result() if writing is not None else []
        return [CalendarSave(name, key, len(data), cols)
                for (name, _), key, data, cols in zip(objects, keys, datas, columns)]

    def end_import(err: BaseException) -> None:
        """An object of the import was refused, or its commit failed: the import is over
        and its staged blobs go (those of a commit that may have happened stay)."""
        if import_id is None or isinstance(err, ImportGone) or not isinstance(err, Exception):
            return
        try:
            call.storage.drop_calendar_import(import_id)
        except Exception:
            log.exception("could not drop calendar import %s; the sweep of stale imports will", import_id)

    def check() -> None:
        """Before any work: no right, an import that is gone, or staging past the bound is
        refused at once, and leaves the import as it is."""
        st = call.storage
        require(st, user_id, folder_id, R.INSERT + (R.DELETE + R.EXPUNGE if delete_names else ""))
        if import_id is not None and not st.calendar_import_exists(import_id, user_id, folder_id):
            raise ImportGone()
        if stage and st.staged_calendar_objects(user_id) + count > max_staged:
            raise TooLarge(f"a calendar import holds at most {max_staged} objects")

    def stage_work() -> str:
        check()
        try:
            saves = prepare()
        except BaseException as err:
            end_import(err)
            raise
        keys = [save.blob_key for save in saves]
        try:
            return call.storage.stage_calendar_objects(
                user_id, folder_id, import_id, nonce, saves, delete_names, delete_if_match, max_staged,
                int(time.time()))
        except (ImportGone, TooLarge):
            # Gone or full meanwhile (another call of the import, in any process): nothing parked.
            _discard_keys(call.storage, keys)
            raise
        except BaseException as err:
            call.storage.discard_unstored(keys, err)
            raise

    def commit_work() -> dict[str, Any]:
        check()
        try:
            saves = prepare()
        except BaseException as err:
            end_import(err)
            raise
        try:
            return call.storage.save_calendar_items(
                folder_id, saves, delete_names, delete_if_match,
                staged=(import_id, user_id) if import_id is not None else None)
        except BaseException as err:
            if isinstance(err, ImportGone):
                _discard_keys(call.storage, [save.blob_key for save in saves])
            else:
                call.storage.discard_unstored([save.blob_key for save in saves], err)
                end_import(err)
            raise

    if stage:
        staged_id = await call.run(stage_work)
        out = response("saveCalendarItems")
        add(out, "deleted", "")
        add(out, "importId", staged_id)
        return out

    result = await call.run(commit_work)
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
