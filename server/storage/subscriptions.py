"""Subscriptions: a per-store list of names (IMAP's, RFC 3501 §6.3.6, RFC 5258).

The list holds names, not folders: RFC 3501 says a server "MUST NOT unilaterally
remove an existing mailbox name from the subscription list even if a mailbox by
that name no longer exists", so deleting or renaming a folder leaves the list as
it is. The store does not interpret the names; the gateway decides what they
mean (and whether a name must exist to be subscribed), and also what a new
store's list starts with: every call may carry `defaults`, which go on the list
if nobody has read or written it with defaults before. The store thus keeps no
protocol's naming rule, and a list emptied by its user stays empty.
"""
from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, delete, insert, select, update

from shared.errors import BadRequest, NotFound, TooLarge

from .base import StorageBase, chunks
from .schema import stores, subscriptions

MAX_SUBSCRIPTION_NAME = 700
# Far more than any client subscribes to; a bound on what one account can pile up.
MAX_SUBSCRIPTIONS = 10_000


def _check(names: Iterable[str]) -> list[str]:
    out = []
    for name in names:
        if not isinstance(name, str) or not name:
            raise BadRequest("a subscription needs a mailbox name")
        if len(name) > MAX_SUBSCRIPTION_NAME or any(ord(ch) < 32 for ch in name):
            raise BadRequest("bad mailbox name")
        out.append(name)
    return sorted(set(out))


class SubscriptionsMixin(StorageBase):
    def subscriptions(self, store_id: int, defaults: Iterable[str] = ()) -> list[str]:
        """The store's subscribed names, sorted; a list not started yet starts as `defaults`."""
        wanted = _check(defaults)

        def read(conn: Connection) -> list[str]:
            return list(conn.execute(select(subscriptions.c.name).where(subscriptions.c.store_id == store_id)
                                     .order_by(subscriptions.c.name)).scalars().all())

        def start_and_read(conn: Connection) -> list[str]:
            self._start(conn, store_id, wanted)
            return read(conn)

        if not wanted:
            return self._read(read)
        # One read in the common case: the list was started long ago.
        started, names = self._read(lambda c: (self._started(c, store_id), read(c)))
        return names if started else self._write(start_and_read)

    def subscribe(self, store_id: int, names: Iterable[str], defaults: Iterable[str] = ()) -> None:
        """Add names to the store's list (names already on it stay as they are)."""
        wanted = _check(names)
        initial = _check(defaults)

        def run(conn: Connection) -> None:
            self._start(conn, store_id, initial)
            have = set(conn.execute(select(subscriptions.c.name)
                                    .where(subscriptions.c.store_id == store_id)).scalars().all())
            new = [n for n in wanted if n not in have]
            if len(have) + len(new) > MAX_SUBSCRIPTIONS:
                raise TooLarge(f"at most {MAX_SUBSCRIPTIONS} subscriptions")
            if new:
                conn.execute(insert(subscriptions), [{"store_id": store_id, "name": n} for n in new])
        if wanted:
            self._write(run)

    def unsubscribe(self, store_id: int, names: Iterable[str], defaults: Iterable[str] = ()) -> None:
        """Take names off the store's list; a name not on it is no error."""
        gone = _check(names)
        initial = _check(defaults)

        def run(conn: Connection) -> None:
            self._start(conn, store_id, initial)
            for part in chunks(gone):
                conn.execute(delete(subscriptions).where(subscriptions.c.store_id == store_id,
                                                         subscriptions.c.name.in_(part)))
        if gone:
            self._write(run)

    @staticmethod
    def _started(conn: Connection, store_id: int, lock: bool = False) -> bool:
        query = select(stores.c.subscriptions_started).where(stores.c.id == store_id)
        started = conn.execute(query.with_for_update() if lock else query).scalar()
        if started is None:
            raise NotFound(f"store {store_id} not found")
        return bool(started)

    def _start(self, conn: Connection, store_id: int, defaults: list[str]) -> None:
        """Lock the store row (it serialises the list's writers, so two adding one name
        cannot collide) and, on a list's first write, put `defaults` on it."""
        if self._started(conn, store_id, lock=True):
            return
        conn.execute(update(stores).where(stores.c.id == store_id).values(subscriptions_started=True))
        if defaults:
            conn.execute(insert(subscriptions), [{"store_id": store_id, "name": n} for n in defaults])


__all__ = ["SubscriptionsMixin", "MAX_SUBSCRIPTIONS", "MAX_SUBSCRIPTION_NAME"]
