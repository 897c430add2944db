"""Calendars published at a secret URL, for webcal subscribers that cannot log in."""
from __future__ import annotations

import secrets

from sqlalchemy import Connection, select, update

from shared.errors import NotFound

from .base import StorageBase
from .schema import folders


class PublishingMixin(StorageBase):
    def publish_folder(self, folder_id: int) -> str:
        """Give the folder a new secret token (an older one stops working); returns it."""
        token = secrets.token_urlsafe(24)

        def run(conn: Connection) -> None:
            done = conn.execute(update(folders).where(folders.c.id == folder_id).values(publish_token=token))
            if done.rowcount != 1:
                raise NotFound(f"folder {folder_id} not found")
        self._write(run)
        return token

    def unpublish_folder(self, folder_id: int) -> bool:
        """Revoke the folder's secret URL; False if it had none."""
        def run(conn: Connection) -> bool:
            return conn.execute(update(folders).where(folders.c.id == folder_id, folders.c.publish_token.is_not(None))
                                .values(publish_token=None)).rowcount == 1
        return self._write(run)

    def published_folder_id(self, token: str) -> int | None:
        if not token or len(token) > 64:
            return None
        return self._read(lambda c: c.execute(select(folders.c.id).where(folders.c.publish_token == token)).scalar())
