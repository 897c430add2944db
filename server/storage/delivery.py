"""Mail delivery: recipients by address, the folders a delivery may target, one message
stored for many recipients, duplicate suppression and vacation reply records.

A delivery never loses a message for want of a folder: a target folder that is gone,
a role no folder has, or a path that does not exist (and may not be created) all
deliver to the recipient's inbox instead, as RFC 5228 section 4.1 has `fileinto`
fall back to keeping the message.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection, bindparam, delete, exc, func, insert, select, update

from shared.errors import BadRequest, NotFound

from .base import StorageBase, chunks
from .items import NewMessage
from .quota import DELIVERY
from .schema import delivered_message_ids, folders, items, stores, users, vacation_replies

# Vacation records are kept at least this long (RFC 5230 section 4.1 lets a site cap :days),
# and longer for an action that asks for a longer period.
VACATION_RECORD_SECONDS = 366 * 86400
# A user's Message-ID records older than the duplicate window are removed at most this often.
MESSAGE_ID_PURGE_SECONDS = 60

# The statements of every delivery, built once: building one costs more than running it.
_RECIPIENTS = (select(users.c.id, users.c.name, stores.c.id.label("store_id"))
               .select_from(users.outerjoin(stores, stores.c.owner_id == users.c.id))
               .where(users.c.name.in_(bindparam("names", expanding=True))).order_by(users.c.id).with_for_update())
# A superset of the (user, digest) pairs asked for (any asked user with any asked digest),
# sorted out in Python: portable, and both columns are the primary key.
_DELIVERED_AT = (select(delivered_message_ids.c.user_id, delivered_message_ids.c.digest,
                        delivered_message_ids.c.delivered_at)
                 .where(delivered_message_ids.c.user_id.in_(bindparam("users", expanding=True)),
                        delivered_message_ids.c.digest.in_(bindparam("digests", expanding=True))))
_MAIL_FOLDERS = (select(folders.c.id, folders.c.store_id, folders.c.parent_id, folders.c.name, folders.c.role)
                 .where(folders.c.store_id.in_(bindparam("stores", expanding=True)),
                        folders.c.container_class == "mail"))
# Several folders' counters at once, each taking `n` uids and one modseq (where the
# database has UPDATE ... RETURNING).
_BUMP_MANY = (update(folders).where(folders.c.id.in_(bindparam("fids", expanding=True)))
              .values(uidnext=folders.c.uidnext + bindparam("n"), highestmodseq=folders.c.highestmodseq + 1)
              .returning(folders.c.id, folders.c.uidnext, folders.c.highestmodseq))
_RENEW_MESSAGE_ID = (update(delivered_message_ids)
                     .where(delivered_message_ids.c.user_id == bindparam("u"),
                            delivered_message_ids.c.digest == bindparam("d"))
                     .values(delivered_at=bindparam("t")))


class DeliveryTarget(NamedTuple):
    """Where one recipient's copy goes: a folder id, else a role, else a path of folder
    names below the store root (created when `create`), else the inbox."""
    user: str
    folder_id: int | None = None
    role: str | None = None
    path: tuple[str, ...] = ()
    create: bool = False
    flags: int = 0
    keywords: tuple[str, ...] = ()
    message_id: str | None = None


class DeliveryOutcome(NamedTuple):
    status: str  # stored | duplicate | notFound
    folder_id: int | None = None
    uid: int | None = None


def digest(*parts: str) -> str:
    """A fixed-length key for texts of any length."""
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


class _FolderRow(NamedTuple):
    id: int
    parent_id: int | None
    name: str
    role: str | None


class _MailTree:
    """The mail folders of one store as a delivery sees them, read once per call."""

    def __init__(self, store_id: int, rows: Any = ()) -> None:
        self.store_id = store_id
        self.rows = {r.id: _FolderRow(r.id, r.parent_id, r.name, r.role) for r in rows}

    @classmethod
    def read(cls, conn: Connection, store_ids: set[int]) -> dict[int, "_MailTree"]:
        """The trees of `store_ids`, in one SELECT."""
        trees = {store_id: cls(store_id) for store_id in store_ids}
        for part in chunks(sorted(store_ids)):
            for r in conn.execute(_MAIL_FOLDERS, {"stores": part}):
                trees[r.store_id].rows[r.id] = _FolderRow(r.id, r.parent_id, r.name, r.role)
        return trees

    def by_role(self, role: str) -> int | None:
        return next((fid for fid, r in sorted(self.rows.items()) if r.role == role), None)

    def child(self, parent_id: int | None, name: str) -> int | None:
        return next((fid for fid, r in self.rows.items() if r.parent_id == parent_id and r.name == name), None)


class DeliveryMixin(StorageBase):
    """What the delivery operations of the SOAP service run."""

    def __init__(self, url: str, blobs: Any) -> None:
        super().__init__(url, blobs)
        # user id -> time.monotonic() after which the user's expired Message-IDs are removed again
        self._message_id_purges: dict[int, float] = {}

    def users_by_email(self, address: str) -> list[dict]:
        """The users whose e-mail address is `address`, compared case-insensitively."""
        rows = self._read(lambda c: c.execute(
            self._user_select().where(func.lower(users.c.email) == address.lower())).all())
        return [self._user_dict(r) for r in rows]

    def delivery_folders(self, store_ids: Sequence[int]) -> list[list[dict]]:
        """Each store's mail folders as a delivery sees them, in one query: per store id, in
        order, [{id, parent_id, name, role}] by id."""
        trees = self._read(lambda c: _MailTree.read(c, set(store_ids)))
        return [[{"id": r.id, "parent_id": r.parent_id, "name": r.name, "role": r.role}
                 for _, r in sorted(trees[store_id].rows.items())] for store_id in store_ids]

    def deliver(self, message: NewMessage, targets: Sequence[DeliveryTarget], duplicate_window: int,
                now: int | None = None) -> tuple[list[DeliveryOutcome], dict[int, int]]:
        """Store one message (one blob) for every target in one transaction.

        Returns one outcome per target, in order, and {folder id: new modseq} of the
        folders written. A target whose user got the same Message-ID within
        `duplicate_window` seconds before this call (0: never) is a duplicate; targets of
        one call for one user share their fate.
        """
        return self.deliver_many([(message, targets)], duplicate_window, now)[0]

    def deliver_many(self, batch: Sequence[tuple[NewMessage, Sequence[DeliveryTarget]]], duplicate_window: int,
                     now: int | None = None) -> list[tuple[list[DeliveryOutcome], dict[int, int]]]:
        """Several messages, each as `deliver` stores it, in one transaction (one commit, one
        lock of the recipients, one counter update per folder): what `deliver` answers for
        each, in order. Messages of one batch are taken in order: a later one with a
        Message-ID an earlier one delivered to the same user is a duplicate."""
        when = int(time.time()) if now is None else now

        def run(conn: Connection) -> list[tuple[list[DeliveryOutcome], dict[int, int]]]:
            accounts = self._lock_recipients(conn, {t.user for _, targets in batch for t in targets})
            # (message index, target index) -> (user id, Message-ID digest)
            keys: dict[tuple[int, int], tuple[int, str]] = {}
            if duplicate_window > 0:
                for m, (_, targets) in enumerate(batch):
                    for index, target in enumerate(targets):
                        account = accounts.get(target.user)
                        if target.message_id and account is not None:
                            keys[m, index] = (account[0], digest(target.message_id))
            recorded = self._delivered_at(conn, set(keys.values()))
            delivered = dict(recorded)  # and what this batch delivers, message by message
            trees = _MailTree.read(conn, {a[1] for a in accounts.values() if a[1] is not None})
            # Each store's usage as this batch grows it, checked copy by copy: an over-quota
            # recipient gets "quota", the others of the same message their copy.
            start = self._delivery_room(conn, trees)
            usage = dict(start)
            plans: list[list[DeliveryOutcome]] = []
            for m, (_, targets) in enumerate(batch):
                plan: list[DeliveryOutcome] = []
                for index, target in enumerate(targets):
                    account = accounts.get(target.user)
                    if account is None or account[1] is None:
                        plan.append(DeliveryOutcome("notFound"))
                        continue
                    if delivered.get(keys.get((m, index)), -1) >= when - duplicate_window:
                        plan.append(DeliveryOutcome("duplicate"))
                        continue
                    folder_id = self._target_folder(conn, trees[account[1]], target)
                    if folder_id is None:
                        plan.append(DeliveryOutcome("notFound"))
                        continue
                    size = int(batch[m][0].size)
                    grown = usage[account[1]]
                    grown = grown._replace(used_bytes=grown.used_bytes + size, used_items=grown.used_items + 1)
                    if grown.refusal(DELIVERY, size, 1):
                        plan.append(DeliveryOutcome("quota"))
                        continue
                    usage[account[1]] = grown
                    plan.append(DeliveryOutcome("stored", folder_id))
                delivered.update((keys[m, index], when) for index, outcome in enumerate(plan)
                                 if outcome.status == "stored" and (m, index) in keys)
                plans.append(plan)
            # A copy refused for quota was not delivered: the MTA's retry must not be a duplicate.
            self._record_message_ids(conn, {key for (m, index), key in keys.items()
                                            if plans[m][index].status != "quota"},
                                     recorded, duplicate_window, when)
            results = self._insert_deliveries(conn, [message for message, _ in batch],
                                              [targets for _, targets in batch], plans, when)
            for store_id, grown in usage.items():
                # Checked above already, copy by copy.
                self._charge_store(conn, store_id, grown.used_bytes - start[store_id].used_bytes,
                                   grown.used_items - start[store_id].used_items, level=None)
            return results

        try:
            return self._write(run)
        except exc.IntegrityError:
            # A concurrent delivery recorded the same Message-ID first: now it is a duplicate.
            return self._write(run)

    def vacation_due(self, user_id: int, sender: str, handle: str, seconds: int, now: int | None = None) -> bool:
        """True when no vacation reply for `handle` went to `sender` in the last `seconds`
        (RFC 5230 section 4.1), recording one sent now; else False."""
        when = int(time.time()) if now is None else now
        key = digest(handle, sender.lower())

        def run(conn: Connection) -> bool:
            self._lock_user(conn, user_id)
            conn.execute(delete(vacation_replies).where(
                vacation_replies.c.user_id == user_id,
                vacation_replies.c.sent_at < when - max(VACATION_RECORD_SECONDS, seconds)))
            where = (vacation_replies.c.user_id == user_id, vacation_replies.c.digest == key)
            sent_at = conn.execute(select(vacation_replies.c.sent_at).where(*where)).scalar()
            if sent_at is not None and seconds > 0 and sent_at > when - seconds:
                return False
            if sent_at is None:
                conn.execute(insert(vacation_replies).values(user_id=user_id, digest=key, sent_at=when))
            else:
                conn.execute(update(vacation_replies).where(*where).values(sent_at=when))
            return True

        return self._write(run)

    # -- helpers --------------------------------------------------------
    def _lock_recipients(self, conn: Connection, names: set[str]) -> dict[str, tuple[int, int | None]]:
        """name -> (user id, store id) of the named users, their rows locked in id order so
        that concurrent deliveries to one user take turns and never deadlock."""
        found: dict[str, tuple[int, int | None]] = {}
        for part in chunks(sorted(names)):
            rows = conn.execute(_RECIPIENTS, {"names": part}).all()
            # Names compare exactly, whatever the database collation says.
            found.update((r.name, (r.id, r.store_id)) for r in rows if r.name in names)
        return found

    @staticmethod
    def _delivered_at(conn: Connection, keys: set[tuple[int, str]]) -> dict[tuple[int, str], int]:
        """When each (user id, Message-ID digest) was last delivered, for those on record:
        one SELECT for all recipients of a message."""
        found: dict[tuple[int, str], int] = {}
        for part in chunks(sorted(keys)):
            user_ids = sorted({u for u, _ in part})
            digests = sorted({d for _, d in part})
            found.update(((r.user_id, r.digest), r.delivered_at)
                         for r in conn.execute(_DELIVERED_AT, {"users": user_ids, "digests": digests})
                         if (r.user_id, r.digest) in keys)
        return found

    def _record_message_ids(self, conn: Connection, keys: set[tuple[int, str]], delivered: dict[tuple[int, str], int],
                            window: int, now: int) -> None:
        """Record the Message-IDs delivered now (those seen within the window keep their
        time); a user's records older than the window go at most once a minute, not with
        every delivery."""
        new = [{"user_id": u, "digest": d, "delivered_at": now} for u, d in sorted(keys) if (u, d) not in delivered]
        expired = [{"u": u, "d": d, "t": now} for (u, d), at in sorted(delivered.items()) if at < now - window]
        if new:
            conn.execute(insert(delivered_message_ids), new)
        if expired:
            conn.execute(_RENEW_MESSAGE_ID, expired)
        clock = time.monotonic()
        due = sorted(u for u in {u for u, _ in keys} if self._message_id_purges.get(u, 0.0) <= clock)
        for user_id in due:
            self._message_id_purges[user_id] = clock + MESSAGE_ID_PURGE_SECONDS
        if due:
            conn.execute(delete(delivered_message_ids).where(delivered_message_ids.c.user_id.in_(due),
                                                             delivered_message_ids.c.delivered_at < now - window))

    def _target_folder(self, conn: Connection, tree: _MailTree, target: DeliveryTarget) -> int | None:
        if target.folder_id is not None and target.folder_id in tree.rows:
            return target.folder_id
        if target.role:
            found = tree.by_role(target.role)
            if found is not None:
                return found
        if target.path:
            found = self._walk_path(conn, tree, target.path, target.create)
            if found is not None:
                return found
        return tree.by_role("inbox")

    def _walk_path(self, conn: Connection, tree: _MailTree, path: tuple[str, ...], create: bool) -> int | None:
        """The mail folder at `path` below the root, created on the way when `create`;
        None when it is not there (or cannot be made: a bad name, a folder of another kind)."""
        parent: int | None = None
        for name in path:
            found = tree.child(parent, name)
            if found is None:
                if not create:
                    return None
                found = self._create_on_path(conn, tree, parent, name)
                if found is None:
                    return None
            parent = found
        return parent

    def _create_on_path(self, conn: Connection, tree: _MailTree, parent: int | None, name: str) -> int | None:
        """A mail folder `name` under `parent`, made unless a concurrent writer made it first."""
        try:
            self._check_name(name)
        except BadRequest:
            return None
        self._lock_store(conn, tree.store_id)
        same = self._sibling(conn, tree.store_id, parent, name)
        if same is not None:
            return same.id if same.container_class == "mail" else None
        try:
            folder_id = self._insert_folder(conn, tree.store_id, parent, name, "mail", None)
        except BadRequest:  # the store holds max_folders already: the message goes to the inbox
            return None
        tree.rows[folder_id] = _FolderRow(folder_id, parent, name, None)
        return folder_id

    def _bump_folders(self, conn: Connection, counts: dict[int, int]) -> dict[int, tuple[int, int]]:
        """{folder id: (first new uid, new modseq)} for `counts` new uids in each folder:
        one UPDATE for all folders taking the same number where RETURNING is there."""
        found: dict[int, tuple[int, int]] = {}
        if self._update_returning:
            by_count: dict[int, list[int]] = {}
            for folder_id, count in counts.items():
                by_count.setdefault(count, []).append(folder_id)
            for count, folder_ids in sorted(by_count.items()):
                for part in chunks(sorted(folder_ids)):
                    for r in conn.execute(_BUMP_MANY, {"fids": part, "n": count}):
                        found[r.id] = (r.uidnext - count, r.highestmodseq)
        else:
            for folder_id in sorted(counts):
                first, modseq, _ = self._bump(conn, folder_id, counts[folder_id])
                found[folder_id] = (first, modseq)
        missing = set(counts) - set(found)
        if missing:
            raise NotFound(f"folder {min(missing)} not found")
        return found

    def _insert_deliveries(self, conn: Connection, messages: Sequence[NewMessage],
                           targets: Sequence[Sequence[DeliveryTarget]], plans: list[list[DeliveryOutcome]],
                           now: int) -> list[tuple[list[DeliveryOutcome], dict[int, int]]]:
        """The rows of every stored outcome of `plans` (one per message), the copies of all
        messages in a folder taking its counters in one step; per message, its outcomes
        with their uids and {folder id: new modseq} of the folders it went to."""
        by_folder: dict[int, list[tuple[int, int]]] = {}
        for m, plan in enumerate(plans):
            for index, outcome in enumerate(plan):
                if outcome.status == "stored":
                    by_folder.setdefault(outcome.folder_id, []).append((m, index))
        counters = self._bump_folders(conn, {folder_id: len(places) for folder_id, places in by_folder.items()})
        modseqs: list[dict[int, int]] = [{} for _ in plans]
        rows = []
        for folder_id in sorted(by_folder):
            first, modseq = counters[folder_id]
            for offset, (m, index) in enumerate(by_folder[folder_id]):
                target = targets[m][index]
                row = self._message_row(folder_id, messages[m]._replace(
                    internal_date=now, flags=target.flags, keywords=target.keywords))
                row.update(uid=first + offset, modseq=modseq)
                rows.append(row)
                plans[m][index] = DeliveryOutcome("stored", folder_id, first + offset)
                modseqs[m][folder_id] = modseq
        for part in chunks(rows):
            conn.execute(insert(items), part)
        return list(zip(plans, modseqs))


__all__ = ["DeliveryMixin", "DeliveryTarget", "DeliveryOutcome", "VACATION_RECORD_SECONDS"]
