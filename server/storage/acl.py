"""Folder rights: ACL entries (RFC 4314 letters, shared/rights.py) and the rights they give.

An entry names a user, a group, or anyone authenticated (`Grantee`). The rule, as
Dovecot applies its ACLs with inheritance from the parent:

- the store owner always has every right (`a` cannot be taken from them);
- otherwise a user's rights on a folder are the union of the entries applying to them
  (their own, their groups', anyone's) on the nearest folder, walking up from the folder
  itself, that has at least one entry applying to them. So an entry on a subfolder
  overrides what the parent gives, and an entry with no letters blocks inheritance;
- public-store folders (no owner) have rights only through their entries.

No right at all means the folder does not exist for the caller (the SOAP layer answers
NotFound, so folder ids cannot be probed).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, literal, or_, select, update

from shared import rights as R
from shared.errors import LIMIT, BadRequest, NotFound

from .base import chunks
from .groups import GroupsMixin, group_key
from .schema import folder_acl, folders, items, stores, users


@dataclass(frozen=True)
class Grantee:
    """Who an ACL entry names: a user (user_id), a group (lower-case name), or anyone (neither)."""
    user_id: int | None = None
    group: str | None = None

    @classmethod
    def of_group(cls, name: str) -> "Grantee":
        return cls(group=group_key(name))

    def where(self) -> Any:
        """The SQL condition for this grantee's entries."""
        if self.user_id is not None:
            return folder_acl.c.user_id == self.user_id
        if self.group is not None:
            return folder_acl.c.group_name == self.group
        return and_(folder_acl.c.user_id.is_(None), folder_acl.c.group_name.is_(None))


ANYONE = Grantee()


def grantee_of(identifier: str, find_user: Callable[[str], dict | None]) -> Grantee:
    """The grantee an RFC 4314 identifier names ("anyone", "$group", a login looked up with
    `find_user`); NotFound for an unknown login, BadRequest for negative rights ("-fred"),
    which are not kept."""
    if identifier == R.ANYONE:
        return ANYONE
    if identifier.startswith(R.GROUP_MARK):
        return Grantee.of_group(identifier[len(R.GROUP_MARK):])
    if not identifier or identifier.startswith("-"):
        raise BadRequest(f"identifier {identifier!r} is not supported")
    user = find_user(identifier)
    if user is None:
        raise NotFound(f"no user {identifier!r}")
    return Grantee(user_id=user["id"])


def identifier_of(entry: dict[str, Any]) -> str:
    """The RFC 4314 identifier of a `get_acl` entry."""
    if entry["group"] is not None:
        return R.group_identifier(entry["group"])
    return R.ANYONE if entry["user_id"] is None else entry["user"]


def _applying(user_id: int, groups: Iterable[str]) -> Any:
    """The SQL condition for the entries that apply to a user in these groups."""
    conds = [folder_acl.c.user_id == user_id,
             and_(folder_acl.c.user_id.is_(None), folder_acl.c.group_name.is_(None))]
    names = sorted(groups)
    if names:
        conds.append(folder_acl.c.group_name.in_(names))
    return or_(*conds)


def _ancestors(conn: Connection, folder_id: int) -> dict[int, int | None]:
    """The folder and those above it (id -> parent id), in one recursive query; a damaged
    tree with a cycle stops at the depth limit."""
    up = (select(folders.c.id, folders.c.parent_id, literal(1).label("depth"))
          .where(folders.c.id == folder_id).cte("up", recursive=True))
    up = up.union_all(select(folders.c.id, folders.c.parent_id, (up.c.depth + 1).label("depth"))
                      .join(up, folders.c.id == up.c.parent_id).where(up.c.depth < _MAX_WALK))
    return dict(conn.execute(select(up.c.id, up.c.parent_id)).all())


# Folders one walk up the tree visits at most (the folder depth limit is far below it).
_MAX_WALK = 1000


def _hidden_ancestors(visible: Mapping[int, str], parent_of: Mapping[int, int | None]) -> set[int]:
    """The folders above visible ones that are not visible themselves."""
    out: set[int] = set()
    for fid in visible:
        parent = parent_of.get(fid)
        while parent is not None and parent not in visible and parent not in out:
            out.add(parent)
            parent = parent_of.get(parent)
    return out


def effective(folder_id: int, parent_of: Mapping[int, int | None], entries: Mapping[int, list[str]]) -> str:
    """The union of the entries on the nearest folder up from `folder_id` that has any
    (`entries`: folder id -> the rights of the entries applying to one user there)."""
    seen: set[int] = set()
    fid: int | None = folder_id
    while fid is not None and fid not in seen:
        found = entries.get(fid)
        if found is not None:
            return R.union(found)
        seen.add(fid)
        fid = parent_of.get(fid)
    return R.NONE


def effective_all(parent_of: Mapping[int, int | None], entries: Mapping[int, list[str]]) -> dict[int, str]:
    """`effective` for every folder of `parent_of` at once, each folder's answer reused by
    the folders below it."""
    known: dict[int, str] = {}
    for start in parent_of:
        path: list[int] = []
        fid: int | None = start
        letters = R.NONE
        while fid is not None and fid not in known:
            found = entries.get(fid)
            if found is not None:
                letters = known[fid] = R.union(found)
                break
            if fid in path:  # a damaged tree with a cycle
                break
            path.append(fid)
            fid = parent_of.get(fid)
        else:
            letters = known[fid] if fid is not None else R.NONE
        for step in path:
            known[step] = letters
    return known


class AclMixin(GroupsMixin):
    """ACL entries of folders and the rights users have through them."""

    # Entries one folder may hold (`max_acl_entries`): each listing of shared folders and
    # each getAcl reads them, and a client with the right a may add any number of names.
    max_acl_entries = 100

    # -- rights ---------------------------------------------------------------
    def folder_rights(self, user_id: int, folder_id: int) -> str:
        """The user's rights on a folder as letters; "" for none. NotFound for no folder."""
        # Checked on every call a gateway makes: the owner's answer comes from memory
        # once the folder's store is known.
        known = self._folder_owners.get(folder_id)
        if known is not None and known[1] is not None and known[1] == user_id:
            return R.ALL
        store_id, owner_id = known if known is not None else self._learn_owner(folder_id)
        if owner_id is not None and owner_id == user_id:
            return R.ALL
        return self.rights_in_store(user_id, store_id, [folder_id]).get(folder_id, R.NONE)

    def _learn_owner(self, folder_id: int) -> tuple[int, int | None]:
        row = self._read(lambda c: c.execute(
            select(folders.c.store_id, stores.c.owner_id)
            .select_from(folders.join(stores, stores.c.id == folders.c.store_id))
            .where(folders.c.id == folder_id)).first())
        if row is None:
            raise NotFound(f"folder {folder_id} not found")
        if len(self._folder_owners) >= self.folder_owner_cache:  # type: ignore[attr-defined]
            self._folder_owners.clear()
        self._folder_owners[folder_id] = (row.store_id, row.owner_id)
        return row.store_id, row.owner_id

    def rights_in_store(self, user_id: int, store_id: int, folder_ids: Iterable[int] | None = None
                        ) -> dict[int, str]:
        """Folder id -> the user's rights, for `folder_ids` (default: every folder) of one
        store, with one read; folders without rights are left out. The owner has all."""
        groups = self.groups_of_user(user_id)
        wanted = None if folder_ids is None else list(folder_ids)

        def run(conn: Connection) -> dict[int, str]:
            owner = conn.execute(select(stores.c.owner_id).where(stores.c.id == store_id)).scalar()
            if owner is not None and owner == user_id:
                ids = wanted if wanted is not None else list(self._tree(conn, store_id))  # type: ignore[attr-defined]
                return {fid: R.ALL for fid in ids}
            entries: dict[int, list[str]] = {}
            for fid, letters in conn.execute(
                    select(folder_acl.c.folder_id, folder_acl.c.rights)
                    .select_from(folder_acl.join(folders, folders.c.id == folder_acl.c.folder_id))
                    .where(folders.c.store_id == store_id, _applying(user_id, groups))).all():
                entries.setdefault(fid, []).append(letters)
            if not entries:
                return {}
            if wanted is not None and all(fid in entries for fid in wanted):
                tree: dict[int, int | None] = {}  # no walking needed
            elif wanted is not None and len(wanted) == 1:
                tree = _ancestors(conn, wanted[0])
            else:
                tree = self._tree(conn, store_id)  # type: ignore[attr-defined]
            ids = wanted if wanted is not None else list(tree)
            out = {fid: effective(fid, tree, entries) for fid in ids}
            return {fid: r for fid, r in out.items() if r}

        return self._read(run)

    def shared_folders(self, user_id: int, counts: bool = True, ancestors: bool = False) -> list[dict]:
        """The folders of other users' stores and of the public store that the user may see
        (`l`) through entries for them, their groups or anyone; each dict has "rights" and
        "owner" (the login of the store's owner, None in the public store). With
        `ancestors`, also the folders above those that the user may not see, with rights ""
        and no counts: their names make the paths of the visible ones (IMAP shows them as
        \\Noselect levels, RFC 4314 §4).

        A constant number of queries however many stores and folders there are."""
        groups = self.groups_of_user(user_id)

        def run(conn: Connection) -> list[dict]:
            rows = conn.execute(
                select(folder_acl.c.folder_id, folder_acl.c.rights, folders.c.store_id)
                .select_from(folder_acl.join(folders, folders.c.id == folder_acl.c.folder_id)
                             .join(stores, stores.c.id == folders.c.store_id))
                .where(_applying(user_id, groups),
                       or_(stores.c.owner_id != user_id, stores.c.owner_id.is_(None)))).all()
            entries: dict[int, list[str]] = {}
            store_ids = set()
            for r in rows:
                entries.setdefault(r.folder_id, []).append(r.rights)
                store_ids.add(r.store_id)
            # Every folder of those stores in one read (without counts, which only the
            # visible ones get): the tree for inheritance, and the rows to answer with.
            rows: dict[int, dict] = {}
            for part in chunks(sorted(store_ids)):
                rows.update((f["id"], f) for f in self._folder_rows(conn, folders.c.store_id.in_(part), None, False))
            tree = {fid: f["parent_id"] for fid, f in rows.items()}
            every = effective_all(tree, entries)
            visible = {fid: letters for fid, letters in every.items() if R.LOOKUP in letters}
            out: list[dict] = []
            if counts:
                for part in chunks(sorted(visible)):
                    out.extend(self._folder_rows(conn, folders.c.id.in_(part), items.c.folder_id.in_(part)))
            else:
                out.extend(rows[fid] for fid in sorted(visible))
            for f in out:
                f["rights"] = visible[f["id"]]
            if ancestors:
                out.extend(dict(rows[fid], rights=R.NONE) for fid in sorted(_hidden_ancestors(visible, tree)))
            owners = dict(conn.execute(select(stores.c.id, users.c.name)
                                       .select_from(stores.join(users, users.c.id == stores.c.owner_id))
                                       .where(stores.c.id.in_(sorted({f["store_id"] for f in out})))).all())
            for f in out:
                f["owner"] = owners.get(f["store_id"])
            return out

        return self._read(run)

    # -- the entries ------------------------------------------------------------
    def get_acl(self, folder_id: int) -> list[dict]:
        """The folder's ACL: one dict per grantee ("user_id", "user" login, "group", "rights",
        "inherited"), the store owner first with every right. A grantee without an entry
        on this folder shows with the entry it inherits from the nearest folder above."""
        def run(conn: Connection) -> list[dict]:
            row = conn.execute(select(folders.c.store_id, stores.c.owner_id, users.c.name)
                               .select_from(folders.join(stores, stores.c.id == folders.c.store_id)
                                            .outerjoin(users, users.c.id == stores.c.owner_id))
                               .where(folders.c.id == folder_id)).first()
            if row is None:
                raise NotFound(f"folder {folder_id} not found")
            tree = _ancestors(conn, folder_id)
            chain: list[int] = []
            fid: int | None = folder_id
            while fid is not None and fid not in chain:
                chain.append(fid)
                fid = tree.get(fid)
            found = conn.execute(
                select(folder_acl.c.folder_id, folder_acl.c.user_id, folder_acl.c.group_name,
                       folder_acl.c.rights, users.c.name)
                .select_from(folder_acl.outerjoin(users, users.c.id == folder_acl.c.user_id))
                .where(folder_acl.c.folder_id.in_(chain))).all()
            depth = {fid: n for n, fid in enumerate(chain)}
            nearest: dict[tuple[int | None, str | None], Any] = {}
            for e in sorted(found, key=lambda e: depth[e.folder_id], reverse=True):
                nearest[(e.user_id, e.group_name)] = e
            out = []
            if row.owner_id is not None:
                out.append({"user_id": row.owner_id, "user": row.name, "group": None, "rights": R.ALL,
                            "inherited": False})
            for (uid, group), e in sorted(nearest.items(), key=lambda kv: (kv[0][0] is None, kv[0][1] or "",
                                                                           kv[1].name or "")):
                if uid is not None and uid == row.owner_id:
                    continue
                out.append({"user_id": uid, "user": e.name, "group": group, "rights": e.rights,
                            "inherited": e.folder_id != folder_id})
            return out

        return self._read(run)

    def set_acl(self, folder_id: int, grantee: Grantee, change: str) -> str:
        """Set the grantee's entry on the folder to `change` (RFC 4314: "+abc" adds to what they
        have here, own or inherited, "-abc" takes away, "abc" replaces); returns its letters.
        The store owner's rights cannot change (BadRequest)."""
        try:
            R.modify("", change)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None

        def run(conn: Connection) -> str:
            self._lock_folders(conn, [folder_id])
            store_id, owner_id = conn.execute(
                select(folders.c.store_id, stores.c.owner_id)
                .select_from(folders.join(stores, stores.c.id == folders.c.store_id))
                .where(folders.c.id == folder_id)).one()
            if grantee.user_id is not None:
                if grantee.user_id == owner_id:
                    raise BadRequest("the store owner always has every right")
                if conn.execute(select(users.c.id).where(users.c.id == grantee.user_id)).first() is None:
                    raise NotFound(f"user {grantee.user_id} not found")
            current = self._grantee_rights(conn, store_id, folder_id, grantee)
            letters = R.modify(current, change)
            own = conn.execute(select(folder_acl.c.id).where(folder_acl.c.folder_id == folder_id,
                                                             grantee.where())).scalars().all()
            if own:
                conn.execute(update(folder_acl).where(folder_acl.c.id == own[0]).values(rights=letters))
                if len(own) > 1:
                    conn.execute(delete(folder_acl).where(folder_acl.c.id.in_(own[1:])))
            else:
                held = conn.execute(select(func.count()).select_from(folder_acl)
                                    .where(folder_acl.c.folder_id == folder_id)).scalar()
                if held >= self.max_acl_entries:
                    raise BadRequest(f"a folder holds at most {self.max_acl_entries} ACL entries", LIMIT)
                conn.execute(insert(folder_acl).values(folder_id=folder_id, user_id=grantee.user_id,
                                                       group_name=grantee.group, rights=letters))
            return letters

        return self._write(run)

    def delete_acl(self, folder_id: int, grantee: Grantee) -> bool:
        """Remove the grantee's entry on this folder (what it inherits applies again);
        whether there was one."""
        def run(conn: Connection) -> bool:
            self._lock_folders(conn, [folder_id])
            return conn.execute(delete(folder_acl).where(folder_acl.c.folder_id == folder_id,
                                                         grantee.where())).rowcount > 0

        return self._write(run)

    def _grantee_rights(self, conn: Connection, store_id: int, folder_id: int, grantee: Grantee) -> str:
        """The letters of the grantee's own entry nearest up from the folder ("" for none)."""
        entries: dict[int, list[str]] = {}
        for fid, letters in conn.execute(
                select(folder_acl.c.folder_id, folder_acl.c.rights)
                .select_from(folder_acl.join(folders, folders.c.id == folder_acl.c.folder_id))
                .where(folders.c.store_id == store_id, grantee.where())).all():
            entries.setdefault(fid, []).append(letters)
        if not entries:
            return R.NONE
        return effective(folder_id, _ancestors(conn, folder_id), entries)


__all__ = ["ANYONE", "AclMixin", "Grantee", "effective", "effective_all", "grantee_of", "identifier_of"]
