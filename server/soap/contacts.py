"""saveContact: one vCard created or replaced by resource name, kept as sent.

The text goes to the blob store whole (a PHOTO of a few megabytes with it), the
columns address book queries read (UID, FN, EMAIL, TEL) beside it in the items table.
"""
from __future__ import annotations

from typing import Any

from lxml import etree

from server.soap.context import Call, require, response
from server.vcardcolumns import contact_columns
from shared.codec import add, bool_field, field, required, required_int
from shared.errors import TooLarge


async def save_contact(call: Call) -> etree._Element:
    session = call.session()
    body = call.body
    folder_id = required_int(body, "folderId")
    name = required(body, "name")
    vcard = required(body, "vcard")
    if_match = field(body, "ifMatch") or None
    if_none_match = bool_field(body, "ifNoneMatch")
    max_size = call.services.limits.max_message_size

    def work() -> dict[str, Any]:
        st = call.storage
        require(st, session.user_id, folder_id, "write")
        data = vcard.encode("utf-8", "surrogateescape")
        if len(data) > max_size:
            raise TooLarge(f"vCard exceeds {max_size} bytes")
        columns = contact_columns(vcard)
        key = st.blobs.put_bytes(data)
        try:
            return st.save_calendar_item(folder_id, name, key, len(data), columns,
                                         if_match=if_match, if_none_match=if_none_match)
        except BaseException as err:
            st.discard_unstored([key], err)
            raise

    result = await call.run(work)
    call.services.notifier.changed(folder_id, result["modseq"])
    out = response("saveContact")
    add(out, "uid", result["uid"])
    add(out, "modseq", result["modseq"])
    add(out, "etag", result["etag"])
    add(out, "created", bool(result["created"]))
    return out
