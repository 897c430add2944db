"""readPublishedCalendar: a calendar published at a secret URL, read without a session;
publishCalendar: its owner publishes it (a new secret each time) or revokes the URL.

The token is the credential (192 random bits); the answer holds the folder and every
object's text, and nothing else of the store.
"""
from __future__ import annotations

from lxml import etree

from shared import rights as R
from server.soap.context import Call, folder_xml, require, response
from server.soap.tables import _with_sources, read_consistently
from shared.codec import add, bool_field, envelope, required, required_int, table_to_xml
from shared.errors import BadRequest, NotFound

CALENDAR_CLASSES = ("calendar", "tasks", "journal")

PUBLISHED_COLUMNS = ["uid", "name", "etag", "source"]


async def read_published_calendar(call: Call) -> bytes:
    token = required(call.body, "token")
    inline_limit = call.services.limits.inline_source_limit

    def work() -> bytes:
        st = call.storage
        folder_id = st.published_folder_id(token)
        if folder_id is None:
            raise NotFound("no calendar is published under this token")
        folder = st.get_folder(folder_id)

        def read() -> dict:
            _, table = st.query_items(folder_id, ["uid", "name", "etag", "blob_key", "size"], None, [("uid", False)])
            return _with_sources(st, table, PUBLISHED_COLUMNS, inline_limit)
        table = read_consistently(read)
        out = response("readPublishedCalendar")
        out.append(folder_xml(folder, R.READ_ONLY))
        out.append(table_to_xml(table, len(table["uid"])))
        return envelope(out)

    return await call.run(work)


async def publish_calendar(call: Call) -> etree._Element:
    """`publish` true: a new secret URL token (an older one stops working); false: none."""
    session = call.session()
    folder_id = required_int(call.body, "folderId")
    publish = bool_field(call.body, "publish", True)

    def work() -> str | None:
        st = call.storage
        require(st, session.user_id, folder_id, R.ADMIN)
        if st.get_folder(folder_id)["container_class"] not in CALENDAR_CLASSES:
            raise BadRequest("only calendars and task lists are published")
        if publish:
            return st.publish_folder(folder_id)
        st.unpublish_folder(folder_id)
        return None

    token = await call.run(work)
    out = response("publishCalendar")
    if token is not None:
        add(out, "token", token)
    return out
