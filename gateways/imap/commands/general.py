"""Commands valid in any state: CAPABILITY, NOOP, LOGOUT (RFC 3501 §6.1), ID (RFC 2971),
ENABLE (RFC 5161); and the capabilities that hold whatever the connection does."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from gateways.imap import dispatch
from gateways.imap.dispatch import ANY, AUTHENTICATED_OR_SELECTED, NOT_AUTHENTICATED, SELECTED, capability, command
from gateways.imap.grammar import writer as w

if TYPE_CHECKING:
    from gateways.imap.connection import IMAPConnection

log = logging.getLogger("gateways.imap")

# What ENABLE can switch on, once the modules that implement it advertise it, by the
# upper-case name ENABLE reads and `enabled` keeps, with the capability's spelling.
ENABLEABLE = {"CONDSTORE": "CONDSTORE", "QRESYNC": "QRESYNC", "UTF8=ACCEPT": "UTF8=ACCEPT",
              "IMAP4REV2": "IMAP4rev2"}
SERVER_ID = (("name", "groupware"), ("vendor", "groupware"), ("support-url", None))

capability("IMAP4rev1")
capability("IMAP4rev2")  # once ENABLEd (rev2.py)
# LITERAL- before login (at most 4096 octets per non-synchronizing literal), LITERAL+ after.
capability("LITERAL-", lambda conn: conn.state == NOT_AUTHENTICATED)
capability("LITERAL+", lambda conn: conn.state != NOT_AUTHENTICATED)
capability("ID")
capability("ENABLE")


@command("CAPABILITY", ANY)
def capability_command(conn: IMAPConnection, cmd: Any) -> None:
    conn.send(w.capability(dispatch.capabilities(conn)))


@command("NOOP", ANY)
async def noop(conn: IMAPConnection, cmd: Any) -> None:
    # Also the client's way to ask for news: look at the store now rather than
    # wait for the push, so what another session just did shows at once.
    if conn.state == SELECTED and conn.selected is not None:
        await conn.selected.refresh()


@command("LOGOUT", ANY)
def logout(conn: IMAPConnection, cmd: Any) -> None:
    conn.send(w.untagged("BYE", "Logging out"))
    conn.logout()


@command("ID", ANY)
def id_command(conn: IMAPConnection, cmd: Any) -> None:
    fields = cmd.args.fields
    if fields is not None:
        # Kept for the log (which client is this?), bounded: the grammar limits the count.
        conn.client_id = {str(k)[:64].lower(): (v[:256] if v else v) for k, v in fields[:30]}
        name = conn.client_id.get("name")
        if name:
            log.info("imap client: %s %s rip=%s", name, conn.client_id.get("version") or "", conn.peer_host)
    conn.send(w.id_response(SERVER_ID))


@command("ENABLE", AUTHENTICATED_OR_SELECTED)
def enable(conn: IMAPConnection, cmd: Any) -> None:
    turned_on = []
    for name in cmd.args.capabilities:
        if name in ENABLEABLE and dispatch.advertised(conn, ENABLEABLE[name]) and name not in conn.enabled:
            turned_on.append(ENABLEABLE[name])
            conn.enabled.add(name)
    if "QRESYNC" in conn.enabled and "CONDSTORE" not in conn.enabled:
        conn.enabled.add("CONDSTORE")  # RFC 7162 §3.2.3: QRESYNC implies CONDSTORE
    conn.send(w.enabled(turned_on))
