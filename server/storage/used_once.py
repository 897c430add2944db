"""One-time names (single-use links of the gateways): whether a name was used before, for
every store process and instance on the database. Names are forgotten once they expire."""
from __future__ import annotations

import math

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.exc import IntegrityError

from .base import StorageBase
from .schema import used_once


class UsedOnceMixin(StorageBase):
    def use_once(self, name: str, expires: float, now: float) -> bool:
        """Record `name` as used until `expires`; True only the first time. Expired names go
        at the same time, so the table holds only names whose links could still work."""
        def write(conn: Connection) -> bool:
            conn.execute(delete(used_once).where(used_once.c.expires < now))
            if conn.execute(select(used_once.c.name).where(used_once.c.name == name)).first() is not None:
                return False
            try:
                conn.execute(insert(used_once).values(name=name, expires=math.ceil(expires)))
            except IntegrityError:  # another instance recorded it between the two statements
                return False
            return True
        return self._write(write)
