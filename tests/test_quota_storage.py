"""Storage quotas in the store (SQLite and MariaDB): the usage counters every write keeps,
the levels each kind of write is checked against, deleting over quota, the warning
message once per crossing, and the migration that fills the counters in."""
from __future__ import annotations

import random
import secrets

import pytest
from sqlalchemy import func, select, text

from old_schema import on_an_old_schema

from server.icalcolumns import calendar_columns
from server.storage import NewMessage
from server.storage.calendar_batch import CalendarSave
from server.storage.delivery import DeliveryTarget
from server.storage.quota import QuotaLimits
from server.storage.schema import folders, items, stores
from shared.errors import Quota

pytestmark = pytest.mark.database_engines("sqlite", "mariadb")


def body(size: int) -> bytes:
    head = b"Subject: q\r\nMessage-ID: <%s@x>\r\n\r\n" % secrets.token_hex(6).encode()
    return head + b"x" * max(0, size - len(head))


def message(st, size: int = 1000) -> NewMessage:
    data = body(size)
    return NewMessage(st.blobs.put_bytes(data), len(data), None, 0, (), {"subject": "q"})


def ical(uid: str, summary: str = "meeting") -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20261201T100000Z\r\nDTEND:20261201T110000Z\r\n"
            f"SUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


def save_event(st, folder_id: int, name: str, summary: str = "meeting") -> dict:
    text = ical(name, summary)
    data = text.encode()
    return st.save_calendar_item(folder_id, name, st.blobs.put_bytes(data), len(data), calendar_columns(text))


def real_usage(st, store_id: int) -> tuple[int, int]:
    """What the store's items take, summed from the rows (what the counter must say)."""
    with st.engine.connect() as conn:
        row = conn.execute(select(func.coalesce(func.sum(items.c.size), 0), func.count())
                           .select_from(items.join(folders, folders.c.id == items.c.folder_id))
                           .where(folders.c.store_id == store_id)).one()
    return int(row[0]), int(row[1])


def counted(st, store_id: int) -> tuple[int, int]:
    usage = st.store_usage(store_id)
    return usage.used_bytes, usage.used_items


@pytest.fixture
def quota_user(st):
    user = st.create_user("q" + secrets.token_hex(4), "hash", "Quota User", "q@example.org")
    folders_of = {f["role"] or f["name"]: f["id"] for f in st.list_folders(user["store_id"])}
    return user, folders_of


@pytest.fixture
def limits(st):
    """Sets the server's levels for one test."""
    before = st.quota_defaults

    def set_limits(**values: int) -> None:
        st.quota_defaults = QuotaLimits(**values)
    yield set_limits
    st.quota_defaults = before


def test_counter_matches_the_rows_after_a_random_mix_of_writes(st, quota_user):
    user, named = quota_user
    other = st.create_user("o" + secrets.token_hex(4), "hash")
    other_inbox = next(f["id"] for f in st.list_folders(other["store_id"]) if f["role"] == "inbox")
    rnd = random.Random(20)
    inbox = named["inbox"]
    work = st.create_folder(user["store_id"], None, "work", "mail")["id"]
    calendar = st.create_folder(user["store_id"], None, "cal", "calendar")["id"]
    doomed = st.create_folder(user["store_id"], work, "doomed", "mail")["id"]
    mail_folders = [inbox, work, doomed]
    for step in range(60):
        action = rnd.choice(["append", "append", "deliver", "copy", "move", "move_out", "delete",
                             "event", "event", "batch", "empty"])
        folder = rnd.choice(mail_folders)
        uids = st.query_items(folder, ["uid"])[1]["uid"]
        if action == "append":
            st.create_messages(folder, [message(st, rnd.randint(100, 5000)) for _ in range(rnd.randint(1, 3))])
        elif action == "deliver":
            st.deliver(message(st, rnd.randint(100, 3000)), [DeliveryTarget(user["name"]), DeliveryTarget(other["name"])],
                       0)
        elif action == "copy" and uids:
            st.copy_items(folder, f"{min(uids)}:{max(uids)}", rnd.choice([inbox, work]))
        elif action == "move" and uids:
            target = rnd.choice([f for f in mail_folders if f != folder])
            st.move_items(folder, str(rnd.choice(uids)), target)
        elif action == "move_out" and uids:
            st.move_items(folder, str(rnd.choice(uids)), other_inbox)
        elif action == "delete" and uids:
            st.delete_items(folder, ",".join(str(u) for u in rnd.sample(uids, max(1, len(uids) // 2))))
        elif action == "event":
            save_event(st, calendar, f"e{rnd.randint(1, 5)}", "x" * rnd.randint(1, 400))
        elif action == "batch":
            text = ical(f"b{step}")
            st.save_calendar_items(calendar, [CalendarSave(f"b{step}", st.blobs.put_bytes(text.encode()),
                                                           len(text.encode()), calendar_columns(text))],
                                   delete_names=[f"e{rnd.randint(1, 5)}"])
        elif action == "empty" and rnd.random() < 0.3:
            st.empty_folder(folder)
        assert counted(st, user["store_id"]) == real_usage(st, user["store_id"]), (step, action)
        assert counted(st, other["store_id"]) == real_usage(st, other["store_id"]), (step, action)
    assert real_usage(st, user["store_id"])[1] > 0
    st.delete_folder(work)  # with its subfolder
    assert counted(st, user["store_id"]) == real_usage(st, user["store_id"])


def test_soft_refuses_own_writes_hard_refuses_delivery(st, quota_user, limits):
    user, named = quota_user
    inbox = named["inbox"]
    limits(soft=5000, hard=9000)
    st.create_messages(inbox, [message(st, 4000)])
    with pytest.raises(Quota):
        st.create_messages(inbox, [message(st, 2000)])
    assert counted(st, user["store_id"]) == real_usage(st, user["store_id"]) == (4000, 1)
    uid = st.query_items(inbox, ["uid"])[1]["uid"][0]
    with pytest.raises(Quota):
        st.copy_items(inbox, str(uid), named["sent"])
    # Above soft, mail still arrives; above hard it does not (and is not recorded as delivered).
    outcomes, _ = st.deliver(message(st, 3000), [DeliveryTarget(user["name"], message_id="<d1@x>")], 3600)
    assert [o.status for o in outcomes] == ["stored"]
    outcomes, _ = st.deliver(message(st, 3000), [DeliveryTarget(user["name"], message_id="<d2@x>")], 3600)
    assert [o.status for o in outcomes] == ["quota"]
    assert counted(st, user["store_id"]) == real_usage(st, user["store_id"]) == (7000, 2)
    # A move within the store adds nothing: it goes through over quota.
    st.move_items(inbox, str(uid), named["sent"])
    # Deleting always works, and makes room again.
    st.delete_items(named["sent"], "1:*")
    assert counted(st, user["store_id"]) == (3000, 1)
    outcomes, _ = st.deliver(message(st, 3000), [DeliveryTarget(user["name"], message_id="<d2@x>")], 3600)
    assert [o.status for o in outcomes] == ["stored"]


def test_one_recipient_over_quota_does_not_stop_the_others(st, quota_user, limits):
    user, _ = quota_user
    roomy = st.create_user("r" + secrets.token_hex(4), "hash")
    st.set_user_quota(roomy["name"], quota_hard=0)
    limits(hard=1500)
    outcomes, _ = st.deliver(message(st, 1000), [DeliveryTarget(user["name"]), DeliveryTarget(roomy["name"])], 0)
    assert [o.status for o in outcomes] == ["stored", "stored"]
    outcomes, _ = st.deliver(message(st, 1000), [DeliveryTarget(user["name"]), DeliveryTarget(roomy["name"])], 0)
    assert [o.status for o in outcomes] == ["quota", "stored"]
    assert counted(st, roomy["store_id"]) == real_usage(st, roomy["store_id"]) == (2000, 2)


def test_user_limits_replace_the_servers_and_calendar_writes_are_checked(st, quota_user, limits):
    user, _ = quota_user
    calendar = st.create_folder(user["store_id"], None, "cal", "calendar")["id"]
    limits(hard=100_000)
    st.set_user_quota(user["name"], quota_soft=300)  # one event of about 220 bytes fits, two do not
    assert st.store_usage(user["store_id"]).limits == QuotaLimits(0, 300, 100_000, 0)
    save_event(st, calendar, "a")
    with pytest.raises(Quota):
        save_event(st, calendar, "b")
    # A replacement that does not grow the object goes through; one that grows it does not.
    save_event(st, calendar, "a", "short")
    with pytest.raises(Quota):
        save_event(st, calendar, "a", "x" * 300)
    st.set_user_quota(user["name"], quota_soft=None, quota_messages=1)
    with pytest.raises(Quota):
        save_event(st, calendar, "b")
    assert counted(st, user["store_id"]) == real_usage(st, user["store_id"])


def test_warning_once_per_crossing(st, quota_user, limits):
    user, named = quota_user
    inbox = named["inbox"]
    limits(warn=3000)

    def warnings() -> int:
        subjects = st.query_items(inbox, ["subject"])[1]["subject"]
        return sum(1 for s in subjects if s == "Your mailbox is almost full")

    st.create_messages(inbox, [message(st, 2000)])
    assert warnings() == 0
    st.create_messages(inbox, [message(st, 2000)])
    assert warnings() == 1
    st.create_messages(inbox, [message(st, 2000)])
    st.deliver(message(st, 1000), [DeliveryTarget(user["name"])], 0)
    assert warnings() == 1  # still above: no second warning
    # The warning is counted like any message.
    assert counted(st, user["store_id"]) == real_usage(st, user["store_id"])
    st.delete_items(inbox, "1:*")
    assert st.store_usage(user["store_id"]).warned is False
    st.create_messages(inbox, [message(st, 4000)])
    assert warnings() == 1  # the first was deleted above; this is the second crossing's
    assert counted(st, user["store_id"]) == real_usage(st, user["store_id"])


def test_report_lists_every_user(st, quota_user, limits):
    user, named = quota_user
    limits(soft=1000)
    st.create_messages(named["inbox"], [message(st, 900)])
    report = {u.user: u for u in st.all_store_usage()}
    assert report[user["name"]].used_bytes == 900
    assert report[user["name"]].level() is None
    st.set_user_quota(user["name"], quota_warn=500)
    assert st.store_usage(user["store_id"]).level() == "warn"


def test_migration_0019_fills_in_the_counters(st, tmp_path):
    def run(old, conn, store_id):
        for name in ("Old", "Older"):
            conn.execute(text("INSERT INTO folders (store_id, name, container_class, uidvalidity, uidnext, "
                              "highestmodseq, tombstone_floor) VALUES (:s, :n, 'mail', 1, 3, 1, 0)"),
                         {"s": store_id, "n": name})
        folder_ids = conn.execute(text("SELECT id FROM folders WHERE store_id = :s"), {"s": store_id}).scalars().all()
        for folder_id in folder_ids:
            for uid, size in ((1, 700), (2, 300)):
                conn.execute(text("INSERT INTO items (folder_id, uid, modseq, size, flags, keywords, internalDate, "
                                  "recurring, itemClass, blob_key) VALUES (:f, :u, 1, :z, 0, '', 0, 0, 'IPM.Note', "
                                  "'00000000deadbeef')"), {"f": folder_id, "u": uid, "z": size})

        def checks():
            assert counted(old, store_id) == real_usage(old, store_id) == (2000, 4)
            assert old.store_usage(store_id).limits == QuotaLimits()  # the users' levels: the server's
        return checks

    on_an_old_schema(st, tmp_path, "0018", run)


def test_moves_into_another_store_and_delivery_batches_are_checked(st, quota_user, limits):
    user, named = quota_user
    full = st.create_user("f" + secrets.token_hex(4), "hash")
    full_inbox = next(f["id"] for f in st.list_folders(full["store_id"]) if f["role"] == "inbox")
    st.set_user_quota(full["name"], quota_soft=1500, quota_hard=2500)
    st.create_messages(named["inbox"], [message(st, 1000), message(st, 1000)])
    st.move_items(named["inbox"], "1", full_inbox)
    with pytest.raises(Quota):  # a move adds to the other store: checked there
        st.move_items(named["inbox"], "2", full_inbox)
    assert counted(st, user["store_id"]) == real_usage(st, user["store_id"]) == (1000, 1)
    assert counted(st, full["store_id"]) == real_usage(st, full["store_id"]) == (1000, 1)
    # A group commit of several messages: each copy is checked as the batch grows the store.
    answers = st.deliver_many([(message(st, 1000), [DeliveryTarget(full["name"])]),
                               (message(st, 1000), [DeliveryTarget(full["name"])])], 0)
    assert [[o.status for o in outcomes] for outcomes, _ in answers] == [["stored"], ["quota"]]
    assert counted(st, full["store_id"]) == real_usage(st, full["store_id"]) == (2000, 2)


def test_server_options_are_the_default_levels(tmp_path):
    from server.service import open_storage
    from shared.config import Config

    storage = open_storage(Config({"quota_warn": "900M", "quota_soft": "1G", "quota_hard": "1200M",
                                   "quota_messages": "5000"}, str(tmp_path)))
    try:
        assert storage.quota_defaults == QuotaLimits(900 << 20, 1 << 30, 1200 << 20, 5000)
        user = storage.create_user("levels", "hash")
        assert storage.store_usage(user["store_id"]).limits == storage.quota_defaults
    finally:
        storage.close()
