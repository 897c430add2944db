"""What a failed operation (or one message of a deliverMessages call) answers: every
exception as the `GroupwareError` whose stable code the caller maps to its protocol."""
from __future__ import annotations

import logging

from server.storage.engine import is_storage_full, is_unavailable
from shared.budget import OutOfTime, WorkCancelled
from shared.errors import LIMIT, BadRequest, GroupwareError, Internal, StorageFull, Unavailable

log = logging.getLogger("server.soap.dispatch")


def as_groupware_error(err: Exception, op: str, peer: str) -> GroupwareError:
    """The error `op` from `peer` answers for `err`; what is not the caller's doing is logged."""
    if isinstance(err, OutOfTime):
        log.warning("%s from %s stopped: %s", op, peer, err)
        return BadRequest(f"{err}; ask for less", LIMIT)
    if isinstance(err, WorkCancelled):
        return Unavailable(f"the request was cancelled: {err}")
    if isinstance(err, GroupwareError):
        if isinstance(err, Internal):
            log.error("%s from %s failed: %s", op, peer, err.message)
        return err
    if is_storage_full(err):
        log.error("%s from %s: the store's disk is full: %s", op, peer, err)
        return StorageFull("the store's disk is full")
    if is_unavailable(err):
        log.error("%s from %s: store database unavailable: %s", op, peer, err)
        return Unavailable("store database unavailable")
    log.error("%s from %s failed unexpectedly", op, peer, exc_info=err)
    return Internal("internal server error")
