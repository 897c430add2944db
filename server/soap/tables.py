"""queryRows and getItem: table reads.

Their responses can be large, so the table is built and serialised in the
thread pool next to the query instead of on the reactor thread.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from typing import Any, TypeVar

from shared import rights as R
from server.soap.context import Call, require, response
from shared.codec import add, envelope, field, gw, int_field, required, required_int, \
    restriction_from_xml, sort_from_xml, table_to_xml
from shared.errors import BadRequest, NotFound, TooLarge

T = TypeVar("T")

DEFAULT_ITEM_COLUMNS = ("uid", "modseq", "size", "flags", "keywords", "internalDate", "itemClass",
                        "subject", "from", "to", "cc", "messageId", "date")
# Not a stored column: the item's original bytes, inline when small enough.
SOURCE = "source"
MAX_LIMIT = 2**31
# Resource names one getItemsByName may ask for.
MAX_NAMES = 1000
# Times a read with sources reads its rows when their blobs keep vanishing under it.
SOURCE_READ_ATTEMPTS = 3


class SourceGone(NotFound):
    """A row's blob was gone when its source was read: the item was replaced or deleted
    after its row was read, and the save or delete released the blob once committed."""


def read_consistently(read: Callable[[], T]) -> T:
    """`read()` (rows, then their sources), again when an item changed between the two:
    read again, its row names the new blob, or is gone too. A blob missing for good
    is NotFound, as before."""
    for _ in range(SOURCE_READ_ATTEMPTS - 1):
        try:
            return read()
        except SourceGone:
            continue
    return read()


class Columns:
    """The columns a table read asks for: what storage reads for them (an item's blob
    key and size in place of "source") and the answer with small sources inline.

    With `default`, a request that names no columns gets those (getItem); without,
    it must name some."""

    def __init__(self, call: Call, default: tuple[str, ...] = ()) -> None:
        given = field(call.body, "columns") if default else required(call.body, "columns")
        self.requested = (given or "").split() or list(default)
        if not self.requested:
            raise BadRequest("no columns requested")
        self.with_source = SOURCE in self.requested
        self.stored = [("blob_key" if c == SOURCE else c) for c in self.requested]
        if self.with_source and "size" not in self.stored:
            self.stored.append("size")
        self.inline_limit = call.services.limits.inline_source_limit

    def answer(self, st: Any, table: dict, refuse_large: bool = False) -> dict:
        """The storage table as asked for. Larger sources are null (read them with
        openStream), or with `refuse_large` a TooLarge fault."""
        if not self.with_source:
            return {name: table[name] for name in self.requested}
        return _with_sources(st, table, self.requested, self.inline_limit, refuse_large)


async def query_rows(call: Call) -> bytes:
    session = call.session()
    body = call.body
    folder_id = required_int(body, "folderId")
    columns = Columns(call)
    restriction = restriction_from_xml(body.find(gw("restriction")))
    sort = sort_from_xml(body)
    offset = int_field(body, "offset", 0)
    limit = int_field(body, "limit")
    if offset < 0 or (limit is not None and not 0 <= limit <= MAX_LIMIT):
        raise BadRequest("offset and limit must not be negative")

    def read(st: Any) -> tuple[dict, list[tuple[str, Any]]]:
        total, table = st.query_items(folder_id, columns.stored, restriction, sort, offset, limit,
                                      reader=st.seen_reader(session.user_id, folder_id))
        return columns.answer(st, table), [("total", total)]

    return await _answer_table(call, session, "queryRows", folder_id, read)


async def get_item(call: Call) -> bytes:
    session = call.session()
    body = call.body
    folder_id = required_int(body, "folderId")
    uid = required_int(body, "uid")
    columns = Columns(call, default=DEFAULT_ITEM_COLUMNS)

    def read(st: Any) -> tuple[dict, list[tuple[str, Any]]]:
        item = st.get_item(folder_id, uid, columns.stored, reader=st.seen_reader(session.user_id, folder_id))
        return columns.answer(st, {name: [value] for name, value in item.items()}, refuse_large=True), []

    return await _answer_table(call, session, "getItem", folder_id, read)


async def get_items_by_name(call: Call) -> bytes:
    """Items of a folder by resource name (CalDAV multiget, GET and PUT of one object)."""
    session = call.session()
    body = call.body
    folder_id = required_int(body, "folderId")
    columns = Columns(call)
    names = [el.text or "" for el in body.iterchildren(gw("name"))]
    if len(names) > MAX_NAMES:
        raise BadRequest(f"at most {MAX_NAMES} names per call")

    def read(st: Any) -> tuple[dict, list[tuple[str, Any]]]:
        return columns.answer(st, st.items_by_name(folder_id, names, columns.stored)), []

    return await _answer_table(call, session, "getItemsByName", folder_id, read)


async def _answer_table(call: Call, session: Any, op: str, folder_id: int,
                        read: Callable[[Any], tuple[dict, list[tuple[str, Any]]]]) -> bytes:
    """Check the read right, `read` the table and its leading fields, and serialise the
    answer, all in the thread pool: a large table never touches the reactor thread."""
    def work() -> bytes:
        st = call.storage
        require(st, session.user_id, folder_id, R.READ)
        table, fields = read_consistently(lambda: read(st))
        out = response(op)
        for name, value in fields:
            add(out, name, value)
        out.append(table_to_xml(table, _rows(table)))
        return envelope(out)

    return await call.run(work)


def _with_sources(st, table: dict, columns: list[str], inline_limit: int, refuse_large: bool = False) -> dict:
    """Replace blob keys by the items' bytes; larger items get null, or TooLarge when refused.
    SourceGone when an item changed since its row was read (see `read_consistently`)."""
    sources = []
    for key, size in zip(table["blob_key"], table["size"]):
        if size > inline_limit:
            if refuse_large:
                raise TooLarge("message too large to inline; use openStream")
            sources.append(None)
            continue
        try:
            with closing(st.blobs.open(key)) as fp:
                sources.append(read_inline(fp, size, inline_limit))
        except NotFound as err:
            raise SourceGone(err.message) from None
    return {name: (sources if name == SOURCE else table[name]) for name in columns}


def read_inline(fp: Any, size: int, inline_limit: int) -> bytes:
    """Up to `inline_limit` + 1 bytes of a blob whose stored size is `size`. Asking for
    the limit at once would have each read allocate (and page in) a buffer of the limit's
    size, which costs more than reading a small calendar object."""
    data = fp.read(min(size, inline_limit) + 1)
    if len(data) > size:  # longer than recorded: read on as far as the limit
        data += fp.read(inline_limit + 1 - len(data))
    return data


def _rows(table: dict) -> int:
    return len(next(iter(table.values()))) if table else 0
