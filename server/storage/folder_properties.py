"""Properties clients keep on a folder without the store interpreting them."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import Connection, delete, insert, select

from shared.errors import BadRequest, TooLarge

from .base import StorageBase, chunks
from .schema import folder_properties

# Enough for a VTIMEZONE in CalDAV's calendar-timezone; a folder is not a blob store.
MAX_PROPERTY_NAME = 255
MAX_PROPERTY_VALUE = 16 * 1024
MAX_PROPERTIES = 64


def _check(props: Mapping[str, str]) -> None:
    if len(props) > MAX_PROPERTIES:
        raise TooLarge(f"at most {MAX_PROPERTIES} properties per folder")
    for name, value in props.items():
        if not isinstance(name, str) or not name or len(name) > MAX_PROPERTY_NAME:
            raise BadRequest("bad property name")
        if not isinstance(value, str):
            raise BadRequest(f"property {name} has no text value")
        if len(value) > MAX_PROPERTY_VALUE:
            raise TooLarge(f"property {name} is over {MAX_PROPERTY_VALUE} characters")


class FolderPropertiesMixin(StorageBase):
    def set_folder_properties(self, folder_id: int, props: Mapping[str, str]) -> None:
        """Replace the folder's properties with `props` (name -> text)."""
        props = dict(props)
        _check(props)

        def run(conn: Connection) -> None:
            self._lock_folders(conn, [folder_id])
            conn.execute(delete(folder_properties).where(folder_properties.c.folder_id == folder_id))
            if props:
                conn.execute(insert(folder_properties), [{"folder_id": folder_id, "name": n, "value": v}
                                                         for n, v in sorted(props.items())])
        self._write(run)

    def folder_properties(self, folder_ids: Iterable[int]) -> dict[int, dict[str, str]]:
        """folder id -> {name: value}, for the folders that have any."""
        ids = sorted(set(folder_ids))
        out: dict[int, dict[str, str]] = {}
        if not ids:
            return out

        def run(conn: Connection) -> None:
            for part in chunks(ids):
                for fid, name, value in conn.execute(
                        select(folder_properties.c.folder_id, folder_properties.c.name, folder_properties.c.value)
                        .where(folder_properties.c.folder_id.in_(part))).all():
                    out.setdefault(fid, {})[name] = value
        self._read(run)
        return out


__all__ = ["FolderPropertiesMixin", "MAX_PROPERTIES", "MAX_PROPERTY_NAME", "MAX_PROPERTY_VALUE"]
