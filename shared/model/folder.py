"""A folder: its attributes as last read from the server and the calls that change the
folder itself; what it does with its items comes from one mixin per job."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from lxml import etree
from twisted.internet import defer

from shared import codec
from shared.errors import BadRequest
from shared.model.calendar_items import CalendarItems
from shared.model.contacts import Contacts
from shared.model.mail_items import MailItems
from shared.model.operations import folder_id
from shared.model.publishing import FolderSharing
from shared.model.streams import FolderStreams
from shared.model.tables import FolderTables

if TYPE_CHECKING:
    from shared.model.store import Store

_KEEP: Any = object()  # "leave the parent as it is" for Folder.rename


class Folder(MailItems, CalendarItems, Contacts, FolderTables, FolderSharing, FolderStreams):
    """A folder as last read from the server; methods act on the server, not on these attributes."""

    def __init__(self, store: Store, el: etree._Element | None) -> None:
        if el is None:
            raise BadRequest("reply without a folder")
        self.store = store
        self.session = store.session
        self._read(el)

    def _read(self, el: etree._Element) -> None:
        self.id: int = codec.required_int(el, "id")
        self.parent_id: int | None = codec.int_field(el, "parentId")
        self.store_id: int | None = codec.int_field(el, "storeId")
        self.name: str = codec.field(el, "name", "") or ""
        self.container_class: str = codec.field(el, "containerClass", "mail") or "mail"
        self.role: str | None = codec.field(el, "role") or None
        self.uid_validity: int = codec.int_field(el, "uidValidity", 0)  # type: ignore[assignment]
        self.uid_next: int = codec.int_field(el, "uidNext", 1)  # type: ignore[assignment]
        self.highest_modseq: int = codec.int_field(el, "highestModseq", 0)  # type: ignore[assignment]
        self.count: int = codec.int_field(el, "count", 0)  # type: ignore[assignment]
        self.unseen: int = codec.int_field(el, "unseen", 0)  # type: ignore[assignment]
        self.size: int = codec.int_field(el, "size", 0)  # type: ignore[assignment]
        self.display_name: str | None = codec.field(el, "displayName")
        self.color: str | None = codec.field(el, "color")
        self.description: str | None = codec.field(el, "description")
        # The caller's rights here, RFC 4314 letters (shared/rights.py): "lrswipkxtea" in
        # their own store.
        self.rights: str = codec.field(el, "rights", "") or ""
        # The login whose store holds the folder, in a listing of shared folders (None for
        # the public store, and in a listing of one's own store).
        self.owner: str | None = codec.field(el, "owner")
        # Only those with the right `a` are told the secret of a published calendar.
        self.publish_token: str | None = codec.field(el, "publishToken")
        self.properties: dict[str, str] = {p.get("name"): codec.text(p) or ""
                                           for p in el.iterchildren(codec.gw("property"))}

    @classmethod
    def from_row(cls, store: Store, row: Mapping[str, Any]) -> Folder:
        """A folder from a row of listFolders' table form (which has no properties, and
        leaves out a field that no folder has)."""
        folder = cls.__new__(cls)
        folder.store = store
        folder.session = store.session
        folder.id = row["id"]
        folder.parent_id = row.get("parentId")
        folder.store_id = row.get("storeId")
        folder.name = row.get("name") or ""
        folder.container_class = row.get("containerClass") or "mail"
        folder.role = row.get("role") or None
        folder.uid_validity = row.get("uidValidity") or 0
        folder.uid_next = row.get("uidNext") or 1
        folder.highest_modseq = row.get("highestModseq") or 0
        folder.count = row.get("count") or 0
        folder.unseen = row.get("unseen") or 0
        folder.size = row.get("size") or 0
        folder.display_name = row.get("displayName")
        folder.color = row.get("color")
        folder.description = row.get("description")
        folder.rights = row.get("rights") or ""
        folder.owner = row.get("owner")
        folder.publish_token = row.get("publishToken")
        folder.properties = {}
        return folder

    def _reread(self, r: etree._Element) -> Folder:
        """Read the folder an update answered with into self; returns self."""
        self._read(r.find(codec.gw("folder")))
        return self

    def __repr__(self) -> str:
        return f"<Folder {self.id} {self.name!r} {self.container_class}>"

    def refresh(self) -> defer.Deferred:
        """Re-read counters (uidNext, highestModseq, count...) from the server; fires with self."""
        def update(folder: Folder) -> Folder:
            self.__dict__.update({k: v for k, v in folder.__dict__.items() if k not in ("store", "session")})
            return self
        return self.store.folder(self.id).addCallback(update)

    def rename(self, name: str | None = None, parent: Folder | int | None = _KEEP,
               display_name: str | None = None, color: str | None = None,
               description: str | None = None) -> defer.Deferred:
        """Rename and/or move (`parent=None` = top level); fires with self, updated."""
        fields: list[tuple[str, Any]] = [("name", name)]
        if parent is not _KEEP:
            pid = folder_id(parent)
            fields.append(("parentId", codec.element("parentId", nil="true") if pid is None else pid))
        fields += [("displayName", display_name), ("color", color), ("description", description)]
        return self.call("updateFolder", *fields).addCallback(self._reread)

    def change_class(self, container_class: str) -> defer.Deferred:
        """Turn a mail folder into a placeholder, deleting its items, or a placeholder
        into an empty mail folder (the only changes the store makes); fires with self."""
        return self.call("updateFolder", ("containerClass", container_class)).addCallback(self._reread)

    def delete(self, uids: Iterable[int] | str | None = None) -> defer.Deferred:
        """Without uids: delete this folder and everything in it. With uids: delete
        (expunge) those items, firing with the sorted uids that went."""
        if uids is None:
            return self.call("deleteFolder").addCallback(lambda _: None)
        return self.delete_items(uids)

    def empty(self) -> defer.Deferred:
        """Delete every item; fires with the new highest modseq."""
        return self.call("emptyFolder").addCallback(lambda r: codec.int_field(r, "highestModseq"))

    def set_properties(self, properties: Mapping[str, str]) -> defer.Deferred:
        """Replace the properties a client keeps on this folder (name -> text; the
        owner's to change); fires with self, updated."""
        fields = []
        for name, value in sorted(properties.items()):
            el = codec.element("property")
            el.set("name", name)
            codec.add_text(el, value)
            fields.append(("property", el))
        return self.call("setFolderProperties", *fields).addCallback(self._reread)
