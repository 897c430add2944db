"""saveContact: one vCard created or replaced by resource name, kept as sent.

The text goes to the blob store whole (a PHOTO of a few megabytes with it), the
columns address book queries read (UID, FN, EMAIL, TEL) beside it in the items table.
"""
from __future__ import annotations

from lxml import etree

from server.soap.context import Call
from server.soap.items import save_text_item
from server.vcardcolumns import contact_columns


async def save_contact(call: Call) -> etree._Element:
    return await save_text_item(call, "saveContact", "vcard", "vCard", contact_columns)
