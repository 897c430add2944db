"""IMAP QUOTA (RFC 9208): GETQUOTAROOT, GETQUOTA, SETQUOTA refused, and the STATUS items
DELETED and DELETED-STORAGE (§4.2.1-2) that its MESSAGE and STORAGE resources bring.

A user's whole store is one quota root, named "" as Dovecot names its default root;
its resources are STORAGE (the items' sizes in units of 1024 octets, RFC 9208 §5.1)
against the level the user's own writes stop at (quota_soft, else quota_hard), and
MESSAGE (items) against quota_messages. A resource without a limit is not reported,
and a store with no limit has no quota root. The store keeps and enforces the quota
(APPEND, COPY and MOVE over it fail with NO [OVERQUOTA], mapped once by the protocol);
limits are set by the administrator (`groupware quota set`), so SETQUOTA says NO.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateways.imap.dispatch import AUTHENTICATED_OR_SELECTED, No, capability, command
from gateways.imap.grammar import writer as w
from gateways.imap.tree import MailboxTree
from shared.model.quota import QuotaInfo

if TYPE_CHECKING:
    from gateways.imap.connection import IMAPConnection

capability("QUOTA")
capability("QUOTA=RES-STORAGE")
capability("QUOTA=RES-MESSAGE")

ROOT = ""


def resources(quota: QuotaInfo) -> list[tuple[str, int, int]]:
    """(name, usage, limit) of each resource that has a limit."""
    out = []
    if quota.limit_bytes:
        out.append(("STORAGE", -(-quota.used_bytes // 1024), quota.limit_bytes // 1024))
    if quota.max_items:
        out.append(("MESSAGE", quota.used_items, quota.max_items))
    return out


async def deleted_values(folder: Any) -> dict[str, int]:
    """STATUS DELETED (messages flagged \\Deleted) and DELETED-STORAGE (what expunging them
    would free, in units of 1024 octets, as STORAGE counts) of a folder, in one query."""
    total, table = await folder.query(["size"], {"flag": ("\\Deleted", True)})
    return {"DELETED": total, "DELETED-STORAGE": -(-sum(table.get("size") or ()) // 1024)}


@command("GETQUOTAROOT", AUTHENTICATED_OR_SELECTED)
async def getquotaroot(conn: IMAPConnection, cmd: Any) -> None:
    mailbox = (await MailboxTree.load(conn, counts=False)).selectable(cmd.args.mailbox)
    if mailbox.folder.store.id != conn.session.store_id:
        # Another user's or the public store: not under this user's quota root.
        conn.send(w.quotaroot_response(mailbox.name, [], conn.utf8))
        return
    found = resources(await conn.session.quota())
    conn.send(w.quotaroot_response(mailbox.name, [ROOT] if found else [], conn.utf8))
    if found:
        conn.send(w.quota_response(ROOT, found))


@command("GETQUOTA", AUTHENTICATED_OR_SELECTED)
async def getquota(conn: IMAPConnection, cmd: Any) -> None:
    found = resources(await conn.session.quota())
    if cmd.args.root != ROOT or not found:
        raise No("No such quota root.", "NONEXISTENT")
    conn.send(w.quota_response(ROOT, found))


@command("SETQUOTA", AUTHENTICATED_OR_SELECTED)
def setquota(conn: IMAPConnection, cmd: Any) -> None:
    raise No("Quotas are set by the administrator.", "NOPERM")
