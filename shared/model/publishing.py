"""Sharing a folder: calendars published at a secret read-only URL, and grants to other users."""
from __future__ import annotations

import base64
from typing import Any

from lxml import etree
from twisted.internet import defer

from shared import codec
from shared.client import StoreClient
from shared.model.operations import FolderOperations


class FolderSharing(FolderOperations):
    """The owner's side: publish or unpublish a calendar, grant rights on a folder."""

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

    def grant(self, grantee: str, rights: str) -> defer.Deferred:
        """Share with another user: rights none/read/write/owner."""
        return self.call("grantFolder", ("grantee", grantee), ("rights", rights)).addCallback(lambda _: None)


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
