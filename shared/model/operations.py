"""What every part of a Folder stands on: one way to call the store on a folder, and the
turning of a caller's arguments (uid sets, flags, folders) into request fields."""
from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from shared.flags import flag_names

if TYPE_CHECKING:
    from shared.model.folder import Folder
    from shared.model.session import Session
    from shared.model.store import Store


class FolderOperations:
    """The state each folder mixin relies on, read from the server by `Folder`."""

    store: Store
    session: Session
    id: int
    container_class: str
    highest_modseq: int

    def call(self, op: str, *fields: tuple[str, Any], long_poll: bool = False) -> defer.Deferred:
        """`op` on this folder: the session's call with the folder's id first."""
        return self.session.call(op, [("folderId", self.id), *fields], long_poll=long_poll)


def frozen_uids(uids: Iterable[int] | str) -> Iterable[int] | str:
    """Generators are consumed once; freeze them so emptiness and encoding agree."""
    return uids if isinstance(uids, (str, list, tuple, set, frozenset)) else list(uids)


def no_uids(uids: Iterable[int] | str) -> bool:
    if isinstance(uids, str):
        return not uids.strip()
    return len(uids) == 0  # type: ignore[arg-type]


def flag_text(flags: Iterable[str] | int | str) -> str:
    """Flags as the contract spells them: names separated by spaces."""
    if isinstance(flags, int):
        return " ".join(flag_names(flags))
    if isinstance(flags, str):
        return " ".join(flags.split())
    return " ".join(flags)


def folder_id(folder: Folder | int | None) -> int | None:
    """The id of a Folder, or the folder id (or None) given as it is."""
    return folder if folder is None or isinstance(folder, int) else folder.id


def truthy(value: str | None) -> bool:
    """A boolean as the server writes it in a field or an attribute."""
    return (value or "").strip().lower() in ("true", "1", "yes")
