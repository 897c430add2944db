"""Folder ACLs in the store (RFC 4314 rights): the migration of the old grants, inheritance
and override, groups, anyone, the owner's rights, the shared-folder listing."""
from __future__ import annotations

import secrets
import time

import pytest
from sqlalchemy import text

from old_schema import on_an_old_schema
from server.storage.acl import ANYONE, Grantee, effective, grantee_of
from shared import rights as R
from shared.errors import BadRequest, Conflict, NotFound

pytestmark = pytest.mark.database_engines("sqlite", "mariadb")


def new_user(st) -> dict:
    return st.create_user("u" + secrets.token_hex(4), "hash")


def folder(st, store_id: int, name: str, parent: int | None = None) -> int:
    return st.create_folder(store_id, parent, name + secrets.token_hex(2))["id"]


# -- shared/rights.py ---------------------------------------------------------------

def test_rights_strings():
    assert R.normalize("arl") == "lra"
    assert R.normalize("cd") == "kxte"  # RFC 4314 §2.1.1: obsolete c and d
    assert R.modify("lrs", "+wi") == "lrswi"
    assert R.modify("lrswi", "-si") == "lrw"
    assert R.modify("lrswi", "lr") == "lr"
    assert R.modify("", "") == ""
    with pytest.raises(ValueError):
        R.normalize("lrz")
    assert R.for_flags(["\\Seen"]) == "s"
    assert R.for_flags(["\\Deleted", "\\Flagged", "$Label1"]) == "wt"
    assert R.read_only("lr") and not R.read_only("lrs")


def test_nearest_entry_wins_and_walks_no_cycle():
    tree = {1: None, 2: 1, 3: 2, 4: 3}
    assert effective(4, tree, {1: ["lr"]}) == "lr"
    assert effective(4, tree, {1: ["lr"], 3: ["i", "l"]}) == "li"
    assert effective(2, tree, {3: ["lrs"]}) == ""
    assert effective(1, {1: 2, 2: 1}, {}) == ""  # a damaged tree ends


# -- the store -----------------------------------------------------------------------

def test_inheritance_override_and_blocking_entry(st, user):
    other = new_user(st)
    them = Grantee(user_id=other["id"])
    top = folder(st, user["store_id"], "Top")
    mid = folder(st, user["store_id"], "Mid", top)
    low = folder(st, user["store_id"], "Low", mid)
    st.set_acl(top, them, "lrs")
    assert [st.folder_rights(other["id"], f) for f in (top, mid, low)] == ["lrs", "lrs", "lrs"]
    st.set_acl(mid, them, "lrswi")  # overrides below mid, not above
    assert [st.folder_rights(other["id"], f) for f in (top, mid, low)] == ["lrs", "lrswi", "lrswi"]
    st.set_acl(low, them, "")  # an empty entry stops inheritance
    assert st.folder_rights(other["id"], low) == ""
    assert st.delete_acl(low, them) and not st.delete_acl(low, them)
    assert st.folder_rights(other["id"], low) == "lrswi"
    # "+"/"-" change what the grantee has here, its own entry or the inherited one.
    assert st.set_acl(low, them, "+k") == "lrswik"
    assert st.set_acl(low, them, "-sw") == "lrik"
    acl = {(e["user"], e["inherited"]): e["rights"] for e in st.get_acl(low)}
    assert acl == {(user["name"], False): R.ALL, (other["name"], False): "lrik"}
    acl = {(e["user"], e["inherited"]): e["rights"] for e in st.get_acl(top)}
    assert acl == {(user["name"], False): R.ALL, (other["name"], False): "lrs"}
    # Below low, the entry shows as inherited from low.
    below = folder(st, user["store_id"], "Below", low)
    assert [(e["user"], e["rights"], e["inherited"]) for e in st.get_acl(below)][1] == (other["name"], "lrik", True)


def test_owner_always_has_every_right(st, user):
    top = folder(st, user["store_id"], "Mine")
    assert st.folder_rights(user["id"], top) == R.ALL
    with pytest.raises(BadRequest):
        st.set_acl(top, Grantee(user_id=user["id"]), "lr")
    st.set_acl(top, ANYONE, "")  # even an entry for anyone that grants nothing
    assert st.folder_rights(user["id"], top) == R.ALL
    assert st.get_acl(top)[0] == {"user_id": user["id"], "user": user["name"], "group": None, "rights": R.ALL,
                                  "inherited": False}


def test_groups_and_anyone_add_up_on_the_nearest_folder(st, user):
    member, outsider = new_user(st), new_user(st)
    group = "team" + secrets.token_hex(3)
    st.create_group(group.upper())  # names compare case-insensitively
    with pytest.raises(Conflict):
        st.create_group(group)
    st.set_group_member(group, member["id"], True)
    top = folder(st, user["store_id"], "Team")
    sub = folder(st, user["store_id"], "Sub", top)
    st.set_acl(top, ANYONE, "lr")
    st.set_acl(top, Grantee.of_group(group), "lrswi")
    assert st.folder_rights(member["id"], top) == "lrswi"
    assert st.folder_rights(outsider["id"], top) == "lr"
    # An entry for the member alone on sub is the nearest for them: group and anyone stop there.
    st.set_acl(sub, Grantee(user_id=member["id"]), "lrk")
    assert st.folder_rights(member["id"], sub) == "lrk"
    assert st.folder_rights(outsider["id"], sub) == "lr"
    st.set_acl(sub, ANYONE, "lrs")
    assert st.folder_rights(member["id"], sub) == "lrsk"  # union of the entries on sub
    assert {e["group"] for e in st.get_acl(top)} >= {group}
    # Leaving the group takes effect (the cache is dropped for the user changed here).
    st.set_group_member(group, member["id"], False)
    assert st.folder_rights(member["id"], top) == "lr"
    assert st.list_groups()[group] == []
    st.delete_group(group)
    with pytest.raises(NotFound):
        st.set_group_member(group, member["id"], True)


def test_directory_groups_count_and_are_cached(st, user):
    member = new_user(st)
    asked = []

    def directory(login):
        asked.append(login)
        return ["Dir-Staff"] if login == member["name"] else []

    top = folder(st, user["store_id"], "Dir")
    st.set_acl(top, Grantee.of_group("dir-staff"), "lr")
    st.directory_groups, ttl = directory, st.group_cache_ttl
    st.group_cache_ttl = 0.3
    try:
        st.forget_groups()
        assert st.folder_rights(member["id"], top) == "lr"
        assert st.folder_rights(member["id"], top) == "lr"
        assert asked == [member["name"]]  # remembered
        time.sleep(0.4)
        st.folder_rights(member["id"], top)
        assert asked == [member["name"]] * 2

        def down(login):
            raise OSError("directory down")
        st.directory_groups = down
        time.sleep(0.4)
        assert st.folder_rights(member["id"], top) == "lr"  # what was known holds through an outage
    finally:
        st.directory_groups, st.group_cache_ttl = None, ttl
        st.forget_groups()


def test_no_rights_reads_as_a_missing_folder(st, user):
    other = new_user(st)
    top = folder(st, user["store_id"], "Hidden")
    assert st.folder_rights(other["id"], top) == ""
    with pytest.raises(NotFound):
        st.folder_rights(other["id"], 10**12)
    assert top not in {f["id"] for f in st.shared_folders(other["id"])}


def test_shared_folders_lists_what_user_group_and_anyone_entries_show(st, user):
    viewer = new_user(st)
    group = "g" + secrets.token_hex(3)
    st.create_group(group)
    st.set_group_member(group, viewer["id"], True)
    by_user = folder(st, user["store_id"], "ByUser")
    by_user_child = folder(st, user["store_id"], "Child", by_user)
    by_group = folder(st, user["store_id"], "ByGroup")
    no_lookup = folder(st, user["store_id"], "NoLookup")
    st.set_acl(by_user, Grantee(user_id=viewer["id"]), "lrs")
    st.set_acl(by_group, Grantee.of_group(group), "lrswi")
    st.set_acl(no_lookup, Grantee(user_id=viewer["id"]), "r")  # may open, not list
    public = st.create_folder(st.public_store_id(), None, "Pub" + secrets.token_hex(2))["id"]
    st.set_acl(public, ANYONE, "lr")
    try:
        shared = {f["id"]: f["rights"] for f in st.shared_folders(viewer["id"])}
        assert shared[by_user] == "lrs" and shared[by_user_child] == "lrs"
        assert shared[by_group] == "lrswi" and shared[public] == "lr"
        assert no_lookup not in shared
        owners = {f["id"]: f["owner"] for f in st.shared_folders(viewer["id"])}
        assert owners[by_user] == user["name"] and owners[public] is None
        assert st.folder_rights(viewer["id"], no_lookup) == "r"
        # The owner's own folders are never "shared" with them.
        assert public in {f["id"] for f in st.shared_folders(user["id"])}
        assert not {by_user, by_group} & {f["id"] for f in st.shared_folders(user["id"])}
        rights = st.rights_in_store(viewer["id"], user["store_id"])
        assert rights[by_user] == "lrs" and rights[no_lookup] == "r"
    finally:
        st.delete_folder(public)


def test_shared_listing_takes_a_constant_number_of_queries(st, user):
    """50 colleagues x 10 folders each: the listing does not query per store or per folder."""
    from sqlalchemy import event

    viewer = new_user(st)
    group = "many" + secrets.token_hex(3)
    st.create_group(group)
    st.set_group_member(group, viewer["id"], True)
    expected = set()
    for n in range(50):
        colleague = new_user(st)
        top = folder(st, colleague["store_id"], "Team")
        expected.add(top)
        st.set_acl(top, Grantee.of_group(group) if n % 2 else Grantee(user_id=viewer["id"]), "lrs")
        for m in range(9):
            expected.add(folder(st, colleague["store_id"], f"F{m}", top))
    statements = []

    def count(*args):
        statements.append(args[2])
    st.groups_of_user(viewer["id"])  # the groups come from their cache in a listing
    event.listen(st.engine, "before_cursor_execute", count)
    try:
        started = time.perf_counter()
        listed = st.shared_folders(viewer["id"])
        took = time.perf_counter() - started
    finally:
        event.remove(st.engine, "before_cursor_execute", count)
    assert expected <= {f["id"] for f in listed}
    assert len(statements) <= 6, statements
    assert took < 5, took


def test_identifiers(st, user):
    assert grantee_of("anyone", st.get_user) == ANYONE
    assert grantee_of("$Staff", st.get_user) == Grantee(group="staff")
    assert grantee_of(user["name"], st.get_user) == Grantee(user_id=user["id"])
    with pytest.raises(NotFound):
        grantee_of("nobody-" + secrets.token_hex(3), st.get_user)
    with pytest.raises(BadRequest):
        grantee_of("-" + user["name"], st.get_user)  # negative rights are not kept
    with pytest.raises(BadRequest):
        st.set_acl(folder(st, user["store_id"], "Bad"), ANYONE, "lrq")


def test_deleting_a_user_or_folder_takes_their_entries(st, user):
    other = new_user(st)
    top = folder(st, user["store_id"], "Gone")
    st.set_acl(top, Grantee(user_id=other["id"]), "lr")
    st.delete_user(other["name"])
    assert [e["user"] for e in st.get_acl(top)] == [user["name"]]
    st.set_acl(top, ANYONE, "lr")
    st.delete_folder(top)
    with pytest.raises(NotFound):
        st.get_acl(top)


def test_migration_0020_turns_grants_into_acl_entries(st, tmp_path):
    def run(old, conn, store_id):
        ids = {}
        for name in ("R", "W", "O"):
            conn.execute(text("INSERT INTO folders (store_id, name, container_class, uidvalidity, uidnext, "
                              "highestmodseq, tombstone_floor) VALUES (:s, :n, 'mail', 1, 1, 1, 0)"),
                         {"s": store_id, "n": name})
            ids[name] = conn.execute(text("SELECT id FROM folders WHERE name = :n AND store_id = :s"),
                                     {"n": name, "s": store_id}).scalar()
        conn.execute(text("INSERT INTO users (name, password_hash, fullname, email, active, feature_imap, "
                          "feature_pop3, feature_caldav, orphaned) VALUES ('grantee', '', '', '', 1, 1, 1, 1, 0)"))
        grantee = conn.execute(text("SELECT id FROM users WHERE name = 'grantee'")).scalar()
        for name, level in (("R", "read"), ("W", "write"), ("O", "owner")):
            conn.execute(text("INSERT INTO permissions (folder_id, user_id, rights) VALUES (:f, :u, :r)"),
                         {"f": ids[name], "u": grantee, "r": level})

        def checks():
            assert [old.folder_rights(grantee, ids[n]) for n in ("R", "W", "O")] == \
                ["lrs", "lrswipkxte", "lrswipkxtea"]
            assert {f["id"] for f in old.shared_folders(grantee)} == set(ids.values())
        return checks

    on_an_old_schema(st, tmp_path, "0018", run)


def test_shared_folders_with_ancestors_names_the_parents_without_rights(st, user):
    viewer = new_user(st)
    top = folder(st, user["store_id"], "Parent")
    mid = folder(st, user["store_id"], "Mid", top)
    low = folder(st, user["store_id"], "Low", mid)
    sibling = folder(st, user["store_id"], "Sibling", top)
    st.set_acl(low, Grantee(user_id=viewer["id"]), "lr")
    ours = {top, mid, low, sibling}  # other tests' folders for anyone show too
    assert {f["id"]: f["rights"] for f in st.shared_folders(viewer["id"]) if f["id"] in ours} == {low: "lr"}
    with_parents = {f["id"]: (f["rights"], f["name"]) for f in st.shared_folders(viewer["id"], ancestors=True)
                    if f["id"] in ours}
    assert set(with_parents) == {top, mid, low}
    assert with_parents[top][0] == with_parents[mid][0] == "" and with_parents[low][0] == "lr"


def test_rights_of_every_folder_at_once_agree_with_one_by_one():
    from server.storage.acl import effective_all

    tree = {1: None, 2: 1, 3: 2, 4: 3, 5: 1, 6: 5, 7: 8, 8: 7}  # 7 and 8: a damaged cycle
    entries = {1: ["lr"], 3: ["", "s"], 6: ["lrswi"]}
    assert effective_all(tree, entries) == {fid: effective(fid, tree, entries) for fid in tree}


def test_entries_per_folder_are_bounded(st, user):
    top = folder(st, user["store_id"], "Crowded")
    limit, st.max_acl_entries = st.max_acl_entries, 3
    try:
        for n in range(3):
            st.set_acl(top, Grantee.of_group(f"g{n}"), "lr")
        st.set_acl(top, Grantee.of_group("g0"), "lrs")  # changing one is not adding one
        with pytest.raises(BadRequest) as caught:
            st.set_acl(top, ANYONE, "l")
        assert caught.value.reason == "limit"
    finally:
        st.max_acl_entries = limit
