"""OBJECTID (RFC 8474): MAILBOXID in SELECT, CREATE and STATUS; EMAILID and THREADID
in FETCH (commands/fetch.py); and SAVEDATE (RFC 8514), the time a message was stored into its
mailbox, in FETCH.

MAILBOXID is the folder's store id with its UIDVALIDITY: it stays through RENAME, and
a folder made later never gets the id of a deleted one. EMAILID is a random id the
store gives a message when it is stored, and copies and moves keep. THREADID is NIL:
the store keeps no thread of its own (RFC 8474 §5.2 allows that).
"""
from __future__ import annotations

from typing import Any

from gateways.imap.dispatch import capability

capability("OBJECTID")
capability("SAVEDATE")


def mailbox_id(folder: Any) -> str:
    """The objectid (RFC 8474 §4) of a folder."""
    return f"F{folder.id}-{folder.uid_validity}"


def mailbox_id_code(folder: Any) -> str:
    """The `MAILBOXID (...)` response code."""
    return f"MAILBOXID ({mailbox_id(folder)})"


def legacy_email_id(folder_id: int, uid: int) -> str:
    """The EMAILID of a message stored before the store kept one (as its migration
    gave the rest)."""
    return f"L{folder_id}-{uid}"
