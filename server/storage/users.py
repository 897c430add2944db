"""Users and their stores."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, exc, insert, select, update

from shared.errors import BadRequest, Conflict, NotFound
from shared.features import FEATURES

from .base import StorageBase
from .quota import QUOTA_COLUMNS
from .schema import (delivered_message_ids, folder_acl, folders, group_members, sieve_scripts, stores, subscriptions,
                     users, vacation_replies)

# The folders of a new private store: (name, container_class, role).
DEFAULT_FOLDERS = (
    ("Inbox", "mail", "inbox"),
    ("Drafts", "mail", "drafts"),
    ("Sent", "mail", "sent"),
    ("Trash", "mail", "trash"),
    ("Junk", "mail", "junk"),
    ("Archive", "mail", "archive"),
    ("Calendar", "calendar", None),
    ("Tasks", "tasks", None),
    ("Contacts", "contacts", None),
)


class UsersMixin(StorageBase):
    """User accounts, each owning one private store.

    Folder creation and removal come from FoldersMixin (_insert_folder, _delete_folder_rows).
    """

    def _insert_default_folders(self, conn: Connection, store_id: int) -> None:
        for fname, cls, role in DEFAULT_FOLDERS:
            self._insert_folder(conn, store_id, None, fname, cls, role)

    def _user_select(self):
        return select(users, stores.c.id.label("store_id")).select_from(
            users.outerjoin(stores, stores.c.owner_id == users.c.id))

    @staticmethod
    def _user_dict(r: Any) -> dict:
        return {
            "id": r.id, "name": r.name, "password_hash": r.password_hash,
            "fullname": r.fullname, "email": r.email, "active": bool(r.active),
            "features": {f: bool(getattr(r, "feature_" + f)) for f in FEATURES},
            "store_id": r.store_id, "external_id": r.external_id, "orphaned": bool(r.orphaned),
            "quota": {level: getattr(r, level) for level in QUOTA_COLUMNS},
        }

    def create_user(self, name: str, password_hash: str, fullname: str = "", email: str = "",
                    external_id: str | None = None) -> dict:
        """Create a user with a private store and its default folders; Conflict if the name exists."""
        if not name or len(name) > 255:
            raise BadRequest("bad user name")

        def run(conn: Connection) -> int:
            if conn.execute(select(users.c.id).where(users.c.name == name)).first():
                raise Conflict(f"user {name} exists")
            try:
                uid = conn.execute(insert(users).values(
                    name=name, password_hash=password_hash or "", fullname=fullname or "",
                    email=email or "", active=True, feature_imap=True, feature_pop3=True,
                    feature_caldav=True, feature_sieve=True, external_id=external_id)).inserted_primary_key[0]
            except exc.IntegrityError as err:
                raise Conflict(f"user {name} exists") from err
            sid = conn.execute(insert(stores).values(owner_id=uid, kind="private")).inserted_primary_key[0]
            self._insert_default_folders(conn, sid)
            return uid

        uid = self._write(run)
        return self.get_user_by_id(uid)

    def get_user(self, name: str) -> dict | None:
        r = self._read(lambda c: c.execute(self._user_select().where(users.c.name == name)).first())
        return self._user_dict(r) if r else None

    def get_user_by_id(self, user_id: int) -> dict | None:
        r = self._read(lambda c: c.execute(self._user_select().where(users.c.id == user_id)).first())
        return self._user_dict(r) if r else None

    def list_users(self) -> list[dict]:
        rows = self._read(lambda c: c.execute(self._user_select().order_by(users.c.name)).all())
        return [self._user_dict(r) for r in rows]

    def _update_user(self, name: str, **values: Any) -> None:
        def run(conn: Connection) -> None:
            if conn.execute(update(users).where(users.c.name == name).values(**values)).rowcount == 0:
                # MySQL counts only rows that changed; tell "same value" from "no such user".
                if not conn.execute(select(users.c.id).where(users.c.name == name)).first():
                    raise NotFound(f"user {name} not found")
        self._write(run)

    def set_password_hash(self, name: str, password_hash: str) -> None:
        self._update_user(name, password_hash=password_hash)

    def set_active(self, name: str, active: bool) -> None:
        self._update_user(name, active=bool(active))

    def set_features(self, name: str, features: dict[str, bool]) -> None:
        """Switch protocols on or off; keys not given keep their value."""
        unknown = set(features) - set(FEATURES)
        if unknown:
            raise BadRequest(f"unknown features {sorted(unknown)}")
        values = {"feature_" + k: bool(v) for k, v in features.items()}
        if values:
            self._update_user(name, **values)

    def set_user_details(self, name: str, fullname: str | None = None, email: str | None = None,
                         external_id: str | None = None) -> None:
        values = {k: v for k, v in (("fullname", fullname), ("email", email),
                                    ("external_id", external_id)) if v is not None}
        if values:
            self._update_user(name, **values)

    def get_user_by_external_id(self, external_id: str) -> dict | None:
        r = self._read(lambda c: c.execute(
            self._user_select().where(users.c.external_id == external_id)).first())
        return self._user_dict(r) if r else None

    def set_orphaned(self, name: str, orphaned: bool) -> None:
        self._update_user(name, orphaned=bool(orphaned))

    def adopt_directory_user(self, external_id: str, name: str, fullname: str = "", email: str = "",
                             features: dict[str, bool] | None = None,
                             quota: dict[str, int | None] | None = None) -> tuple[dict, str]:
        """Make the row of a directory identity match the directory, in one transaction.

        The row is found by `external_id` (the directory's unique attribute), so a
        renamed user keeps their store. A new identity gets a user and a store;
        a row of that name without an identity (made by `groupware user add`) is
        taken over; a row of that name owned by another identity is renamed
        aside and orphaned, never handed to the newcomer. `features` None leaves
        the switches alone, as `quota` None leaves the user's quota levels ({quota_warn:
        bytes or None, ...}, the levels the directory names). Returns (user, action) with action one of created,
        adopted, renamed, updated, unchanged.
        """
        if not name or len(name) > 255:
            raise BadRequest("bad user name")
        values: dict[str, Any] = {"fullname": fullname or "", "email": email or "", "orphaned": False}
        for feature, on in (features or {}).items():
            if feature in FEATURES:
                values["feature_" + feature] = bool(on)
        values.update((level, limit) for level, limit in (quota or {}).items() if level in QUOTA_COLUMNS)

        def run(conn: Connection) -> tuple[int, str]:
            row = conn.execute(select(users).where(users.c.external_id == external_id)).first()
            holder = conn.execute(select(users).where(users.c.name == name)).first()
            if holder is not None and (row is None or holder.id != row.id):
                if row is None and holder.external_id is None:
                    conn.execute(update(users).where(users.c.id == holder.id)
                                 .values(external_id=external_id, **values))
                    return holder.id, "adopted"
                aside = f"{name[:200]}~orphan{holder.id}"
                conn.execute(update(users).where(users.c.id == holder.id)
                             .values(name=aside, orphaned=True))
            if row is None:
                row_values = {"feature_" + f: True for f in FEATURES}
                row_values.update(values)
                uid = conn.execute(insert(users).values(
                    name=name, password_hash="", active=True, external_id=external_id,
                    **row_values)).inserted_primary_key[0]
                sid = conn.execute(insert(stores).values(owner_id=uid, kind="private")).inserted_primary_key[0]
                self._insert_default_folders(conn, sid)
                return uid, "created"
            changed = {k: v for k, v in values.items() if getattr(row, k) != v}
            if row.name != name:
                changed["name"] = name
            if changed:
                conn.execute(update(users).where(users.c.id == row.id).values(**changed))
            return row.id, ("renamed" if "name" in changed else "updated" if changed else "unchanged")

        try:
            uid, action = self._write(run)
        except exc.IntegrityError:
            # Another logon of the same identity created it first.
            uid, action = self._write(run)
        return self.get_user_by_id(uid), action

    def delete_user(self, name: str) -> None:
        """Remove the user, their store, folders, items, grants; blobs are released after commit."""
        def run(conn: Connection) -> list[str]:
            uid = conn.execute(select(users.c.id).where(users.c.name == name)).scalar()
            if uid is None:
                raise NotFound(f"user {name} not found")
            keys: list[str] = []
            for sid in conn.execute(select(stores.c.id).where(stores.c.owner_id == uid)).scalars().all():
                fids = conn.execute(select(folders.c.id).where(folders.c.store_id == sid)).scalars().all()
                keys.extend(self._delete_folder_rows(conn, fids))
                conn.execute(delete(subscriptions).where(subscriptions.c.store_id == sid))
                conn.execute(delete(stores).where(stores.c.id == sid))
            conn.execute(delete(folder_acl).where(folder_acl.c.user_id == uid))
            conn.execute(delete(group_members).where(group_members.c.user_id == uid))
            for table in (sieve_scripts, vacation_replies, delivered_message_ids):
                conn.execute(delete(table).where(table.c.user_id == uid))
            conn.execute(delete(users).where(users.c.id == uid))
            return keys

        self._release_blobs(self._write(run))

    def public_store_id(self) -> int:
        sid = self._read(lambda c: c.execute(
            select(stores.c.id).where(stores.c.kind == "public").order_by(stores.c.id)).scalar())
        if sid is None:
            raise NotFound("no public store; run migrate()")
        return sid

    def store_owner(self, store_id: int) -> int | None:
        row = self._read(lambda c: c.execute(
            select(stores.c.owner_id).where(stores.c.id == store_id)).first())
        if row is None:
            raise NotFound(f"store {store_id} not found")
        return row[0]


__all__ = ["UsersMixin", "DEFAULT_FOLDERS"]
