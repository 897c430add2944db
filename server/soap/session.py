"""logon, logoff, whoami, changePassword, useOnce."""
from __future__ import annotations

import logging
import time
from typing import Any

from lxml import etree

from server.bans import StoredBans
from server.soap.context import Call, Services, response
from shared.codec import add, element, field, required
from shared.authguard import Banned, log_safe
from shared.errors import BANNED, AuthFailed, BadRequest, Forbidden
from shared.features import FEATURES, WEB

log = logging.getLogger(__name__)

# Protocols a gateway may name at logon; the FEATURES can be switched off per user and
# server-wide (`disabled_features`), the others (the web page) are open to every user.
PROTOCOLS = frozenset(FEATURES + ("admin", WEB))
# The longest password a user may set (argon2 takes any length; this bounds the work).
MAX_PASSWORD_LENGTH = 1024


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


def client_address(call: Call) -> tuple[str, bool]:
    """Whom a logon is for: the `clientAddress` a gateway names for its client, or, from
    any caller without the gateway right (server.caller_rights), the address seen on the
    socket. The second value says whether it came from a gateway."""
    named = field(call.body, "clientAddress") or None
    if named is not None:
        if call.services.gateway_right.granted(call.peer_uid, field(call.body, "gatewaySecret")):
            return named, True
        who = f"uid {call.peer_uid}" if call.peer_uid is not None else call.peer
        log.warning("clientAddress %s from %s ignored: the caller has no gateway right",
                    log_safe(named, 64), who)
    return call.peer_host, False


async def logon(call: Call) -> etree._Element:
    """A user session for a name and password, checked behind the store's own brute-force
    guard: a direct caller waits its turn and the delay owed, like a gateway's client; a
    gateway (which made its client wait already) meets only the bans."""
    body = call.body
    name = required(body, "user")
    password = field(body, "password", "")
    protocol = field(body, "protocol") or None
    if protocol is not None and protocol not in PROTOCOLS:
        raise BadRequest(f"unknown protocol {protocol!r}")
    lifetime_text = field(body, "lifetime") or None
    try:
        lifetime = int(lifetime_text) if lifetime_text is not None else None
    except ValueError:
        raise BadRequest("lifetime is a number of seconds") from None
    if lifetime is not None and lifetime < 1:
        raise BadRequest("lifetime is a number of seconds")
    address, gateway = client_address(call)
    where = f"{log_safe(address, 64)} via {call.peer}" if gateway else call.peer
    services = call.services
    guard = services.logon_guard
    kind = protocol or "soap"
    try:
        if gateway:
            await guard.check_ban(kind, address, name)
            attempt = None
        else:
            attempt = await guard.before_attempt(kind, address, name)
    except Banned:
        log.info("logon of user %r from %s refused: address banned", name, where)
        raise AuthFailed("too many logon attempts from this address, try again later", BANNED) from None
    try:
        user = await call.run_users(services.users.authenticate, name, password)
    except AuthFailed:
        # The guard's line (a gateway wrote its own) is the one fail2ban reads.
        guard.failed(kind, address, name, quiet=gateway)
        log.info("authentication failed for user %r from %s", name, where)
        if isinstance(guard.bans, StoredBans):
            await guard.bans.kept()
        raise
    finally:
        if attempt is not None:
            attempt.done()
    guard.succeeded(address, name)
    if protocol in FEATURES and protocol not in enabled_features(services, user):
        log.info("user %r refused %s access from %s: feature disabled", name, protocol, where)
        raise Forbidden(f"{protocol} access is disabled for this user")
    session = services.sessions.create(user, protocol, address, lifetime=lifetime)
    log.info("user %r logged on (%s) from %s", name, protocol or "soap", where)
    out = response("logon")
    add(out, "sessionId", session.id)
    out.append(user_xml(services, user))
    add(out, "storeId", user["store_id"])
    add(out, "publicStoreId", services.public_store_id)
    return out


async def logoff(call: Call) -> etree._Element:
    """End the session in every store process; calendar imports it staged to last go too
    (they are kept in the database, whichever process staged them)."""
    session = call.any_session()
    call.release()
    call.services.sessions.end(session.id)
    if not session.delivery:
        await call.run(call.storage.drop_calendar_imports_of_session, session.id.partition(".")[0])
    return response("logoff")


async def whoami(call: Call) -> etree._Element:
    session = call.session()
    out = response("whoami")
    out.append(user_xml(call.services, session.user))
    add(out, "storeId", session.store_id)
    add(out, "publicStoreId", call.services.public_store_id)
    return out


async def adopt(services: Services, session_id: str | None) -> None:
    """Before a call uses it, hold a session that another store process made (see
    server.sessions), if its user may still use it; otherwise the call finds no
    session and the gateway logs on again."""
    facts = services.sessions.claim(session_id)
    if facts is None or session_id is None:
        return
    user: dict[str, Any] | None = {}
    if not facts.get("d"):
        if not isinstance(facts.get("u"), int):
            return
        user = await services.run(services.storage.get_user_by_id, facts["u"])
        if user is None or not user.get("active", True):
            return
        protocol = facts.get("p")
        if protocol in FEATURES and protocol not in enabled_features(services, user):
            return
    services.sessions.adopt(session_id, facts, user)
    log.debug("took up a session of %s made by another store process", (user or {}).get("name", "delivery"))


async def change_password(call: Call) -> etree._Element:
    """The logged-on user sets a new password after giving the old one. Only the db user
    backend keeps passwords; with a directory (ldap, unix) this is forbidden. A wrong old
    password is authFailed (the gateway counts it at its brute-force guard)."""
    session = call.session()
    old = field(call.body, "oldPassword", "") or ""
    new = field(call.body, "newPassword", "") or ""
    if not new or len(new) > MAX_PASSWORD_LENGTH or "\x00" in new:
        raise BadRequest(f"a new password has 1 to {MAX_PASSWORD_LENGTH} characters")
    users = call.services.users
    if not hasattr(users, "set_password"):
        raise Forbidden("passwords are kept in the directory; change yours there")
    name = session.user["name"]
    try:
        await call.run_users(users.authenticate, name, old)
    except AuthFailed:
        log.info("password change of user %r refused: wrong old password", name)
        raise
    await call.run_users(users.set_password, name, new)
    log.info("user %r changed their password", name)
    return response("changePassword")


# A one-time name is a token a gateway made (a URL-safe nonce); longer is no name of ours.
MAX_ONCE_NAME = 64


async def use_once(call: Call) -> etree._Element:
    """Mark a one-time name (a gateway's single-use link) as used, for every store process and
    instance on this database: `used` is true only for the first call with that name. The
    name is kept until `expires` (wall-clock seconds, at most `session_max_lifetime` ahead),
    after which the gateway refuses the link by itself."""
    call.session()
    name = required(call.body, "name")
    if not name or len(name) > MAX_ONCE_NAME or not name.isascii() or not name.isprintable():
        raise BadRequest(f"a one-time name has 1 to {MAX_ONCE_NAME} printable ASCII characters")
    try:
        expires = int(required(call.body, "expires"))
    except ValueError:
        raise BadRequest("expires is a number of seconds") from None
    services = call.services
    now = time.time()
    expires = min(expires, int(now + services.sessions.max_lifetime))
    first = await services.run(services.storage.use_once, name, expires, now)
    out = response("useOnce")
    add(out, "used", bool(first))
    return out
