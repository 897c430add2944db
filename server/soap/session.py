"""logon, logoff, whoami."""
from __future__ import annotations

import logging
from typing import Any

from lxml import etree

from server.soap.context import Call, Services, response
from shared.codec import add, element, field, required
from shared.errors import AuthFailed, BadRequest, Forbidden
from shared.features import FEATURES

log = logging.getLogger(__name__)

# Protocols a gateway may name at logon; the first three can be switched off
# per user and server-wide (`disabled_features`).
PROTOCOLS = frozenset(FEATURES + ("admin",))


def enabled_features(services: Services, user: dict[str, Any]) -> list[str]:
    switches = user.get("features") or {}
    return [name for name in FEATURES
            if switches.get(name, True) and name not in services.limits.disabled_features]


def user_xml(services: Services, user: dict[str, Any]) -> etree._Element:
    el = element("user")
    add(el, "name", user["name"])
    add(el, "fullName", user.get("fullname") or "")
    add(el, "email", user.get("email") or "")
    add(el, "features", " ".join(enabled_features(services, user)))
    return el


async def logon(call: Call) -> etree._Element:
    body = call.body
    name = required(body, "user")
    password = field(body, "password", "")
    protocol = field(body, "protocol") or None
    client = field(body, "clientAddress") or None
    if protocol is not None and protocol not in PROTOCOLS:
        raise BadRequest(f"unknown protocol {protocol!r}")
    where = f"{client} via {call.peer}" if client else call.peer
    services = call.services
    try:
        user = await call.run(services.users.authenticate, name, password)
    except AuthFailed:
        # A gateway that names its client logs the failure itself, once, with protocol,
        # user and address for fail2ban (shared.authguard); for a direct SOAP client
        # this is the line fail2ban has.
        log.log(logging.INFO if client else logging.WARNING,
                "authentication failed for user %r from %s", name, where)
        raise
    if protocol in FEATURES and protocol not in enabled_features(services, user):
        log.info("user %r refused %s access from %s: feature disabled", name, protocol, where)
        raise Forbidden(f"{protocol} access is disabled for this user")
    session = services.sessions.create(user, protocol, client)
    log.info("user %r logged on (%s) from %s", name, protocol or "soap", where)
    out = response("logon")
    add(out, "sessionId", session.id)
    out.append(user_xml(services, user))
    add(out, "storeId", user["store_id"])
    add(out, "publicStoreId", services.public_store_id)
    return out


async def logoff(call: Call) -> etree._Element:
    session = call.any_session()
    call.release()
    call.services.sessions.remove(session.id)
    return response("logoff")


async def whoami(call: Call) -> etree._Element:
    session = call.session()
    out = response("whoami")
    out.append(user_xml(call.services, session.user))
    add(out, "storeId", session.store_id)
    add(out, "publicStoreId", call.services.public_store_id)
    return out
