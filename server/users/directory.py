"""What directory backends (ldap, unix) share: their users, local rows, and sync.

A directory user's local row (and store) is keyed by `external_id`,
"<plugin>:<unique value>", so a renamed user keeps their store. Rows of users
who left the directory are only marked orphaned: logins fail (the directory no
longer knows them) and the store stays until an admin deletes it with
`groupware user delete`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DirectoryUser:
    name: str
    external_id: str  # "<plugin>:<value that never changes for this user>"
    fullname: str = ""
    email: str = ""
    features: dict[str, bool] | None = None  # None: the directory does not say
    dn: str = ""
    member_of: tuple[str, ...] = field(default=())
    # The user's own quota levels the directory names ({quota_warn: bytes or None (the
    # attribute is absent: the server's level)}); None: the directory says nothing.
    quota: dict[str, int | None] | None = None


class DirectoryBackend(Protocol):
    prefix: str  # "ldap:" / "unix:"

    def all_users(self) -> list[DirectoryUser]: ...
    def groups_of(self, entry: DirectoryUser, membership: Any = None) -> list[str]: ...


def same_as_local(user: dict[str, Any], entry: DirectoryUser) -> bool:
    if (user["name"], user.get("fullname") or "", user.get("email") or "") != (entry.name, entry.fullname,
                                                                               entry.email):
        return False
    if entry.quota is not None and any(user["quota"].get(level) != limit for level, limit in entry.quota.items()):
        return False
    return entry.features is None or all(user["features"].get(f) == on for f, on in entry.features.items())


def local_user(storage: Any, entry: DirectoryUser) -> dict[str, Any]:
    """The local row of a directory user, created (with a store) or brought up to date.

    The common case, nothing changed, is one read and no write.
    """
    user = storage.get_user_by_external_id(entry.external_id)
    if user is not None and not user.get("orphaned") and same_as_local(user, entry):
        return user
    user, action = storage.adopt_directory_user(entry.external_id, entry.name, entry.fullname, entry.email,
                                                entry.features, entry.quota)
    if action != "unchanged":
        log.info("directory user %r: local user %s", entry.name, action)
    return user


@dataclass(frozen=True)
class SyncChange:
    action: str  # create, rename, update, restore, orphan
    name: str
    detail: str = ""
    entry: DirectoryUser | None = None

    def line(self) -> str:
        return f"{self.action}\t{self.name}" + (f"\t{self.detail}" if self.detail else "")


def plan_sync(backend: DirectoryBackend, storage: Any) -> list[SyncChange]:
    """What `groupware user sync` would change, without changing anything."""
    entries = backend.all_users()
    try:
        membership = backend.groups()  # type: ignore[attr-defined]  (one search for every user)
    except AttributeError:
        membership = None
    local = storage.list_users()
    by_external = {u["external_id"]: u for u in local if u.get("external_id")}
    seen = set()
    changes = []
    for entry in sorted(entries, key=lambda e: e.name):
        if entry.external_id in seen:
            continue
        seen.add(entry.external_id)
        user = by_external.get(entry.external_id)
        groups = backend.groups_of(entry, membership)
        about = f"{entry.fullname} <{entry.email}>" + (f" groups: {', '.join(groups)}" if groups else "")
        if user is None:
            changes.append(SyncChange("create", entry.name, about, entry))
        elif user["name"] != entry.name:
            changes.append(SyncChange("rename", user["name"], f"-> {entry.name}", entry))
        elif user.get("orphaned"):
            changes.append(SyncChange("restore", entry.name, about, entry))
        elif not same_as_local(user, entry):
            changes.append(SyncChange("update", entry.name, about, entry))
    for user in local:
        external = user.get("external_id") or ""
        if external.startswith(backend.prefix) and external not in seen and not user.get("orphaned"):
            changes.append(SyncChange("orphan", user["name"], "gone from the directory; store kept"))
    return changes


def apply_sync(changes: list[SyncChange], storage: Any) -> None:
    for change in changes:
        if change.action == "orphan":
            storage.set_orphaned(change.name, True)
            log.warning("user %r is gone from the directory: orphaned, store kept", change.name)
        elif change.entry is not None:
            local_user(storage, change.entry)
