"""createMessage(s), saveCalendarItem, setFlags, copyItems, moveItems, deleteItems.

Every write reports the folder's new modseq to the notifier after the
storage call returned, i.e. after its transaction committed.
"""
from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from lxml import etree

from server.icalcolumns import calendar_columns, component_of, etag_for
from server.icalsimple import simple_columns
from server.occurrences import occurrence_index
from server.vcardcolumns import contact_columns
from server.mime import message_columns
from server.mime.preview import preview
from server.storage import NewMessage
from shared import rights as R
from server.soap.context import Call, require, response
from shared.uidset import format_uidset
from shared.codec import add, bool_field, bytes_field, element, field, gw, int_field, required, \
    required_int, table_to_xml
from shared.errors import BadRequest, TooLarge
from shared.flags import flag_names, split_flags

FLAG_MODES = frozenset({"add", "remove", "replace"})


def flag_rights(mode: str, flags: int, keywords: list[str]) -> str:
    """The letters a flag change needs (RFC 4314 §4): s for \\Seen, t for \\Deleted, w for the
    others; replacing may clear any flag, so it needs all three."""
    if mode == "replace":
        return R.SEEN + R.WRITE + R.DELETE
    return R.for_flags(flag_names(flags, keywords))


def parse_flags(text: str | None) -> tuple[int, list[str]]:
    try:
        return split_flags((text or "").split())
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def discard_file(path: str | None) -> None:
    if path is None:
        return
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# One createMessages call stores at most this many messages (MULTIAPPEND, imports).
MAX_MESSAGES_PER_CALL = 1000
# store_blobs: uploads renamed in and fsynced at once (the file system commits them together),
# by threads kept between calls.
_UPLOAD_WRITERS = ThreadPoolExecutor(16, thread_name_prefix="upload-writer")


@dataclass
class IncomingMessage:
    """A message as the request gave it: inline bytes or a spooled upload this call now owns."""
    source: bytes | None
    path: str | None
    flags: int
    keywords: list[str]
    internal_date: int


def incoming_message(call: Call, session: Any, el: etree._Element) -> IncomingMessage:
    source = bytes_field(el, "source")
    upload_id = field(el, "uploadId")
    if (source is None) == (upload_id is None):
        raise BadRequest("give exactly one of <source> and <uploadId>")
    flags, keywords = parse_flags(field(el, "flags"))
    internal_date = int_field(el, "internalDate", int(time.time()))
    path = call.services.sessions.take_upload(session, upload_id) if upload_id else None
    return IncomingMessage(source, path, flags, keywords, internal_date)


def stored_preview(fp: Any) -> str | None:
    """The PREVIEW column of a message just parsed from `fp`; None when it cannot be made
    (the message is stored all the same)."""
    try:
        fp.seek(0)
        return preview(fp)
    except Exception:  # noqa: BLE001  (whatever a hostile message triggers)
        return None


def store_blob(st: Any, m: IncomingMessage, max_size: int) -> NewMessage:
    """Write the message's blob and parse its listing columns (in the thread pool)."""
    size = len(m.source) if m.source is not None else os.path.getsize(m.path)
    if size > max_size:
        raise TooLarge(f"message exceeds {max_size} bytes")
    if m.source is not None:
        fp: Any = io.BytesIO(m.source)
        columns = message_columns(fp)
        columns["preview"] = stored_preview(fp)
        key = st.blobs.put_bytes(m.source)
    else:
        with open(m.path, "rb") as fp:
            columns = message_columns(fp)
            columns["preview"] = stored_preview(fp)
        key = st.blobs.put_file(m.path)
    return NewMessage(key, size, m.internal_date, m.flags, tuple(m.keywords), columns)


def store_blobs(st: Any, incoming: list[IncomingMessage], max_size: int) -> list[NewMessage | Exception]:
    """store_blob for several messages (in the thread pool), written and fsynced side by side
    rather than one after another: inline sources in one put_many, uploads each in a thread
    of its own. Per message its NewMessage or what went wrong with it. The caller still owns
    (and discards) the upload files."""
    def one(m: IncomingMessage) -> NewMessage | Exception:
        try:
            return store_blob(st, m, max_size)
        except Exception as err:  # noqa: BLE001 - this message's answer
            return err

    if len(incoming) == 1:
        return [one(incoming[0])]
    results: list[NewMessage | Exception] = [TooLarge("not stored")] * len(incoming)
    columns: dict[int, dict] = {}  # inline message -> its listing columns
    for i, m in enumerate(incoming):
        if m.source is None:
            continue
        try:
            if len(m.source) > max_size:
                raise TooLarge(f"message exceeds {max_size} bytes")
            columns[i] = message_columns(io.BytesIO(m.source))
        except Exception as err:  # noqa: BLE001 - this message's answer
            results[i] = err
    uploads = [i for i, m in enumerate(incoming) if m.source is None]
    # The uploads are renamed into the blob store and fsynced while the inline ones are written.
    pending = [(i, _UPLOAD_WRITERS.submit(one, incoming[i])) for i in uploads]
    if columns:
        inline = sorted(columns)
        try:
            keys: list[Any] = st.blobs.put_many([incoming[i].source for i in inline])
        except Exception as err:  # noqa: BLE001 - the answer of every message of the write
            keys = [err] * len(inline)
        for i, key in zip(inline, keys):
            m = incoming[i]
            results[i] = key if isinstance(key, Exception) else NewMessage(
                key, len(m.source), m.internal_date, m.flags, tuple(m.keywords), columns[i])
    for i, future in pending:
        results[i] = future.result()
    return results


async def _create(call: Call, folder_id: int, elements: list[etree._Element]) -> tuple[dict, list[int]]:
    """Store messages in one transaction; fires with the storage result and the sizes."""
    session = call.session()
    incoming: list[IncomingMessage] = []
    try:
        for el in elements:
            incoming.append(incoming_message(call, session, el))
    except BaseException:
        for m in incoming:
            discard_file(m.path)
        raise
    max_size = call.services.limits.max_message_size

    def work() -> tuple[dict, list[int]]:
        st = call.storage
        stored: list[NewMessage] = []
        try:
            require(st, session.user_id, folder_id, R.INSERT)
            for m in incoming:
                stored.append(store_blob(st, m, max_size))
            return (st.create_messages(folder_id, stored, reader=st.seen_reader(session.user_id, folder_id)),
                    [n.size for n in stored])
        except BaseException as err:
            st.discard_unstored([n.blob_key for n in stored], err)
            raise
        finally:
            for m in incoming:
                discard_file(m.path)

    result, sizes = await call.run(work)
    call.services.notifier.changed(folder_id, result["modseq"])
    return result, sizes


async def create_message(call: Call) -> etree._Element:
    result, sizes = await _create(call, required_int(call.body, "folderId"), [call.body])
    out = response("createMessage")
    add(out, "uid", result["uids"][0])
    add(out, "modseq", result["modseq"])
    add(out, "size", sizes[0])
    add(out, "uidValidity", result["uidvalidity"])
    return out


async def create_messages(call: Call) -> etree._Element:
    """Several messages in one call and one transaction; the uids come back in request order."""
    folder_id = required_int(call.body, "folderId")
    elements = list(call.body.iterchildren(gw("message")))
    if not elements:
        raise BadRequest("no <message> given")
    if len(elements) > MAX_MESSAGES_PER_CALL:
        raise BadRequest(f"at most {MAX_MESSAGES_PER_CALL} messages per call")
    result, sizes = await _create(call, folder_id, elements)
    out = response("createMessages")
    add(out, "uidValidity", result["uidvalidity"])
    add(out, "highestModseq", result["modseq"])
    for uid, size in zip(result["uids"], sizes):
        out.append(element("created", uid=str(uid), size=str(size)))
    return out


def calendar_object_columns(ical: str, name: str | None = None) -> dict[str, Any]:
    """The query columns of one calendar object (or a vCard in a whole address book), with
    its occurrence index when it recurs; errors name the object when `name` is given."""
    try:
        if ical.lstrip()[:11].upper() == "BEGIN:VCARD":
            return contact_columns(ical)
        simple = simple_columns(ical, etag_for(ical))
        if simple is not None:
            return simple
        columns = calendar_columns(ical)
    except BadRequest as err:
        if name is None:
            raise
        raise BadRequest(f"{name}: {err.message}") from None
    if columns["recurring"]:
        kind = component_of(columns["itemClass"])
        columns["occurrences"], columns["occurrencesUntil"] = occurrence_index(ical, kind, columns["dtend"])
    return columns


async def save_calendar_item(call: Call) -> etree._Element:
    return await save_text_item(call, "saveCalendarItem", "icalendar", "calendar object", calendar_object_columns)


def store_text_object(st: Any, folder_id: int, name: str, source: str, columns: dict[str, Any], max_size: int,
                      what: str = "calendar object", if_match: str | None = None,
                      if_none_match: bool = False) -> dict[str, Any]:
    """Keep one text object (in a storage thread): its blob, then its row by resource name."""
    data = source.encode("utf-8", "surrogateescape")
    if len(data) > max_size:
        raise TooLarge(f"{what} exceeds {max_size} bytes")
    key = st.blobs.put_bytes(data)
    try:
        return st.save_calendar_item(folder_id, name, key, len(data), columns,
                                     if_match=if_match, if_none_match=if_none_match)
    except BaseException as err:
        st.discard_unstored([key], err)
        raise


async def save_text_item(call: Call, op: str, text_field: str, what: str,
                         columns_of: Callable[[str], dict[str, Any]]) -> etree._Element:
    """One text object (a calendar object, a vCard) created or replaced by resource name:
    kept whole in the blob store as sent, its query columns beside it in the items table."""
    session = call.session()
    body = call.body
    folder_id = required_int(body, "folderId")
    name = required(body, "name")
    source = required(body, text_field)
    if_match = field(body, "ifMatch") or None
    if_none_match = bool_field(body, "ifNoneMatch")
    max_size = call.services.limits.max_message_size

    def work() -> dict[str, Any]:
        st = call.storage
        require(st, session.user_id, folder_id, R.INSERT)
        if len(source.encode("utf-8", "surrogateescape")) > max_size:
            raise TooLarge(f"{what} exceeds {max_size} bytes")
        return store_text_object(st, folder_id, name, source, columns_of(source), max_size, what,
                                 if_match, if_none_match)

    result = await call.run(work)
    call.services.notifier.changed(folder_id, result["modseq"])
    out = response(op)
    add(out, "uid", result["uid"])
    add(out, "modseq", result["modseq"])
    add(out, "etag", result["etag"])
    add(out, "created", bool(result["created"]))
    return out


def changes_table(rows: list[tuple[int, int, int, Any]]) -> etree._Element:
    """uid/modseq/flags/keywords of changed items as a table."""
    table: dict[str, list[Any]] = {"uid": [], "modseq": [], "flags": [], "keywords": []}
    for uid, modseq, flags, keywords in rows:
        table["uid"].append(uid)
        table["modseq"].append(modseq)
        table["flags"].append(flags)
        table["keywords"].append(keywords if isinstance(keywords, str) else " ".join(keywords or ()))
    return table_to_xml(table, len(rows))


async def set_flags(call: Call) -> etree._Element:
    session = call.session()
    body = call.body
    folder_id = required_int(body, "folderId")
    uids = required(body, "uids")
    mode = required(body, "mode")
    if mode not in FLAG_MODES:
        raise BadRequest("mode must be add, remove or replace")
    flags, keywords = parse_flags(field(body, "flags"))
    unchanged_since = int_field(body, "unchangedSince")

    def work() -> dict[str, Any]:
        require(call.storage, session.user_id, folder_id, flag_rights(mode, flags, keywords))
        return call.storage.set_flags(folder_id, uids, mode, flags, keywords, unchanged_since,
                                      reader=call.storage.seen_reader(session.user_id, folder_id))

    result = await call.run(work)
    if result["changed"]:
        call.services.notifier.changed(folder_id, result["modseq"])
    out = response("setFlags")
    add(out, "highestModseq", result["modseq"])
    out.append(changes_table(result["changed"]))
    add(out, "failed", format_uidset(result["failed"]))
    return out


async def _transfer(call: Call, op: str) -> etree._Element:
    session = call.session()
    body = call.body
    folder_id = required_int(body, "folderId")
    uids = required(body, "uids")
    target_id = required_int(body, "targetFolderId")
    moving = op == "moveItems"

    def work() -> tuple[dict[str, Any], int]:
        st = call.storage
        require(st, session.user_id, folder_id, R.READ + R.MOVE_OUT if moving else R.READ)
        require(st, session.user_id, target_id, R.INSERT)
        if moving:
            result = st.move_items(folder_id, uids, target_id)
        else:
            result = st.copy_items(folder_id, uids, target_id)
        return result, st.get_folder(target_id)["uidvalidity"]

    result, uidvalidity = await call.run(work)
    if result["pairs"]:
        call.services.notifier.changed(target_id, result["modseq"])
        if moving:
            call.services.notifier.changed(folder_id, result["source_modseq"])
    out = response(op)
    add(out, "highestModseq", result["modseq"])
    add(out, "uidValidity", uidvalidity)
    for src, dst in result["pairs"]:
        out.append(element("pair", src=str(src), dst=str(dst)))
    return out


async def copy_items(call: Call) -> etree._Element:
    return await _transfer(call, "copyItems")


async def move_items(call: Call) -> etree._Element:
    return await _transfer(call, "moveItems")


async def delete_items(call: Call) -> etree._Element:
    session = call.session()
    folder_id = required_int(call.body, "folderId")
    uids = required(call.body, "uids")

    def work() -> dict[str, Any]:
        require(call.storage, session.user_id, folder_id, R.DELETE + R.EXPUNGE)
        return call.storage.delete_items(folder_id, uids)

    result = await call.run(work)
    if result["deleted"]:
        call.services.notifier.changed(folder_id, result["modseq"])
    out = response("deleteItems")
    add(out, "highestModseq", result["modseq"])
    add(out, "deleted", format_uidset(result["deleted"]))
    return out
