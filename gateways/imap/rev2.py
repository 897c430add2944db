"""IMAP4rev2 (RFC 9051), turned on per connection by `ENABLE IMAP4rev2`.

The server greets as IMAP4rev1 and advertises IMAP4rev2 beside it; until the client
enables it, every answer is RFC 3501's. Once enabled, the differences of RFC 9051
Appendix E that concern what the server says apply:

- no `\\Recent` (RFC 9051 E.7): no `* n RECENT` after SELECT, EXAMINE or new mail, and
  no `\\Recent` in FLAGS of messages (selected.py, commands/select.py);
- SELECT and EXAMINE send no `[UNSEEN n]` code (E.7) and do send the mailbox's `* LIST`
  with its attributes (§6.3.2), and `* OK [CLOSED]` when they replace a selected
  mailbox (§6.3.2, §7.1) (commands/select.py);
- SEARCH answers with ESEARCH (E.2, §6.4.4): `* ESEARCH (TAG "t") [UID] ALL set`,
  as if `RETURN (ALL)` had been given (commands/search.py);
- DELETE of a mailbox with children is `NO [HASCHILDREN]` (§7.1) (commands/mailboxes.py);
- mailbox names travel as UTF-8 both ways, not modified UTF-7 (§5.1, E.1), as after
  `ENABLE UTF8=ACCEPT` (`IMAPConnection.utf8`).

STATUS DELETED (§6.3.11, commands/list_status.py) and SEARCHRES (RFC 5182, folded into RFC 9051:
`RETURN (SAVE)` and `$`, commands/search.py) work on every connection.

What RFC 9051 folds in from extensions the gateway already has is unchanged by
ENABLE: ENABLE, IDLE, NAMESPACE, UNSELECT, UIDPLUS, ESEARCH, SEARCHRES, SASL-IR, LIST-EXTENDED,
LIST-STATUS, MOVE, LITERAL-, BINARY, SPECIAL-USE, STATUS=SIZE, `\\NonExistent` and the
CHILDREN attributes in LIST, and the RFC 5530 response codes.
"""
from __future__ import annotations

from typing import Any

IMAP4REV2 = "IMAP4REV2"  # as the connection's `enabled` holds it (advertised by commands/general.py)


def enabled(names: Any) -> bool:
    """Whether IMAP4rev2 is on, given a connection's (or a selected mailbox's) `enabled`."""
    return IMAP4REV2 in names
