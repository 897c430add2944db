"""`groupware share`, `groupware public` and `groupware group`: folder ACLs, the public
store's folders, and the groups of the store, on the configured database.

    share USER FOLDER list | grant GRANTEE RIGHTS | revoke GRANTEE [LETTERS]
    share --public FOLDER list | grant GRANTEE RIGHTS | revoke GRANTEE [LETTERS]
    share --user LOGIN                   what LOGIN sees of other stores, with their rights
    public list | create FOLDER | rename FOLDER NEWFOLDER | delete FOLDER
    group list | add NAME | del NAME | members NAME [--add LOGIN] [--remove LOGIN]

GRANTEE is a login, "$group" or "anyone"; RIGHTS are RFC 4314 letters (lrswipkxtea),
"+letters" to add to an entry, or read (lrs), write (lrswipkxte), all. `revoke GRANTEE`
removes the entry (what the folder inherits applies again), `revoke GRANTEE LETTERS` only
those letters (RFC 4314's "-letters").
As the other admin commands, these work whether or not the server runs; a running server
sees a new ACL at once and a new group membership within group_cache_ttl seconds.
"""
from __future__ import annotations

import argparse
from typing import Any

from groupware import folder_admin
from groupware.folder_admin import StoreLabel, paths
from groupware.output import USAGE, Output
from shared import rights as R
from shared.errors import GroupwareError, NotFound

SHARE_ACTIONS = ("list", "grant", "revoke")


def add_parsers(commands: Any, common: argparse.ArgumentParser, admin: list[argparse.ArgumentParser]) -> None:
    share = commands.add_parser(
        "share", parents=admin, help="folder rights (ACLs) of a user's or a public folder",
        description="List, grant or revoke the rights (RFC 4314 letters lrswipkxtea) a user, a group "
                    "('$name', quoted in the shell) or anyone authenticated ('anyone') has on a folder "
                    "and the folders below it that have no entry of their own. RIGHTS: letters; "
                    "+letters to add to an entry; or read (lrs), write (lrswipkxte), all. revoke GRANTEE "
                    "removes the entry, so that what the folder inherits applies again; revoke GRANTEE "
                    "LETTERS takes only those letters away. "
                    "With --user, list what a user sees of other users' and the public store.",
        usage="groupware share USER FOLDER {list,grant GRANTEE RIGHTS,revoke GRANTEE [LETTERS]}\n"
              "       groupware share --public FOLDER {list,grant GRANTEE RIGHTS,revoke GRANTEE [LETTERS]}\n"
              "       groupware share --user LOGIN")
    share.add_argument("--public", action="store_true", help="FOLDER is a folder of the public store")
    share.add_argument("--user", dest="visible_to", metavar="LOGIN",
                       help="list the folders of other stores LOGIN may see, with LOGIN's rights")
    share.add_argument("words", nargs="*", metavar="ARG", help=argparse.SUPPRESS)

    public = commands.add_parser("public", parents=[common], help="the public store's folders",
                                 description="List, create, rename (or move) and delete the folders of "
                                             "the public store, named by path with / between levels. "
                                             "Nobody sees them until 'groupware share --public' grants "
                                             "rights.")
    actions = public.add_subparsers(dest="action", required=True, metavar="ACTION")
    folder_admin.add_action_parsers(actions, admin, "a public",
                                    "every public folder: path, class, messages, unseen, bytes")

    group = commands.add_parser("group", parents=[common], help="groups kept in the store, for folder rights",
                                description="Groups of the store (any user_plugin); a directory's own "
                                            "groups (LDAP/AD, system groups) count as well without "
                                            "being listed here. Names compare case-insensitively.")
    group_actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    group_actions.add_parser("list", parents=admin, help="every group with its members")
    group_actions.add_parser("add", parents=admin, help="create a group"
                             ).add_argument("name", metavar="NAME", help="the group's name")
    group_actions.add_parser("del", parents=admin, help="delete a group (entries naming it then grant nothing)"
                             ).add_argument("name", metavar="NAME", help="the group's name")
    members = group_actions.add_parser("members", parents=admin, help="show or change a group's members")
    members.add_argument("name", metavar="NAME", help="the group's name")
    members.add_argument("--add", action="append", default=[], metavar="LOGIN", help="add a member; may be repeated")
    members.add_argument("--remove", action="append", default=[], metavar="LOGIN",
                         help="remove a member; may be repeated")


def run(storage: Any, args: argparse.Namespace, out: Output) -> int:
    try:
        if args.command == "share":
            return _share(storage, args, out)
        if args.command == "public":
            label = StoreLabel({"public": True}, "the public", "the public store")
            return folder_admin.run_on_store(storage, storage.public_store_id(), label, args, out)
        return _group(storage, args, out)
    except GroupwareError as exc:
        return out.error(exc.code, exc.message)


# -- share ------------------------------------------------------------------------

def _grantee(storage: Any, identifier: str) -> Any:
    from server.storage.acl import grantee_of
    try:
        return grantee_of(identifier, storage.get_user)
    except NotFound as exc:
        raise NotFound(f"{exc.message} (a directory's users appear after 'groupware user sync')") from None


def rights_argument(text: str) -> str:
    """RIGHTS as SETACL takes them: a preset name becomes its letters."""
    return R.PRESETS.get(text, text)


def _share(storage: Any, args: argparse.Namespace, out: Output) -> int:
    from server.storage.acl import identifier_of
    words = list(args.words)
    if args.visible_to is not None:
        if words or args.public:
            return out.error("badRequest", "--user takes no other arguments", USAGE)
        return _visible(storage, args.visible_to, out)
    owner: str | None = None
    if not args.public:
        if not words:
            return out.error("badRequest", "say whose folder: USER FOLDER ACTION, --public FOLDER ACTION "
                                           "or --user LOGIN", USAGE)
        owner = words.pop(0)
    if len(words) < 2 or words[1] not in SHARE_ACTIONS:
        return out.error("badRequest", "FOLDER then list, grant GRANTEE RIGHTS or revoke GRANTEE [LETTERS]",
                         USAGE)
    path, action, rest = words[0], words[1], words[2:]
    if len(rest) not in {"list": (0,), "grant": (2,), "revoke": (1, 2)}[action]:
        return out.error("badRequest", {"list": "list takes no further arguments", "grant": "grant takes GRANTEE RIGHTS",
                                        "revoke": "revoke takes GRANTEE [LETTERS]"}[action], USAGE)
    if owner is None:
        store_id, where = storage.public_store_id(), {"public": True}
    else:
        user = storage.get_user(owner)
        if user is None:
            return out.error("notFound", f"no user {owner!r}")
        store_id, where = user["store_id"], {"user": owner}
    folder = folder_admin.find(storage, store_id, path)
    if folder is None:
        return out.error("notFound", f"{owner or 'the public store'} has no folder {path!r}")
    path = path.strip("/")
    if action == "grant" or len(rest) == 2:
        change = rights_argument(rest[1]) if action == "grant" else "-" + rest[1].lstrip("-")
        letters = storage.set_acl(folder["id"], _grantee(storage, rest[0]), change)
        return out.result({**where, "folder": path, "grantee": rest[0], "rights": letters},
                          f"{rest[0]} has {letters or 'no rights'} on {path}")
    if action == "revoke":
        existed = storage.delete_acl(folder["id"], _grantee(storage, rest[0]))
        return out.result({**where, "folder": path, "grantee": rest[0], "revoked": existed},
                          f"removed the entry of {rest[0]} on {path}" if existed else f"{rest[0]} had no entry on {path}")
    entries = [{"identifier": identifier_of(e), "rights": e["rights"], "inherited": e["inherited"]}
               for e in storage.get_acl(folder["id"])]
    return out.result({**where, "folder": path, "acl": entries},
                      [f"{e['identifier']}\t{e['rights'] or '-'}" + ("\tinherited" if e["inherited"] else "")
                       for e in entries])


def _visible(storage: Any, login: str, out: Output) -> int:
    user = storage.get_user(login)
    if user is None:
        return out.error("notFound", f"no user {login!r}")
    shared = storage.shared_folders(user["id"], counts=False)
    rows = []
    for store_id in sorted({f["store_id"] for f in shared}):
        named = paths(storage.list_folders(store_id, counts=False))
        rows.extend({"owner": f["owner"] or "(public)", "path": named[f["id"]], "rights": f["rights"],
                     "class": f["container_class"]} for f in shared if f["store_id"] == store_id)
    rows.sort(key=lambda r: (r["owner"], r["path"].lower()))
    return out.result({"user": login, "folders": rows},
                      [f"{r['owner']}\t{r['path']}\t{r['rights']}\t{r['class']}" for r in rows])


# -- group ------------------------------------------------------------------------

def _group(storage: Any, args: argparse.Namespace, out: Output) -> int:
    if args.action == "list":
        groups = storage.list_groups()
        return out.result({"groups": groups}, [f"{name}\t{' '.join(members)}" for name, members in groups.items()])
    if args.action == "add":
        storage.create_group(args.name)
        return out.result({"created": args.name.strip().lower()}, f"created group {args.name.strip().lower()}")
    if args.action == "del":
        storage.delete_group(args.name)
        return out.result({"deleted": args.name.strip().lower()}, f"deleted group {args.name.strip().lower()}")
    for login, member in [(n, True) for n in args.add] + [(n, False) for n in args.remove]:
        user = storage.get_user(login)
        if user is None:
            return out.error("notFound", f"no user {login!r}")
        storage.set_group_member(args.name, user["id"], member)
    name = args.name.strip().lower()
    groups = storage.list_groups()
    if name not in groups:
        return out.error("notFound", f"no group {name!r}")
    return out.result({"group": name, "members": groups[name]}, groups[name])
