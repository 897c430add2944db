"""Errors with stable codes, shared by the store server and the adapter.

The server turns a `GroupwareError` into a SOAP fault carrying its code; the
adapter turns the fault back into the same class, so a gateway can tell a bad
password (`AuthFailed`) from a store outage (`Unavailable`).
"""
from __future__ import annotations


class GroupwareError(Exception):
    code = "internal"
    # SOAP 1.1 faultcode: whose fault it was.
    fault_side = "Server"

    def __init__(self, message: str = "", reason: str | None = None) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        # A finer, equally stable cause within the code (e.g. a conflict's "uidConflict").
        self.reason = reason


class AuthFailed(GroupwareError):
    code = "authFailed"
    fault_side = "Client"


class SessionInvalid(GroupwareError):
    code = "sessionInvalid"
    fault_side = "Client"


class Forbidden(GroupwareError):
    code = "forbidden"
    fault_side = "Client"


class NotFound(GroupwareError):
    code = "notFound"
    fault_side = "Client"


class Conflict(GroupwareError):
    code = "conflict"
    fault_side = "Client"


# Reasons of a Conflict: another object of the folder has the iCalendar UID; the
# If-Match / If-None-Match condition did not hold.
UID_CONFLICT = "uidConflict"
PRECONDITION_FAILED = "preconditionFailed"
# Reason of a BadRequest: the request ran into one of the server's configured limits.
LIMIT = "limit"
# Reason of an AuthFailed: the caller's address is banned after too many failed logons;
# the password was not checked.
BANNED = "banned"


class Quota(GroupwareError):
    code = "quota"
    fault_side = "Client"


class TooLarge(GroupwareError):
    code = "tooLarge"
    fault_side = "Client"


class BadRequest(GroupwareError):
    code = "badRequest"
    fault_side = "Client"


class Unavailable(GroupwareError):
    code = "unavailable"


class StorageFull(GroupwareError):
    """The store's disk (blob directory, upload spool or database) has no room left: the
    server's condition, not the user's quota, and over once an admin frees space."""
    code = "storageFull"


class Internal(GroupwareError):
    code = "internal"


class BlobDamaged(Internal):
    """A stored blob failed its integrity check (altered, truncated, swapped, or sealed
    with a key the store lacks): the server's fault, answered like any internal error,
    never with the damaged bytes."""


ERRORS_BY_CODE: dict[str, type[GroupwareError]] = {
    cls.code: cls
    for cls in (AuthFailed, SessionInvalid, Forbidden, NotFound, Conflict, Quota,
                TooLarge, BadRequest, Unavailable, StorageFull, Internal)
}


def error_for_code(code: str, message: str = "", reason: str | None = None) -> GroupwareError:
    """The exception for a fault code; unknown codes become `Internal`."""
    return ERRORS_BY_CODE.get(code, Internal)(message, reason)
