"""The delivery operations: logonDelivery, resolveRecipient, listDeliveryFolders,
getActiveSieveScript, deliverMessage, deliverMessages, vacationResponse.

Only a delivery session (server.caller_rights decides who gets one) may call them,
and it may call nothing else. `deliverMessage` stores one message for many recipients
in one transaction, every copy sharing one blob, and answers only once blob and rows
are durable, so an LMTP server may then say 250 (RFC 2033 section 4.2). Deliveries
that arrive together (`deliverMessages`, or calls side by side) share that transaction:
the store commits them in groups (shared.group_commit).
"""
from __future__ import annotations

import logging
from typing import Any

from lxml import etree
from twisted.internet.defer import Deferred, DeferredList, fail

from server import recipients
from shared.group_commit import GroupCommit
from server.soap.context import Call, Services, response
from server.soap.faults import as_groupware_error
from server.soap.items import IncomingMessage, discard_file, incoming_message, parse_flags, store_blobs
from server.storage.delivery import DeliveryOutcome, DeliveryTarget
from server.storage.items import NewMessage
from server.storage.folders import ROLES
from shared.budget import run_under
from shared.codec import add, bool_field, element, error_element, field, gw, int_field, required, required_int, text
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
    """The mail folders of every <user>, in one thread trip and one query."""
    call.delivery_session()
    names = [text(el) or "" for el in call.body.iterchildren(gw("user"))]
    if not names:
        raise BadRequest("no <user> given")
    limit = call.services.limits.max_deliveries_per_message
    if len(names) > limit:
        raise BadRequest(f"at most {limit} users per call")

    def work() -> list[list[dict[str, Any]]]:
        store_ids = [_user(call, name)["store_id"] for name in names]
        return call.storage.delivery_folders(store_ids)

    out = response("listDeliveryFolders")
    for folders in await call.run(work):
        listing = element("folders")
        for folder in folders:
            el = element("folder")
            add(el, "id", folder["id"])
            if folder["parent_id"] is not None:
                add(el, "parentId", folder["parent_id"])
            add(el, "name", folder["name"])
            if folder["role"]:
                add(el, "role", folder["role"])
            listing.append(el)
        out.append(listing)
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
    limits = call.services.limits
    message = _message(call, session, call.body, limits.max_deliveries_per_message)
    [answer] = await _deliver(call, [message])
    if isinstance(answer, BaseException):
        raise answer
    out = response("deliverMessage")
    _add_results(out, answer)
    return out


async def deliver_messages(call: Call) -> etree._Element:
    """Several messages, each with its deliveries (at most max_deliveries_per_message in
    all): one <message> answer each, in order, with its <result>s or the <error> that
    stopped that message alone. The messages go into the store's next commit together."""
    session = call.delivery_session()
    limits = call.services.limits
    parsed: list[tuple[str, IncomingMessage, list[DeliveryTarget]]] = []
    try:
        left = limits.max_deliveries_per_message
        for el in call.body.iterchildren(gw("message")):
            parsed.append(_message(call, session, el, left))
            left -= len(parsed[-1][2])
        if not parsed:
            raise BadRequest("no <message> given")
    except BaseException:
        for _, incoming, _ in parsed:
            discard_file(incoming.path)
        raise
    out = response("deliverMessages")
    for answer in await _deliver(call, parsed):
        el = element("message")
        if isinstance(answer, BaseException):
            el.append(error_element(as_groupware_error(answer, "deliverMessages", call.peer)))
        else:
            _add_results(el, answer)
        out.append(el)
    return out


def _message(call: Call, session: Any, el: etree._Element, max_deliveries: int
             ) -> tuple[str, IncomingMessage, list[DeliveryTarget]]:
    """The sender, source and targets of one message element; BadRequest beyond `max_deliveries`."""
    sender = field(el, "sender", "") or ""
    incoming = incoming_message(call, session, el)
    try:
        elements = list(el.iterchildren(gw("delivery")))
        if not elements:
            raise BadRequest("no <delivery> given")
        if len(elements) > max_deliveries:
            raise BadRequest(f"at most {call.services.limits.max_deliveries_per_message} deliveries per call")
        return sender, incoming, [_target(d, call.storage.max_folder_depth) for d in elements]
    except BaseException:
        discard_file(incoming.path)
        raise


async def _deliver(call: Call, messages: list[tuple[str, IncomingMessage, list[DeliveryTarget]]]
                   ) -> list[list[DeliveryOutcome] | BaseException]:
    """Store each message for its targets: per message its outcomes once blob and rows are
    durable, or what went wrong with it."""
    services = call.services
    try:
        if services.deliveries.idle:
            # Nothing is being committed: blobs and rows are written in one trip to the
            # thread pool, the blobs durable before the rows go in.
            pending: list[IncomingMessage | NewMessage | Exception] = [m for _, m, _ in messages]
        else:
            # The blobs are made durable while the running group commits; then the rows
            # go in with the next group.
            pending = await call.run(store_blobs, call.storage, [m for _, m, _ in messages],
                                     services.limits.max_message_size)
        commits = [fail(blob) if isinstance(blob, Exception) else services.deliveries.add((blob, targets))
                   for blob, (_, _, targets) in zip(pending, messages)]
        committed = await DeferredList(commits, consumeErrors=True)
    finally:
        for _, incoming, _ in messages:
            discard_file(incoming.path)
    answers: list[list[DeliveryOutcome] | BaseException] = []
    for (ok, result), blob, (sender, _, targets) in zip(committed, pending, messages):
        if not ok:
            # The whole group failed before its work began (its budget ran out): only a
            # blob written beforehand is there to remove.
            if isinstance(blob, NewMessage):
                await call.run(call.storage.discard_unstored, [blob.blob_key], result.value)
            answers.append(result.value)
            continue
        outcomes, modseqs = result
        for folder_id, modseq in modseqs.items():
            services.notifier.changed(folder_id, modseq)
        for target, outcome in zip(targets, outcomes):
            log.info("delivery from %r to %r: %s%s", sender, target.user, outcome.status,
                     f" (folder {outcome.folder_id}, uid {outcome.uid})" if outcome.uid is not None else "")
        answers.append(outcomes)
    return answers


def _add_results(parent: etree._Element, outcomes: list[DeliveryOutcome]) -> None:
    for outcome in outcomes:
        result = element("result")
        add(result, "status", outcome.status)
        if outcome.folder_id is not None:
            add(result, "folderId", outcome.folder_id)
        if outcome.uid is not None:
            add(result, "uid", outcome.uid)
        parent.append(result)


# What the group commit takes: a message's blob, or (when nothing else was being
# committed) its source still to write, and its targets.
PendingDelivery = tuple[IncomingMessage | NewMessage, list[DeliveryTarget]]


def delivery_group_commit(services: Services) -> GroupCommit[PendingDelivery]:
    """The store's deliveries committed in groups (shared.group_commit), each group in one
    transaction of at most max_deliveries_per_message copies, under a work budget of its own."""
    limits = services.limits

    def commit(batch: list[PendingDelivery]) -> Deferred:
        budget = services.budgets.open(services.work_time_limit)
        d = services.run(run_under, budget, _commit_deliveries, services.storage, batch,
                         limits.delivery_duplicate_window, limits.max_message_size)
        return d.addBoth(lambda result: (services.budgets.close(budget), result)[1])

    return GroupCommit(commit, [(limits.max_deliveries_per_message, lambda item: len(item[1]))])


def _commit_deliveries(storage: Any, batch: list[PendingDelivery], duplicate_window: int,
                       max_size: int) -> list[Any]:
    """The batch in one transaction (sources not yet written first made durable blobs); when
    that fails, each message in one of its own, so that what went wrong with one message is
    answered for that message alone. Per message (outcomes, {folder id: modseq}) or its error;
    the blob of a message that stored no copy is removed."""
    blobs: list[NewMessage | Exception] = [m for m, _ in batch]  # type: ignore[misc]
    unwritten = [i for i, (m, _) in enumerate(batch) if isinstance(m, IncomingMessage)]
    if unwritten:
        for i, blob in zip(unwritten, store_blobs(storage, [batch[i][0] for i in unwritten], max_size)):
            blobs[i] = blob
    ready = [(blob, targets) for blob, (_, targets) in zip(blobs, batch) if isinstance(blob, NewMessage)]
    stored = iter(_insert_rows(storage, ready, duplicate_window))
    results: list[Any] = []
    for blob, (_, targets) in zip(blobs, batch):
        if not isinstance(blob, NewMessage):
            results.append(blob)
            continue
        result = next(stored)
        if isinstance(result, Quota):
            result = ([DeliveryOutcome("quota") for _ in targets], {})
        if isinstance(result, BaseException):
            storage.discard_unstored([blob.blob_key], result)
        elif not result[1]:
            storage.blobs.delete(blob.blob_key)
        results.append(result)
    return results


def _insert_rows(storage: Any, batch: list[tuple[NewMessage, list[DeliveryTarget]]],
                 duplicate_window: int) -> list[Any]:
    if not batch:
        return []
    try:
        return storage.deliver_many(batch, duplicate_window)
    except Exception as err:  # noqa: BLE001 - a lone message's answer, or retried alone below
        if len(batch) == 1:
            return [err]
    results: list[Any] = []
    for one in batch:
        try:
            results.append(storage.deliver_many([one], duplicate_window)[0])
        except Exception as err:  # noqa: BLE001 - the error is this message's answer
            results.append(err)
    return results


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
