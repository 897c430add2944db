"""Radicale rights plugin: a user reads and writes the calendars in their own home.

The store checks folder permissions again on every call, so this plugin only
keeps Radicale from offering what the store would refuse.
"""
from __future__ import annotations

from gateways.caldav.radicale_glue import BaseRights


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
            return ""
        # "RW": the home (create and delete calendars in it); "rw": a calendar's items.
        return "RW" if len(parts) == 1 else "rw" if len(parts) == 2 else ""
