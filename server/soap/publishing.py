"""readPublishedCalendar: a calendar published at a secret URL, read without a session.

The token is the credential (192 random bits); the answer holds the folder and every
object's text, and nothing else of the store.
"""
from __future__ import annotations

from server.soap.context import Call, folder_xml, response
from server.soap.tables import _with_sources
from shared.codec import envelope, required, table_to_xml
from shared.errors import NotFound

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
        _, table = st.query_items(folder_id, ["uid", "name", "etag", "blob_key", "size"], None, [("uid", False)])
        table = _with_sources(st, table, PUBLISHED_COLUMNS, inline_limit)
        out = response("readPublishedCalendar")
        out.append(folder_xml(folder, "read"))
        out.append(table_to_xml(table, len(table["uid"])))
        return envelope(out)

    return await call.run(work)
