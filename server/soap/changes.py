"""getChanges and waitForChanges: incremental sync and push."""
from __future__ import annotations

from typing import Any

from lxml import etree
from twisted.internet.defer import CancelledError

from shared import rights as R
from server.soap.context import Call, require, response
from shared.uidset import format_uidset
from server.soap.tables import Columns, read_consistently
from shared.codec import add, element, envelope, gw, int_field, required_int, table_to_xml
from shared.errors import BadRequest

# One long poll watching more folders than this is not a mail client.
MAX_WATCHES = 10000


async def get_changes(call: Call) -> bytes:
    session = call.session()
    folder_id = required_int(call.body, "folderId")
    since = required_int(call.body, "sinceModseq")

    def work() -> bytes:
        require(call.storage, session.user_id, folder_id, R.READ)
        result = call.storage.get_changes(folder_id, since,
                                          reader=call.storage.seen_reader(session.user_id, folder_id))
        changed = result["changed"]
        return _change_answer("getChanges", result, changed, len(changed.get("uid", ())))

    return await call.run(work)


async def get_changed_items(call: Call) -> bytes:
    """A sync answer in one round trip: what getChanges tells, plus the changed items'
    `columns` (as queryRows gives them, "source" inline when small enough)."""
    session = call.session()
    folder_id = required_int(call.body, "folderId")
    since = required_int(call.body, "sinceModseq")
    columns = Columns(call)

    def work() -> bytes:
        st = call.storage
        require(st, session.user_id, folder_id, R.READ)

        def read() -> tuple[dict[str, Any], dict]:
            result = st.changed_items(folder_id, since, columns.stored,
                                      reader=st.seen_reader(session.user_id, folder_id))
            return result, columns.answer(st, result["changed"])
        result, table = read_consistently(read)
        return _change_answer("getChangedItems", result, table, len(table[columns.requested[0]]),
                              uid_validity=result["uidvalidity"])

    return await call.run(work)


def _change_answer(op: str, result: dict[str, Any], changed: dict, rows: int,
                   uid_validity: int | None = None) -> bytes:
    """The answer both sync calls give: the folder's modseq, whether `since` was too old,
    the changed items' table and what was deleted."""
    out = response(op)
    add(out, "highestModseq", result["highestmodseq"])
    if uid_validity is not None:
        add(out, "uidValidity", uid_validity)
    add(out, "expired", bool(result["expired"]))
    out.append(table_to_xml(changed, rows))
    add(out, "deleted", format_uidset(result["deleted"]))
    names = result.get("deleted_names")
    if names:
        # Named items (calendar objects) that went: CalDAV sync reports them by name.
        gone = table_to_xml({"uid": list(names), "name": list(names.values())}, len(names))
        gone.tag = gw("deletedNames")
        out.append(gone)
    return envelope(out)


def _watches(body: etree._Element) -> dict[int, int]:
    watches: dict[int, int] = {}
    for el in body.iterchildren(gw("watch")):
        try:
            watches[int(el.get("folderId", ""))] = int(el.get("modseq", ""))
        except ValueError:
            raise BadRequest("watch needs integer folderId and modseq") from None
        if len(watches) > MAX_WATCHES:
            raise BadRequest(f"at most {MAX_WATCHES} folders per watch")
    return watches


def _answer(changes: list[tuple[int, int]]) -> etree._Element:
    out = response("waitForChanges")
    for folder_id, modseq in sorted(changes):
        out.append(element("changed", folderId=str(folder_id), modseq=str(modseq)))
    return out


async def wait_for_changes(call: Call) -> etree._Element:
    session = call.session()
    watches = _watches(call.body)
    notifier = call.services.notifier
    timeout = int_field(call.body, "timeout", 0)
    if timeout < 0:
        raise BadRequest("timeout must not be negative")
    # Listen before looking: a commit landing between the look and the
    # listen would otherwise be missed until the timeout.
    waiting = notifier.wait(watches, timeout)

    def current() -> dict[int, int]:
        for folder_id in watches:
            require(call.storage, session.user_id, folder_id, R.READ)
        return call.storage.highest_modseqs(list(watches))

    try:
        highest: dict[int, Any] = await call.run(current)
    except BaseException:
        _drop(waiting)
        raise
    already = [(fid, modseq) for fid, modseq in highest.items()
               if modseq is not None and modseq > watches.get(fid, modseq)]
    if already:
        _drop(waiting)
        return _answer(already)
    return _answer(await waiting)


def _drop(waiting: Any) -> None:
    waiting.addErrback(lambda failure: failure.trap(CancelledError))
    waiting.cancel()
