"""Store faults as ManageSieve answers (RFC 5804 §1.3 response codes).

An outage of the store is never the client's fault: it is `NO (TRYLATER)`, and the
client may repeat the command later.
"""
from __future__ import annotations

import logging
from typing import Any

from twisted.python.failure import Failure

from gateways.managesieve.responses import (
    NONEXISTENT, QUOTA_MAXSCRIPTS, QUOTA_MAXSIZE, TRYLATER,
)
from shared.errors import BadRequest, Conflict, NotFound, Quota, TooLarge

log = logging.getLogger("gateways.managesieve")


def answer_failure(conn: Any, failure: Failure, conflict_code: str | None = None) -> None:
    """Answer NO for a failed store call; `conflict_code` names what a conflict means to
    the command (ACTIVE for DELETESCRIPT, ALREADYEXISTS for RENAMESCRIPT)."""
    error = failure.value
    if isinstance(error, NotFound):
        conn.no("There is no script of that name.", NONEXISTENT)
    elif isinstance(error, Conflict):
        conn.no(getattr(error, "message", str(error)), conflict_code)
    elif isinstance(error, TooLarge):
        conn.no("The script is too large.", QUOTA_MAXSIZE)
    elif isinstance(error, Quota):
        conn.no("Too many scripts.", QUOTA_MAXSCRIPTS)
    elif isinstance(error, BadRequest):
        conn.no(error.message)
    else:
        user = conn.session.user.name if conn.session is not None else "-"
        log.warning("managesieve for %s: store unavailable: %s", user, failure.getErrorMessage())
        conn.no("The store is unavailable, try again later.", TRYLATER)
