"""listSubscriptions, subscribe, unsubscribe: the subscription list of the caller's
own store, names the gateway gives (RFC 3501 §6.3.6; see storage/subscriptions.py).
Each call may carry the `default` names a list not started yet starts with."""
from __future__ import annotations

from lxml import etree

from server.soap.context import Call, response
from shared.codec import add, gw, text
from shared.errors import BadRequest


def _names(call: Call, tag: str = "name") -> list[str]:
    return [text(el) or "" for el in call.body.iterchildren(gw(tag))]


def _given_names(call: Call) -> list[str]:
    names = _names(call)
    if not names:
        raise BadRequest("no mailbox name given")
    return names


async def list_subscriptions(call: Call) -> etree._Element:
    session = call.session()
    names = await call.run(call.storage.subscriptions, session.store_id, _names(call, "default"))
    out = response("listSubscriptions")
    for name in names:
        add(out, "name", name)
    return out


async def subscribe(call: Call) -> etree._Element:
    """Names go on the list whether or not a folder has them now; the gateway checks what it must."""
    session = call.session()
    await call.run(call.storage.subscribe, session.store_id, _given_names(call), _names(call, "default"))
    return response("subscribe")


async def unsubscribe(call: Call) -> etree._Element:
    session = call.session()
    await call.run(call.storage.unsubscribe, session.store_id, _given_names(call), _names(call, "default"))
    return response("unsubscribe")
