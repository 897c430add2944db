"""SOAP request -> operation handler -> response or fault.

The table below is the whole list of operations; each family lives in its
own module. Error mapping is uniform (server.soap.faults): a GroupwareError
becomes a fault with its code, a lost database connection becomes `unavailable`
(never a bad password), a full disk `storageFull` (nothing half-written stays
behind: blob writes and transactions undo themselves), anything else is logged
and answered `internal`.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred

from server.soap import (acl, calendar, changes, contacts, delivery, folders, items, publishing, quota, scheduling,
                         session, sieve, streams, subscriptions, tables)
from server.soap.context import Call, Services
from server.soap.faults import as_groupware_error
from shared.codec import body_of, envelope, fault, field, operation_of
from shared.errors import BadRequest


Handler = Callable[[Call], Awaitable["etree._Element | bytes"]]

OPERATIONS: dict[str, Handler] = {
    "logon": session.logon,
    "logoff": session.logoff,
    "whoami": session.whoami,
    "changePassword": session.change_password,
    "useOnce": session.use_once,
    "listFolders": folders.list_folders,
    "createFolder": folders.create_folder,
    "updateFolder": folders.update_folder,
    "deleteFolder": folders.delete_folder,
    "emptyFolder": folders.empty_folder,
    "getAcl": acl.get_acl,
    "setAcl": acl.set_acl,
    "deleteAcl": acl.delete_acl,
    "myRights": acl.my_rights,
    "listRights": acl.list_rights,
    "setFolderProperties": folders.set_folder_properties,
    "queryRows": tables.query_rows,
    "getItem": tables.get_item,
    "getItemsByName": tables.get_items_by_name,
    "createMessage": items.create_message,
    "createMessages": items.create_messages,
    "saveCalendarItem": items.save_calendar_item,
    "saveCalendarItems": calendar.save_calendar_items,
    "saveContact": contacts.save_contact,
    "setFlags": items.set_flags,
    "copyItems": items.copy_items,
    "moveItems": items.move_items,
    "deleteItems": items.delete_items,
    "getChanges": changes.get_changes,
    "getChangedItems": changes.get_changed_items,
    "waitForChanges": changes.wait_for_changes,
    "openStream": streams.open_stream,
    "readPublishedCalendar": publishing.read_published_calendar,
    "publishCalendar": publishing.publish_calendar,
    "listSubscriptions": subscriptions.list_subscriptions,
    "subscribe": subscriptions.subscribe,
    "unsubscribe": subscriptions.unsubscribe,
    "getQuota": quota.get_quota,
    "listSieveScripts": sieve.list_sieve_scripts,
    "getSieveScript": sieve.get_sieve_script,
    "putSieveScript": sieve.put_sieve_script,
    "setActiveSieveScript": sieve.set_active_sieve_script,
    "deleteSieveScript": sieve.delete_sieve_script,
    "renameSieveScript": sieve.rename_sieve_script,
    "logonDelivery": delivery.logon_delivery,
    "resolveRecipient": delivery.resolve_recipient,
    "listDeliveryFolders": delivery.list_delivery_folders,
    "getActiveSieveScript": delivery.get_active_sieve_script,
    "deliverMessage": delivery.deliver_message,
    "deliverMessages": delivery.deliver_messages,
    "vacationResponse": delivery.vacation_response,
    "scheduleMessage": scheduling.schedule_message,
    "freeBusyItems": scheduling.free_busy_items,
}

# Parsing a document this large would stall the reactor noticeably.
PARSE_IN_THREAD = 64 * 1024


def dispatch(services: Services, data: bytes, peer: str, peer_uid: int | None = None
             ) -> "Deferred[tuple[int, bytes]]":
    """Answer one SOAP request: (HTTP status, response document). `peer_uid` is the uid
    of a caller on the UNIX socket (None over TCP)."""
    return ensureDeferred(_answer(services, data, peer, peer_uid))


async def _answer(services: Services, data: bytes, peer: str, peer_uid: int | None) -> tuple[int, bytes]:
    op = "?"
    try:
        body = await services.run(body_of, data) if len(data) > PARSE_IN_THREAD else body_of(data)
        op = operation_of(body)
        handler = OPERATIONS.get(op)
        if handler is None:
            raise BadRequest(f"unknown operation {op!r}")
        await session.adopt(services, field(body, "sessionId"))
        budget = services.budgets.open(services.work_time_limit)
        call = Call(services, body, peer, peer_uid, budget)
        try:
            result = await handler(call)
        except CancelledError:
            budget.cancel()  # the client hung up: its thread work stops at its next check
            raise
        finally:
            call.release()
            services.budgets.close(budget)
        return 200, result if isinstance(result, bytes) else envelope(result)
    except CancelledError:
        raise
    except Exception as err:
        return 500, fault(as_groupware_error(err, op, peer))