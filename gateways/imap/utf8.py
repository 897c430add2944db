"""UTF8=ACCEPT (RFC 6855), switched on with ENABLE (commands/general.py).

Once on (`IMAPConnection.utf8`), mailbox names travel as UTF-8 both ways instead of
modified UTF-7 (the grammar reads them so when `parse_command` is told, and LIST, LSUB
and STATUS write them so), and APPEND takes a message as `UTF8 (~{n})` (RFC 6855 §4).
Message text with 8-bit header fields was always sent as it is stored.
"""
from __future__ import annotations

from gateways.imap.dispatch import capability

capability("UTF8=ACCEPT")

