"""The delivery operations: logonDelivery, resolveRecipient, listDeliveryFolders,
getActiveSieveScript, deliverMessage, vacationResponse.

Only a delivery session (server.caller_rights decides who gets one) may call them,
and it may call nothing else. `deliverMessage` stores one message for many recipients
in one transaction, every copy sharing one blob, and answers only once blob and rows
are durable, so an LMTP server may then say 250 (RFC 2033 section 4.2).
"""
from __future__ import annotations

import logging
from typing import Any

from lxml import etree

from server import recipients
from server.soap.context import Call, response
from server.soap.items import discard_file, incoming_message, parse_flags, store_blob
from server.storage.delivery import DeliveryOutcome, DeliveryTarget
from server.storage.folders import ROLES
from shared.codec import add, bool_field, element, field, gw, int_field, required, required_int, text
from shared.errors import BadRequest, Forbidden, NotFound, Quota

log = logging.getLogger(__name__)



async def logon_delivery(call: Call) -> etree._Element:
    """A delivery session for a trusted caller (its UNIX peer uid, or the delivery secret)."""
    services = call.services
    secret = field(call.body, "deliverySecret")
    who = f"uid {call.peer_uid}" if call.peer_uid is not None else call.peer
    if not services.delivery_right.granted(call.peer_uid, secret):
        log.warning("delivery right refused to %s (%s)", who,
                    "wrong secret" if secret is not None else "not a trusted caller")
        raise Forbidden("the delivery right is not granted to this caller")
    session = services.sessions.create({}, None, field(call.body, "clientAddress") or None, delivery=True)
    log.info("delivery session for %s", who)
    out = response("logonDelivery")
    add(out, "sessionId", session.id)
    return out


def _user(call: Call, name: str) -> dict[str, Any]:
    """A local user by name (in the thread pool); NotFound for an unknown one."""
    user = call.storage.get_user(name)
    if user is None or user.get("store_id") is None:
        raise NotFound(f"user {name!r} not found")
    return user


async def resolve_recipient(call: Call) -> etree._Element:
    call.delivery_session()
    address = required(call.body, "address")
    delimiter = call.services.limits.recipient_delimiter
    user, detail = await call.run_users(recipients.resolve_recipient, call.services.users, address, delimiter)
    out = response("resolveRecipient")
    add(out, "user", user["name"])
    add(out, "storeId", user["store_id"])
    if detail is not None:
        add(out, "detail", detail)
    return out


async def list_delivery_folders(call: Call) -> etree._Element:
    call.delivery_session()
    name = required(call.body, "user")

    def work() -> list[dict[str, Any]]:
        return call.storage.delivery_folders(_user(call, name)["store_id"])

    out = response("listDeliveryFolders")
    for folder in await call.run(work):
        el = element("folder")
        add(el, "id", folder["id"])
        if folder["parent_id"] is not None:
            add(el, "parentId", folder["parent_id"])
        add(el, "name", folder["name"])
        if folder["role"]:
            add(el, "role", folder["role"])
        out.append(el)
    return out


async def get_active_sieve_script(call: Call) -> etree._Element:
    call.delivery_session()
    name = required(call.body, "user")

    def work() -> str | None:
        return call.storage.active_sieve_script(_user(call, name)["id"])

    script = await call.run(work)
    out = response("getActiveSieveScript")
    if script is not None:
        add(out, "script", script)
    return out


def _target(el: etree._Element, max_depth: int) -> DeliveryTarget:
    role = field(el, "role") or None
    if role is not None and role not in ROLES:
        raise BadRequest(f"unknown role {role!r}")
    path = tuple(text(p) or "" for p in el.iterchildren(gw("path")))
    if len(path) > max_depth:
        # No folder lies that deep or may be made there (max_folder_depth): the message
        # goes where a missing folder sends it, the Inbox (RFC 5228 section 4.1).
        log.warning("delivery: a path of %d folders is deeper than max_folder_depth; Inbox instead", len(path))
        path = ()
    flags, keywords = parse_flags(field(el, "flags"))
    return DeliveryTarget(required(el, "user"), int_field(el, "folderId"), role, path,
                          bool_field(el, "create"), flags, tuple(keywords), field(el, "messageId") or None)


async def deliver_message(call: Call) -> etree._Element:
    """One message for every <delivery>, one <result> per delivery in order."""
    session = call.delivery_session()
    body = call.body
    limits = call.services.limits
    sender = field(body, "sender", "") or ""
    incoming = incoming_message(call, session, body)
    try:
        elements = list(body.iterchildren(gw("delivery")))
        if not elements:
            raise BadRequest("no <delivery> given")
        if len(elements) > limits.max_deliveries_per_message:
            raise BadRequest(f"at most {limits.max_deliveries_per_message} deliveries per message")
        targets = [_target(el, call.storage.max_folder_depth) for el in elements]
    except BaseException:
        discard_file(incoming.path)
        raise

    def work() -> tuple[list[DeliveryOutcome], dict[int, int]]:
        st = call.storage
        try:
            message = store_blob(st, incoming, limits.max_message_size)
        finally:
            discard_file(incoming.path)
        try:
            outcomes, modseqs = st.deliver(message, targets, limits.delivery_duplicate_window)
        except Quota:
            outcomes, modseqs = [DeliveryOutcome("quota") for _ in targets], {}
        except BaseException as err:
            st.discard_unstored([message.blob_key], err)
            raise
        if not modseqs:
            st.blobs.delete(message.blob_key)
        return outcomes, modseqs

    outcomes, modseqs = await call.run(work)
    for folder_id, modseq in modseqs.items():
        call.services.notifier.changed(folder_id, modseq)
    out = response("deliverMessage")
    for target, outcome in zip(targets, outcomes):
        log.info("delivery from %r to %r: %s%s", sender, target.user, outcome.status,
                 f" (folder {outcome.folder_id}, uid {outcome.uid})" if outcome.uid is not None else "")
        result = element("result")
        add(result, "status", outcome.status)
        if outcome.folder_id is not None:
            add(result, "folderId", outcome.folder_id)
        if outcome.uid is not None:
            add(result, "uid", outcome.uid)
        out.append(result)
    return out


async def vacation_response(call: Call) -> etree._Element:
    """Whether a vacation reply (RFC 5230 section 4.1) to `sender` for `handle` is due now,
    recording it as sent when it is."""
    call.delivery_session()
    body = call.body
    name = required(body, "user")
    sender = required(body, "sender")
    handle = required(body, "handle")
    seconds = required_int(body, "seconds")
    if seconds < 0:
        raise BadRequest("<seconds> must not be negative")

    def work() -> bool:
        return call.storage.vacation_due(_user(call, name)["id"], sender, handle, seconds)

    out = response("vacationResponse")
    add(out, "due", await call.run(work))
    return out
