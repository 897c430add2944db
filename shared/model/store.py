"""A store: the folders in it, and the mailbox names subscribed to in it."""
from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from shared import codec
from shared.errors import BadRequest, NotFound
from shared.model.folder import Folder
from shared.model.operations import folder_id

if TYPE_CHECKING:
    from shared.model.session import Session


class Store:
    """A user's (or the public) store: its folders, and the subscription list."""

    def __init__(self, session: Session, store_id: int, public: bool = False) -> None:
        self.session = session
        self.id = store_id
        self.public = public

    def _store_field(self) -> list[tuple[str, Any]]:
        # The session's own store is the server's default; naming it is harmless but noisy.
        return [] if self.id == self.session.store_id else [("storeId", self.id)]

    def folders(self, counts: bool = True) -> defer.Deferred:
        """Fires with every folder of the store visible to the user; without `counts`
        their count, unseen and size read 0 (a cheaper listing)."""
        fields = self._store_field() + ([] if counts else [("counts", False)])
        return self.session.call("listFolders", fields).addCallback(
            lambda r: [Folder(self, el) for el in r.iterchildren(codec.gw("folder"))])

    def folder(self, folder_id: int) -> defer.Deferred:
        """Fires with one folder by id; NotFound if it is not (or no longer) there."""
        def pick(folders: list[Folder]) -> Folder:
            for f in folders:
                if f.id == folder_id:
                    return f
            raise NotFound(f"no folder {folder_id}")
        return self.folders().addCallback(pick)

    def by_role(self, role: str) -> defer.Deferred:
        """Fires with the folder holding a special-use role, or None."""
        return self.folders().addCallback(lambda fs: next((f for f in fs if f.role == role), None))

    def inbox(self) -> defer.Deferred:
        def need(folder: Folder | None) -> Folder:
            if folder is None:
                raise NotFound("the store has no inbox")
            return folder
        return self.by_role("inbox").addCallback(need)

    def create_folder(self, name: str, parent: Folder | int | None = None,
                      container_class: str = "mail", role: str | None = None) -> defer.Deferred:
        fields = [*self._store_field(), ("parentId", folder_id(parent)), ("name", name),
                  ("containerClass", container_class), ("role", role)]
        return self.session.call("createFolder", fields).addCallback(
            lambda r: Folder(self, r.find(codec.gw("folder"))))

    def public_store(self) -> Store:
        return self.session.public_store()

    # -- subscriptions: names the gateway gives, kept whether or not a folder has the name now;
    # `defaults` are what a list that no call has started yet starts with
    def _subscription_call(self, op: str, fields: list[tuple[str, Any]], defaults: Iterable[str]) -> defer.Deferred:
        if self.id != self.session.store_id:
            return defer.fail(BadRequest("subscriptions are kept for the session's own store only"))
        return self.session.call(op, fields + [("default", n) for n in defaults])

    def subscriptions(self, defaults: Iterable[str] = ()) -> defer.Deferred:
        """Fires with the subscribed names, sorted."""
        return self._subscription_call("listSubscriptions", [], defaults).addCallback(
            lambda r: [codec.text(el) or "" for el in r.iterchildren(codec.gw("name"))])

    def subscribe(self, names: Iterable[str], defaults: Iterable[str] = ()) -> defer.Deferred:
        """Put names on the subscription list (existing or not); fires with None."""
        return self._subscription_call("subscribe", [("name", n) for n in names], defaults).addCallback(
            lambda _: None)

    def unsubscribe(self, names: Iterable[str], defaults: Iterable[str] = ()) -> defer.Deferred:
        """Take names off the subscription list; fires with None."""
        return self._subscription_call("unsubscribe", [("name", n) for n in names], defaults).addCallback(
            lambda _: None)
