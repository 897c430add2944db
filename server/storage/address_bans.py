"""Bans of the store's brute-force guard (shared.authguard): an address, and until when
(wall-clock seconds) logons from it are refused without a password check."""
from __future__ import annotations

import math

from sqlalchemy import Connection, delete, insert, select, update

from .base import StorageBase
from .schema import address_bans

MAX_ADDRESS = 255


class AddressBansMixin(StorageBase):
    def address_banned_until(self, address: str) -> float:
        """When the ban of `address` ends; 0.0 when it has none."""
        until = self._read(lambda conn: conn.execute(
            select(address_bans.c.banned_until).where(address_bans.c.address == address[:MAX_ADDRESS])
        ).scalar())
        return float(until or 0)

    def ban_address(self, address: str, until: float, now: float) -> None:
        """Refuse `address` until `until`; bans that ended before `now` go at the same time,
        so the table holds only the bans in force."""
        key, end = address[:MAX_ADDRESS], math.ceil(until)

        def write(conn: Connection) -> None:
            conn.execute(delete(address_bans).where(address_bans.c.banned_until < now))
            if conn.execute(update(address_bans).where(address_bans.c.address == key)
                            .values(banned_until=end)).rowcount == 0:
                conn.execute(insert(address_bans).values(address=key, banned_until=end))
        self._write(write)
