"""Groups: those kept in the store (the db user backend's, `groupware group`) and, through
`directory_groups`, those a directory (LDAP/AD, system groups) reports, as one set of
names per user for the rights of folder ACLs.

Group names compare case-insensitively: they are kept and looked up in lower case.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from sqlalchemy import Connection, delete, insert, select

from shared.errors import LIMIT, BadRequest, Conflict, NotFound

from .base import StorageBase
from .schema import group_members, groups, users

log = logging.getLogger(__name__)

GROUP_NAME_COLUMN = 255
# Users whose groups are remembered at most; then all are forgotten and asked again.
GROUP_CACHE_USERS = 100_000


def group_key(name: str) -> str:
    """A group's name as kept and compared; BadRequest for an unusable one."""
    if not isinstance(name, str) or not name.strip() or any(ord(ch) < 32 for ch in name):
        raise BadRequest("bad group name")
    if len(name) > GROUP_NAME_COLUMN:
        raise BadRequest(f"group names have at most {GROUP_NAME_COLUMN} characters", LIMIT)
    return name.strip().lower()


class GroupsMixin(StorageBase):
    """Groups kept in the store, and every group a user belongs to (cached)."""

    # Seconds a user's groups are remembered before they are asked again (`group_cache_ttl`):
    # rights are computed on every call, a directory must not be asked each time. A change of
    # membership reaches the rights within this time.
    group_cache_ttl = 60.0
    # login -> that user's groups in a directory (set by the server from its user backend);
    # None: only the store's own groups count.
    directory_groups: Callable[[str], Iterable[str]] | None = None

    # -- the store's own groups --------------------------------------------
    def create_group(self, name: str) -> None:
        key = group_key(name)

        def run(conn: Connection) -> None:
            if conn.execute(select(groups.c.id).where(groups.c.name == key)).first() is not None:
                raise Conflict(f"group {key!r} exists")
            conn.execute(insert(groups).values(name=key))

        self._write(run)

    def delete_group(self, name: str) -> None:
        """Remove a group and its memberships (ACL entries naming it stay, granting nobody)."""
        key = group_key(name)

        def run(conn: Connection) -> None:
            gid = self._group_id(conn, key)
            conn.execute(delete(group_members).where(group_members.c.group_id == gid))
            conn.execute(delete(groups).where(groups.c.id == gid))

        self._write(run)
        self.forget_groups()

    def set_group_member(self, name: str, user_id: int, member: bool) -> None:
        """Add the user to the group (member=True) or take them out."""
        key = group_key(name)

        def run(conn: Connection) -> None:
            gid = self._group_id(conn, key)
            if conn.execute(select(users.c.id).where(users.c.id == user_id)).first() is None:
                raise NotFound(f"user {user_id} not found")
            conn.execute(delete(group_members).where(group_members.c.group_id == gid,
                                                     group_members.c.user_id == user_id))
            if member:
                conn.execute(insert(group_members).values(group_id=gid, user_id=user_id))

        self._write(run)
        self.forget_groups(user_id)

    def list_groups(self) -> dict[str, list[str]]:
        """Every group kept in the store -> the logins of its members, sorted."""
        def run(conn: Connection) -> dict[str, list[str]]:
            out: dict[str, list[str]] = {n: [] for n in conn.execute(select(groups.c.name)).scalars()}
            for name, login in conn.execute(
                    select(groups.c.name, users.c.name)
                    .select_from(group_members.join(groups, groups.c.id == group_members.c.group_id)
                                 .join(users, users.c.id == group_members.c.user_id))).all():
                out[name].append(login)
            return {n: sorted(m) for n, m in sorted(out.items())}

        return self._read(run)

    @staticmethod
    def _group_id(conn: Connection, key: str) -> int:
        gid = conn.execute(select(groups.c.id).where(groups.c.name == key)).scalar()
        if gid is None:
            raise NotFound(f"no group {key!r}")
        return gid

    # -- membership for rights ---------------------------------------------
    def groups_of_user(self, user_id: int) -> frozenset[str]:
        """Every group (lower case) the user belongs to: the store's and the directory's."""
        cache = self._groups_by_user
        now = time.monotonic()
        known = cache.get(user_id)
        if known is not None and known[0] > now:
            return known[1]

        def run(conn: Connection) -> tuple[str | None, list[str]]:
            login = conn.execute(select(users.c.name).where(users.c.id == user_id)).scalar()
            own = conn.execute(select(groups.c.name)
                               .select_from(group_members.join(groups, groups.c.id == group_members.c.group_id))
                               .where(group_members.c.user_id == user_id)).scalars().all()
            return login, list(own)

        login, names = self._read(run)
        found = set(names)
        if login is not None and self.directory_groups is not None:
            try:
                found.update(n.lower() for n in self.directory_groups(login))
            except Exception:  # noqa: BLE001  (a directory outage keeps what was known)
                log.warning("groups of %r: the directory did not answer; using what was known", login,
                            exc_info=True)
                if known is not None:
                    found.update(known[1])
        result = frozenset(found)
        if len(cache) >= GROUP_CACHE_USERS:
            cache.clear()
        cache[user_id] = (now + self.group_cache_ttl, result)
        return result

    def forget_groups(self, user_id: int | None = None) -> None:
        """Ask again for one user's (or everyone's) groups at the next rights check."""
        cache = self._groups_by_user
        if user_id is None:
            cache.clear()
        else:
            cache.pop(user_id, None)
