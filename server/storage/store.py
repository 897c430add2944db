"""The Storage facade: one object with every store operation the server needs."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

from .acl import AclMixin
from .address_bans import AddressBansMixin
from .calendar_batch import CalendarBatchMixin
from .calendar_imports import CalendarImportsMixin
from .changes import ChangesMixin
from .delivery import DeliveryMixin
from .engine import unavailable_on_failure
from .folder_properties import FolderPropertiesMixin
from .folders import KEEP, FoldersMixin
from .items import ItemsMixin
from .occurrences import OccurrencesMixin
from .publishing import PublishingMixin
from .quota import QuotaMixin
from .sieve import SieveScriptsMixin
from .subscriptions import SubscriptionsMixin
from .used_once import UsedOnceMixin
from .users import UsersMixin

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class Storage(UsersMixin, FoldersMixin, AclMixin, ItemsMixin, ChangesMixin, OccurrencesMixin, PublishingMixin,
              CalendarBatchMixin, CalendarImportsMixin, FolderPropertiesMixin, SubscriptionsMixin, SieveScriptsMixin,
              DeliveryMixin, AddressBansMixin, UsedOnceMixin, QuotaMixin):
    """Users, stores, folders, items and changes over SQLite or MySQL/MariaDB.

    Thread-safe: every call runs its own short transaction on a pooled connection.
    """

    KEEP = KEEP

    def __init__(self, url: str, blobs: Any = None) -> None:
        super().__init__(url, blobs)

    def migrate(self) -> None:
        """Bring the schema to the newest revision (creates it, and the public store, if new)."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        # No alembic.ini: the migration runs on our own engine's connection.
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        with unavailable_on_failure():
            with self.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
