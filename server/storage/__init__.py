"""Relational storage of the store server: users, folders, items, changes."""
from .folders import KEEP
from .items import NewMessage
from .store import Storage

__all__ = ["Storage", "KEEP", "NewMessage"]
