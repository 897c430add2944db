"""saveCalendarItems: many calendar objects saved and deleted in one call and one transaction.

A whole-calendar import sends only what changed; each object is parsed for its
query columns, its blob written (the blobs' fsyncs overlap), and the rows change
together under one modseq.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from lxml import etree

from server.icalcolumns import calendar_columns, etag_for
from server.icalsimple import simple_columns
from server.occurrences import occurrence_index
from server.soap.context import Call, require, response
from server.storage.calendar_batch import CalendarSave
from shared.codec import add, element, field, gw, required_int, text
from shared.errors import BadRequest, TooLarge

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
    session = call.session()
    body = call.body
    folder_id = required_int(body, "folderId")
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
    max_size = call.services.limits.max_message_size

    def work() -> dict[str, Any]:
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
        saves = [CalendarSave(name, key, len(data), cols)
                 for (name, _), key, data, cols in zip(objects, keys, datas, columns)]
        try:
            return st.save_calendar_items(folder_id, saves, delete_names, delete_if_match)
        except BaseException:
            for key in keys:
                st.blobs.delete(key)
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
