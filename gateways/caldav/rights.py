"""Radicale rights plugin: a user reads and writes the calendars in their own home, and
the calendars others granted them as far as the grant goes: reading with the right r,
writing with r and i (shared/rights.py).

The store checks folder permissions again on every call, so this plugin only
keeps Radicale from offering what the store would refuse.
"""
from __future__ import annotations

from gateways.caldav import context
from gateways.caldav.radicale_glue import BaseRights
from gateways.caldav.storage import calendars_of
from shared import rights as R


class Rights(BaseRights):
    def authorization(self, user: str, user_groups: set, path: str) -> str:
        if not user:
            return ""
        # Radicale hands over sanitized paths; this runs once per listed item.
        stripped = path.strip("/")
        parts = stripped.split("/") if stripped else []
        if not parts:
            return "R"
        if parts[0] != user:
            # Nothing of another user's home is served (storage.discover finds nothing there):
            # reading it answers 404 as for a path that does not exist, whether or not it does.
            return "r"
        # "RW": the home (create and delete calendars in it); "rw": a calendar's items.
        if len(parts) == 1:
            return "RW"
        if len(parts) != 2:
            return ""
        if parts[1] == "schedule-outbox":
            return "r"  # only POSTed to (gateways/caldav/scheduling/outbox.py)
        folder = calendars_of(context.current()).get(parts[1])
        if folder is None or R.has(folder.rights, R.READ + R.INSERT):
            return "rw"  # absent ones are created or answered 404 by the storage
        return "r" if R.has(folder.rights, R.READ) else ""
