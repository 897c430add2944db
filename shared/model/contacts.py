"""Contacts in a folder: vCards saved by resource name with ETag conditions (CardDAV's view)."""
from __future__ import annotations

from twisted.internet import defer

from shared import codec
from shared.model.operations import truthy
from shared.model.tables import FolderTables


class Contacts(FolderTables):
    """vCards, kept by the store as they are given."""

    def save_contact(self, name: str, vcard: str, if_match: str | None = None,
                     if_none_match: bool = False) -> defer.Deferred:
        """Create or replace the vCard `name`; fires with {uid, modseq, etag, created}.

        Fails with BadRequest when the text is not one vCard 3.0 or 4.0, Conflict when
        `if_match` does not match, `if_none_match` finds one, or another contact has its UID.
        """
        fields = [("name", name), ("vcard", vcard), ("ifMatch", if_match),
                  ("ifNoneMatch", True if if_none_match else None)]
        return self.call("saveContact", *fields).addCallback(lambda r: {
            "uid": codec.int_field(r, "uid"), "modseq": codec.int_field(r, "modseq"),
            "etag": codec.field(r, "etag"), "created": truthy(codec.field(r, "created"))})
