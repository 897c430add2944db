"""Storage quotas: per-store usage counters, the one check every write goes through, and
the warning message when usage rises above the warning level.

Usage (bytes and items of a store) is a counter on the store's row that each write
changes in its own transaction; nothing sums rows to answer or to check a quota.

The levels follow Kopano's `quota_warn`, `quota_soft` and `quota_hard`:

- above `warn`: one warning message goes into the owner's inbox when usage rises above
  it, and again only after usage has gone back to or below it and risen again;
- above `soft`: the user's own writes that add bytes (IMAP APPEND, COPY, MOVE into the
  store, CalDAV/CardDAV PUT, SOAP saves) are refused; delivery still comes in;
- above `hard`: delivery is refused as well (LMTP 552 5.2.2).

A write is refused when the usage it leads to is above the level that applies to it
(`USER` writes: soft, or hard where no soft is set; `DELIVERY`: hard). Writes that
free space (delete, expunge, empty or delete a folder, a smaller replacement) always go
through. `quota_messages` caps the number of items the same way for both kinds. Limits
of 0 mean none; a user's own limits (NULL: the server's) come from the users table.
The public store has no owner and no quota.
"""
from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any, NamedTuple

from sqlalchemy import Connection, bindparam, select, update

from server.mime import message_columns
from server.quota_warning import warning_message
from shared.errors import NotFound, Quota

from .base import StorageBase
from .schema import folders, stores, users

log = logging.getLogger(__name__)

# A user's own limits (NULL: the server's), in QuotaLimits order.
QUOTA_COLUMNS = ("quota_warn", "quota_soft", "quota_hard", "quota_messages")
# Which level a write is checked against (None: not checked, e.g. the warning message).
USER = "soft"
DELIVERY = "hard"

_ADD_USAGE = (update(stores).where(stores.c.id == bindparam("sid"))
              .values(used_bytes=stores.c.used_bytes + bindparam("b"), used_items=stores.c.used_items + bindparam("n")))
_USAGE = (select(stores.c.id, stores.c.owner_id, stores.c.used_bytes, stores.c.used_items, stores.c.quota_warned,
                 users.c.name, users.c.quota_warn, users.c.quota_soft, users.c.quota_hard, users.c.quota_messages)
          .select_from(stores.outerjoin(users, users.c.id == stores.c.owner_id)))
_USAGE_OF_STORE = _USAGE.where(stores.c.id == bindparam("sid"))

def _owner_column(name: str) -> Any:
    return select(users.c[name]).where(users.c.id == stores.c.owner_id).scalar_subquery().label(name)


# Where the database has UPDATE ... RETURNING (SQLite), one statement counts and reads back.
_ADD_USAGE_RETURNING = _ADD_USAGE.returning(
    stores.c.id, stores.c.owner_id, stores.c.used_bytes, stores.c.used_items, stores.c.quota_warned,
    *[_owner_column(n) for n in ("name", *QUOTA_COLUMNS)])
_SET_WARNED = update(stores).where(stores.c.id == bindparam("sid")).values(quota_warned=bindparam("warned"))
_STORE_OF_FOLDER = (select(folders.c.store_id, stores.c.owner_id)
                    .select_from(folders.join(stores, stores.c.id == folders.c.store_id))
                    .where(folders.c.id == bindparam("fid")))


class QuotaLimits(NamedTuple):
    """Levels in bytes and the item limit; 0: none."""
    warn: int = 0
    soft: int = 0
    hard: int = 0
    messages: int = 0

    def byte_limit(self, level: str) -> int:
        """The byte level a write of this kind may not go above (0: none)."""
        if level == USER and self.soft:
            return min(self.soft, self.hard) if self.hard else self.soft
        return self.hard

    @property
    def any(self) -> bool:
        return any(self)


class QuotaUsage(NamedTuple):
    """A store's usage and the limits that apply to it."""
    store_id: int
    user: str | None
    used_bytes: int
    used_items: int
    limits: QuotaLimits
    warned: bool

    def level(self) -> str | None:
        """The highest level usage is above: "hard", "soft", "warn", or None."""
        for name in ("hard", "soft", "warn"):
            limit = getattr(self.limits, name)
            if limit and self.used_bytes > limit:
                return name
        return None

    def refusal(self, level: str, added_bytes: int, added_items: int) -> str | None:
        """Why a write of this kind that added so much is refused with usage now at this, or None."""
        limit = self.limits.byte_limit(level)
        if added_bytes > 0 and limit and self.used_bytes > limit:
            return f"over quota: {self.used_bytes} bytes would exceed the limit of {limit}"
        if added_items > 0 and self.limits.messages and self.used_items > self.limits.messages:
            return f"over quota: {self.used_items} items would exceed the limit of {self.limits.messages}"
        return None


class QuotaMixin(StorageBase):
    """Usage counters, the quota check, and warnings."""

    # The server's levels (quota_warn, quota_soft, quota_hard, quota_messages).
    quota_defaults = QuotaLimits()

    def __init__(self, url: str, blobs: Any) -> None:
        super().__init__(url, blobs)
        # Stores whose usage rose above the warning level in the current write (per thread:
        # each write runs on its own thread), warned once the write has committed.
        self._crossings = threading.local()

    # -- transactions: warnings go out after the commit --------------------
    def _write(self, fn: Any) -> Any:
        crossings = self._crossings

        def attempt(conn: Connection) -> Any:
            crossings.stores = set()  # a retried transaction starts over
            return fn(conn)

        nested = getattr(crossings, "active", False)
        if nested:
            return super()._write(fn)
        crossings.active = True
        try:
            result = super()._write(attempt)
            due = sorted(getattr(crossings, "stores", ()))
        finally:
            crossings.active = False
            crossings.stores = set()
        for store_id in due:
            self._send_quota_warning(store_id)
        return result

    # -- the counters and the check ------------------------------------------
    def _store_of(self, conn: Connection, folder_id: int) -> int:
        """The store a folder lies in (remembered: a folder never changes store)."""
        known = self._folder_owners.get(folder_id)
        if known is not None:
            return known[0]
        row = conn.execute(_STORE_OF_FOLDER, {"fid": folder_id}).first()
        if row is None:
            raise NotFound(f"folder {folder_id} not found")
        if len(self._folder_owners) >= self.folder_owner_cache:
            self._folder_owners.clear()
        self._folder_owners[folder_id] = (int(row.store_id), row.owner_id)
        return int(row.store_id)

    def _usage_of(self, row: Any) -> QuotaUsage:
        if row.owner_id is None:
            limits = QuotaLimits()
        else:
            d = self.quota_defaults
            warn, soft, hard, messages = row.quota_warn, row.quota_soft, row.quota_hard, row.quota_messages
            limits = QuotaLimits(d.warn if warn is None else warn, d.soft if soft is None else soft,
                                 d.hard if hard is None else hard, d.messages if messages is None else messages)
        return QuotaUsage(int(row.id), row.name, int(row.used_bytes), int(row.used_items), limits,
                          bool(row.quota_warned))

    def _charge(self, conn: Connection, folder_id: int, added_bytes: int, added_items: int,
                level: str | None = USER) -> None:
        """Count a change of the folder's items in its store's usage, in the caller's
        transaction; Quota (and the transaction undone) when it adds what `level` refuses."""
        self._charge_store(conn, self._store_of(conn, folder_id), added_bytes, added_items, level)

    def _charge_store(self, conn: Connection, store_id: int, added_bytes: int, added_items: int,
                      level: str | None = USER) -> None:
        if not added_bytes and not added_items:
            return
        params = {"sid": store_id, "b": int(added_bytes), "n": int(added_items)}
        if self._update_returning:
            row = conn.execute(_ADD_USAGE_RETURNING, params).one()
        else:
            conn.execute(_ADD_USAGE, params)
            row = conn.execute(_USAGE_OF_STORE, {"sid": store_id}).one()
        usage = self._usage_of(row)
        if level is not None:
            why = usage.refusal(level, added_bytes, added_items)
            if why:
                raise Quota(why)
        self._note_warning_level(conn, usage)

    def _note_warning_level(self, conn: Connection, usage: QuotaUsage) -> None:
        """Mark the store warned when usage rose above the warning level (a warning is then
        due after the commit), unmark it when usage is back at or below it."""
        above = bool(usage.limits.warn) and usage.used_bytes > usage.limits.warn
        if above == usage.warned:
            return
        conn.execute(_SET_WARNED, {"sid": usage.store_id, "warned": above})
        if above:
            self._crossings.stores = getattr(self._crossings, "stores", set()) | {usage.store_id}

    def _delivery_room(self, conn: Connection, store_ids: Iterable[int]) -> dict[int, QuotaUsage]:
        """The usage of stores a delivery writes to, read before it adds anything."""
        found: dict[int, QuotaUsage] = {}
        for store_id in sorted(set(store_ids)):
            found[store_id] = self._usage_of(conn.execute(_USAGE_OF_STORE, {"sid": store_id}).one())
        return found

    # -- reading and setting -------------------------------------------------
    def store_usage(self, store_id: int) -> QuotaUsage:
        """A store's usage and limits; NotFound for an unknown store."""
        row = self._read(lambda c: c.execute(_USAGE_OF_STORE, {"sid": store_id}).first())
        if row is None:
            raise NotFound(f"store {store_id} not found")
        return self._usage_of(row)

    def all_store_usage(self) -> list[QuotaUsage]:
        """Usage and limits of every user's store, by user name."""
        rows = self._read(lambda c: c.execute(_USAGE.where(stores.c.owner_id.is_not(None))
                                              .order_by(users.c.name)).all())
        return [self._usage_of(r) for r in rows]

    def user_quota(self, name: str) -> dict[str, int | None]:
        """A user's own limits as stored (None: the server's)."""
        row = self._read(lambda c: c.execute(select(*[users.c[n] for n in QUOTA_COLUMNS])
                                             .where(users.c.name == name)).first())
        if row is None:
            raise NotFound(f"user {name!r} not found")
        return dict(row._mapping)

    def set_user_quota(self, name: str, **limits: int | None) -> None:
        """Set some of a user's limits (quota_warn, quota_soft, quota_hard, quota_messages):
        bytes or items, 0 for none, None for the server's."""
        unknown = set(limits) - set(QUOTA_COLUMNS)
        if unknown:
            raise ValueError(f"unknown quota limits {sorted(unknown)}")
        if any(v is not None and int(v) < 0 for v in limits.values()):
            raise ValueError("quota limits are not negative")

        def run(conn: Connection) -> None:
            if conn.execute(update(users).where(users.c.name == name).values(**limits)).rowcount == 0:
                raise NotFound(f"user {name!r} not found")
            # The warning flag follows the new level at once.
            sid = conn.execute(select(stores.c.id).where(stores.c.owner_id == select(users.c.id).where(
                users.c.name == name).scalar_subquery())).scalar()
            if sid is not None:
                usage = self._usage_of(conn.execute(_USAGE_OF_STORE, {"sid": sid}).one())
                if not (usage.limits.warn and usage.used_bytes > usage.limits.warn):
                    self._note_warning_level(conn, usage)

        self._write(run)

    # -- the warning -------------------------------------------------------
    def _send_quota_warning(self, store_id: int) -> None:
        """Put the quota warning into the store's inbox, counted but not checked (it must
        arrive however full the store is). A failure is logged: the write it follows stands."""
        try:
            usage = self.store_usage(store_id)
            inbox = self._read(lambda c: c.execute(select(folders.c.id).where(
                folders.c.store_id == store_id, folders.c.role == "inbox").order_by(folders.c.id)).scalar())
            if inbox is None or usage.user is None:
                return
            data = warning_message(usage, int(time.time()))
            columns = message_columns(io.BytesIO(data))
            key = self.blobs.put_bytes(data)
            from .items import NewMessage  # items.py builds on this module
            self.create_messages(inbox, [NewMessage(key, len(data), None, 0, (), columns)], level=None)
            log.info("quota warning sent to %s: %d bytes used, warning level %d", usage.user,
                     usage.used_bytes, usage.limits.warn)
        except Exception:  # noqa: BLE001 - the write that crossed the level is committed
            log.exception("could not put the quota warning into store %s", store_id)


__all__ = ["QUOTA_COLUMNS", "QuotaMixin", "QuotaLimits", "QuotaUsage", "USER", "DELIVERY"]
