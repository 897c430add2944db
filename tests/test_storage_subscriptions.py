"""The store's subscription lists and the migrations that carried them over, on SQLite and MariaDB."""
from __future__ import annotations

import secrets

import pytest
from old_schema import on_an_old_schema
from sqlalchemy import text

from shared.errors import BadRequest, NotFound

pytestmark = pytest.mark.database_engines("sqlite", "mariadb")


def test_a_new_store_is_subscribed_to_its_mail_folders_and_new_folders_are_not(st, user):
    """The IMAP gateway's defaults (its rule, not the store's) start a new store's list."""
    from types import SimpleNamespace

    from gateways.imap.tree import MailboxTree

    sid = user["store_id"]
    defaults = MailboxTree([SimpleNamespace(**f) for f in st.list_folders(sid)]).default_subscriptions()
    assert st.subscriptions(sid, defaults) == ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"]
    st.create_folder(sid, None, "Later")
    assert "Later" not in st.subscriptions(sid)


def test_a_list_starts_with_the_defaults_of_its_first_call_only(st):
    """The store keeps no protocol's names: a list nobody has started takes the
    defaults its first call gives, on any of the three calls; a list its user
    emptied stays empty."""
    def new_store() -> int:
        return st.create_user("subdef" + secrets.token_hex(3), "h")["store_id"]

    sid = new_store()
    assert st.subscriptions(sid) == []
    st.subscribe(sid, ["B"], ["A"])
    assert st.subscriptions(sid, ["C"]) == ["A", "B"]
    st.unsubscribe(sid, ["A", "B"], ["C"])
    assert st.subscriptions(sid, ["C"]) == []
    sid = new_store()
    st.unsubscribe(sid, ["A"], ["A", "B"])
    assert st.subscriptions(sid, ["C"]) == ["B"]
    sid = new_store()
    st.subscribe(sid, ["A"])
    assert st.subscriptions(sid, ["C"]) == ["A"]
    with pytest.raises(BadRequest):
        st.subscriptions(new_store(), ["bad\x00name"])


def test_subscriptions_are_names_that_outlive_their_folders(st, user):
    """RFC 3501 §6.3.6: a name stays on the list when its folder goes or is renamed."""
    sid = user["store_id"]
    folder = st.create_folder(sid, None, "Proj")
    st.subscribe(sid, ["Proj", "Nowhere/deep", "Proj"])
    st.update_folder(folder["id"], name="Proj2")
    assert {"Proj", "Nowhere/deep"} <= set(st.subscriptions(sid))
    st.delete_folder(folder["id"])
    assert {"Proj", "Nowhere/deep"} <= set(st.subscriptions(sid))
    st.unsubscribe(sid, ["Proj", "never-was"])
    assert "Proj" not in st.subscriptions(sid)


def test_subscription_names_compare_exactly(st, user):
    sid = user["store_id"]
    st.subscribe(sid, ["Case", "case", "Ünïcode/日本"])
    names = st.subscriptions(sid)
    assert {"Case", "case", "Ünïcode/日本"} <= set(names)
    st.unsubscribe(sid, ["CASE"])
    assert {"Case", "case"} <= set(st.subscriptions(sid))


def test_subscription_names_are_checked(st, user):
    sid = user["store_id"]
    for bad in ("", "x" * 701, "a\x00b", "tab\there"):
        with pytest.raises(BadRequest):
            st.subscribe(sid, [bad])
    st.subscribe(sid, ["x" * 700])
    assert "x" * 700 in st.subscriptions(sid)
    with pytest.raises(NotFound):
        st.subscribe(10**9, ["a"])


def test_subscriptions_go_with_the_user(st):
    u = st.create_user("subgone" + secrets.token_hex(3), "h")
    st.subscribe(u["store_id"], ["Kept"])
    st.delete_user(u["name"])
    assert st.subscriptions(u["store_id"]) == []


def test_migration_carries_subscribed_folders_over_by_imap_name(st, tmp_path):
    """0009 turns the per-folder flags of 0004 into names: the path joined with "/",
    the inbox as INBOX (subfolders too), mail folders under a calendar included,
    unsubscribed and non-mail folders left out; the old column goes."""
    def run(old, c, sid):

        def folder(name, parent=None, cls="mail", role=None, subscribed=True):
            c.execute(text("INSERT INTO folders (store_id, parent_id, name, container_class, role, uidvalidity, "
                           "uidnext, highestmodseq, tombstone_floor, subscribed) "
                           "VALUES (:s, :p, :n, :c, :r, 1, 1, 1, 0, :sub)"),
                      {"s": sid, "p": parent, "n": name, "c": cls, "r": role, "sub": subscribed})
            return c.execute(text("SELECT max(id) FROM folders")).scalar()

        inbox = folder("Inbox", role="inbox")
        folder("sub", inbox)
        folder("Foo", subscribed=False)
        folder("foo")
        cal = folder("Calendar", cls="calendar")
        under = folder("mail", cal)
        folder("deep", under)

        def checks():
            assert old.subscriptions(sid) == ["Calendar/mail", "Calendar/mail/deep", "INBOX", "INBOX/sub", "foo"]
            assert "subscribed" not in old.list_folders(sid)[0]
            with old.engine.connect() as conn:
                columns = list(conn.execute(text("SELECT * FROM folders")).keys())
            assert "subscribed" not in columns
        return checks

    on_an_old_schema(st, tmp_path, "0008", run)


def test_migration_keeps_the_lists_of_existing_stores_as_they_are(st, tmp_path):
    """0011: a store from before has the list it was given, so a gateway's defaults do
    not add to it, even when its user emptied it; a store created after starts with them."""
    def run(old, c, sid):
        c.execute(text("INSERT INTO subscriptions (store_id, name) VALUES (:s, 'INBOX/kept')"), {"s": sid})

        def checks():
            assert old.subscriptions(sid, ["INBOX", "Sent"]) == ["INBOX/kept"]
            old.unsubscribe(sid, ["INBOX/kept"])
            assert old.subscriptions(sid, ["INBOX", "Sent"]) == []
            new = old.create_user("new" + secrets.token_hex(3), "h")["store_id"]
            assert old.subscriptions(new, ["INBOX", "Sent"]) == ["INBOX", "Sent"]
        return checks

    on_an_old_schema(st, tmp_path, "0010", run)
