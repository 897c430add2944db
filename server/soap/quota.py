"""getQuota: the session's store usage and quota levels (IMAP GETQUOTA, RFC 9208; DAV
quota properties, RFC 4331). The store keeps and enforces them (server/storage/quota.py);
setting them is an administrator's task (`groupware quota set`), not a SOAP call."""
from __future__ import annotations

from lxml import etree

from server.soap.context import Call, response
from shared.codec import add, int_field
from shared.errors import Forbidden


async def get_quota(call: Call) -> etree._Element:
    """Usage (bytes, items) and the levels that apply to the user's own store (0: none)."""
    session = call.session()
    store_id = int_field(call.body, "storeId") or session.store_id
    if store_id != session.store_id:
        raise Forbidden("quota is reported for the user's own store only")
    usage = await call.run(call.storage.store_usage, store_id)
    out = response("getQuota")
    add(out, "usedBytes", usage.used_bytes)
    add(out, "usedItems", usage.used_items)
    add(out, "warnBytes", usage.limits.warn)
    add(out, "softBytes", usage.limits.soft)
    add(out, "hardBytes", usage.limits.hard)
    add(out, "maxItems", usage.limits.messages)
    return out
