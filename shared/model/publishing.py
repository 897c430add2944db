"""Sharing a folder: calendars published at a secret read-only URL, and the folder's ACL
(RFC 4314 rights for users, groups and anyone; shared/rights.py)."""
from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from lxml import etree
from twisted.internet import defer

from shared import codec
from shared.client import StoreClient
from shared.model.operations import FolderOperations


@dataclass(frozen=True)
class AclEntry:
    """One entry of a folder's ACL: `identifier` is a login, "$group" or "anyone"; `rights`
    RFC 4314 letters; `inherited` when the entry sits on a folder above this one."""
    identifier: str
    rights: str
    inherited: bool = False


class FolderSharing(FolderOperations):
    """Publish or unpublish a calendar; read and change the folder's ACL.

    The caller's own rights on the folder are `Folder.rights` (letters, shared/rights.py)
    as last read; `my_rights()` asks again. Changing the ACL needs the right `a`
    (Forbidden otherwise); an unknown user identifier fails with NotFound."""

    # Only the owner is told the secret of a published calendar.
    publish_token: str | None

    def publish(self) -> defer.Deferred:
        """Publish this calendar at a secret read-only URL (the owner's to do); fires with
        the new token, which replaces an older one."""
        def keep(r: etree._Element) -> str:
            self.publish_token = codec.required(r, "token")
            return self.publish_token
        return self.call("publishCalendar", ("publish", True)).addCallback(keep)

    def unpublish(self) -> defer.Deferred:
        """Revoke the secret URL of this calendar, if it has one."""
        def forget(_: Any) -> None:
            self.publish_token = None
        return self.call("publishCalendar", ("publish", False)).addCallback(forget)

    def acl(self) -> defer.Deferred:
        """Fires with the folder's ACL as a list of AclEntry (RFC 4314 GETACL), the store
        owner first; without the right `a`, only the caller's own entry."""
        def decode(r: etree._Element) -> list[AclEntry]:
            return [AclEntry(codec.required(e, "identifier"), codec.field(e, "rights", "") or "",
                             codec.bool_field(e, "inherited")) for e in r.iterchildren(codec.gw("entry"))]
        return self.call("getAcl").addCallback(decode)

    def set_acl(self, identifier: str, rights: str) -> defer.Deferred:
        """Set the entry of `identifier` (login, "$group", "anyone") on this folder to `rights`
        (RFC 4314 SETACL: "lrs" replaces, "+w" adds, "-w" removes; "" keeps an entry that
        grants nothing and so stops inheritance); fires with the letters it now has."""
        return self.call("setAcl", ("identifier", identifier), ("rights", rights)).addCallback(
            lambda r: codec.field(r, "rights", "") or "")

    def delete_acl(self, identifier: str) -> defer.Deferred:
        """Remove the entry of `identifier` on this folder (RFC 4314 DELETEACL), so what it
        inherits from above applies again; fires with whether there was one."""
        return self.call("deleteAcl", ("identifier", identifier)).addCallback(
            lambda r: codec.bool_field(r, "deleted"))

    def my_rights(self) -> defer.Deferred:
        """Fires with the caller's rights on this folder (RFC 4314 MYRIGHTS) and keeps them
        in `rights`."""
        def keep(r: etree._Element) -> str:
            self.rights = codec.field(r, "rights", "") or ""
            return self.rights
        return self.call("myRights").addCallback(keep)

    def list_rights(self, identifier: str) -> defer.Deferred:
        """Fires with (required, optional) for `identifier` (RFC 4314 LISTRIGHTS): the letters it
        always has here, and the groups of letters that may be granted to it."""
        return self.call("listRights", ("identifier", identifier)).addCallback(
            lambda r: (codec.field(r, "required", "") or "",
                       [codec.text(e) or "" for e in r.iterchildren(codec.gw("optional"))]))


def read_published_calendar(client: StoreClient, token: str) -> defer.Deferred:
    """The subscriber's side, without a logon: see `Adapter.read_published_calendar`."""
    def decode(r: etree._Element) -> dict[str, Any]:
        folder = r.find(codec.gw("folder"))
        rows, table = codec.table_from_xml(r.find(codec.gw("table")))
        sources = table.get("source", [None] * rows)
        items = [(n, e, base64.b64decode(s).decode("utf-8")) for n, e, s
                 in zip(table.get("name", []), table.get("etag", []), sources) if s is not None]
        return {"name": codec.field(folder, "name", ""), "display_name": codec.field(folder, "displayName"),
                "description": codec.field(folder, "description"), "items": items}
    return client.call("readPublishedCalendar", [("token", token)]).addCallback(decode)
