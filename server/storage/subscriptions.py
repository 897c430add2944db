"""IMAP subscriptions: a per-store list of mailbox names (RFC 3501 §6.3.6, RFC 5258).

The list holds names, not folders: RFC 3501 says a server "MUST NOT unilaterally
remove an existing mailbox name from the subscription list even if a mailbox by
that name no longer exists", so deleting or renaming a folder leaves the list as
it is. The store does not interpret the names; the IMAP gateway decides what they
mean (and whether a name must exist to be subscribed).
"""
from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, delete, insert, select

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
    def subscriptions(self, store_id: int) -> list[str]:
        """The store's subscribed mailbox names, sorted."""
        return self._read(lambda c: list(c.execute(
            select(subscriptions.c.name).where(subscriptions.c.store_id == store_id)
            .order_by(subscriptions.c.name)).scalars().all()))

    def subscribe(self, store_id: int, names: Iterable[str]) -> None:
        """Add names to the store's list (names already on it stay as they are)."""
        wanted = _check(names)

        def run(conn: Connection) -> None:
            # The store row lock serialises writers, so two adding one name cannot collide.
            if conn.execute(select(stores.c.id).where(stores.c.id == store_id).with_for_update()).first() is None:
                raise NotFound(f"store {store_id} not found")
            have = set(conn.execute(select(subscriptions.c.name)
                                    .where(subscriptions.c.store_id == store_id)).scalars().all())
            new = [n for n in wanted if n not in have]
            if len(have) + len(new) > MAX_SUBSCRIPTIONS:
                raise TooLarge(f"at most {MAX_SUBSCRIPTIONS} subscriptions")
            if new:
                conn.execute(insert(subscriptions), [{"store_id": store_id, "name": n} for n in new])
        if wanted:
            self._write(run)

    def unsubscribe(self, store_id: int, names: Iterable[str]) -> None:
        """Take names off the store's list; a name not on it is no error."""
        gone = _check(names)

        def run(conn: Connection) -> None:
            for part in chunks(gone):
                conn.execute(delete(subscriptions).where(subscriptions.c.store_id == store_id,
                                                         subscriptions.c.name.in_(part)))
        if gone:
            self._write(run)


__all__ = ["SubscriptionsMixin", "MAX_SUBSCRIPTIONS", "MAX_SUBSCRIPTION_NAME"]
