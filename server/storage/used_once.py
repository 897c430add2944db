"""One-time names (single-use links of the gateways): whether a name was used before, for
every store process and instance on the database. Names are forgotten once they expire."""
from __future__ import annotations

import math
import secrets

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.exc import IntegrityError

from .base import StorageBase
from .schema import used_once


class UsedOnceMixin(StorageBase):
    def use_once(self, name: str, expires: float, now: float) -> bool:
        """Record `name` as used until `expires`; True only for the first call. Expired names
        go at the same time, so the table holds only names whose links could still work."""
        claim = secrets.token_hex(16)  # this call's, should its transaction run again

        def recorded_by(conn: Connection) -> str | None:
            return conn.execute(select(used_once.c.claim).where(used_once.c.name == name)).scalar()

        def write(conn: Connection) -> bool:
            conn.execute(delete(used_once).where(used_once.c.expires < now))
            earlier = recorded_by(conn)
            if earlier is not None:
                return earlier == claim
            try:
                conn.execute(insert(used_once).values(name=name, claim=claim, expires=math.ceil(expires)))
            except IntegrityError:  # another instance recorded it between the two statements
                return False
            return True
        return self._write(write)
