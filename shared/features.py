"""The protocols a user may be allowed or refused one by one: named here once for the store
server, the adapter, the gateways and the command line.

A gateway logs its users in under its protocol's name (`shared.login.LoginService`); the
store refuses a logon for a protocol switched off for the user or server-wide
(`disabled_features`), and a gateway host may switch one off for itself as well.
"""
from __future__ import annotations

IMAP = "imap"
POP3 = "pop3"
CALDAV = "caldav"
# ManageSieve: managing one's own Sieve scripts (delivery runs the active one regardless).
SIEVE = "sieve"

FEATURES: tuple[str, ...] = (IMAP, POP3, CALDAV, SIEVE)

# The onboarding web page: every user may log in to it (not switched per user), so that
# anyone can find out how to set up their devices.
WEB = "web"
