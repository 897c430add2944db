"""The sort and thread columns in the store: made when a message is stored, sorted by the
engine as i;unicode-casemap orders them (octet order of the keys), read from an index
in order on SQLite, and filled in by migration 0016 for messages stored before."""
from __future__ import annotations

import io
import json

import pytest
import sqlalchemy as sa
from sqlalchemy import text

from old_schema import on_an_old_schema
from query_plans import planned
from server.blobs import FileBlobStore
from server.mime import message_columns
from server.storage import NewMessage, Storage
from server.mime.sort_keys import casemap

pytestmark = pytest.mark.database_engines("sqlite", "mariadb")

MESSAGES = [
    "From: Zoë <zoe@x.org>\nSubject: Re: Äpfel\nDate: Mon, 1 Jan 2024 10:00:00 +0100\nMessage-ID: <a@x>",
    "From: adam@x.org\nSubject: apfel\nDate: Mon, 1 Jan 2024 08:00:00 +0000\nReferences: <a@x>",
    "From: =?utf-8?q?=C3=84rger?= <Aerger@x.org>\nSubject: [list] Zebra\nDate: not a date",
    "From: bob@x.org\nSubject: a\u0308pfel\nDate: Sun, 31 Dec 2023 12:00:00 -1200",
    "Subject: zebra (fwd)",
]


def store(st, folder_id: int) -> list[int]:
    news = []
    for i, headers in enumerate(MESSAGES):
        source = (headers + "\n\nbody\n").replace("\n", "\r\n").encode()
        news.append(NewMessage(st.blobs.put_bytes(source), len(source), 1000 + i, 0, (),
                               message_columns(io.BytesIO(source))))
    return st.create_messages(folder_id, news)["uids"]


def folder_of(st, name: str) -> int:
    user = st.create_user(name + "-" + st.backend, "hash")
    return st.create_folder(user["store_id"], None, "Sorting", "mail")["id"]


def sorted_uids(st, folder_id: int, *sort: tuple[str, bool]) -> list[int]:
    return st.query_items(folder_id, ["uid"], None, list(sort))[1]["uid"]


def test_sort_by_each_key(st):
    folder = folder_of(st, "sorter")
    uids = store(st, folder)
    first = uids[0] - 1
    by = lambda *sort: [u - first for u in sorted_uids(st, folder, *sort)]  # noqa: E731
    # APFEL, then Äpfel == a\u0308pfel (casemap: case and composition, not accents), ties by uid; ZEBRA.
    assert by(("sortSubject", False)) == [2, 1, 4, 3, 5]
    assert by(("sortSubject", True)) == [3, 5, 1, 4, 2]
    # "" (no From), then ADAM, AERGER, BOB, ZOE
    assert by(("sortFrom", False)) == [5, 2, 3, 4, 1]
    assert by(("displayFrom", False)) == [5, 2, 3, 4, 1]      # "", ADAM@X.ORG, A\u0308RGER, BOB@X.ORG, ZOE\u0308
    # UTC: 4 is Dec 31 24:00, 1 is 09:00 and 2 08:00 on Jan 1; 3 and 5 have no date: internal date 1002, 1004
    assert by(("sentDate", False)) == [3, 5, 4, 2, 1]
    assert by(("internalDate", True)) == [5, 4, 3, 2, 1]
    row = st.get_item(folder, uids[0], ["sortSubject", "subjectReply", "threadMessageId", "displayFrom"])
    assert (row["sortSubject"], row["subjectReply"], row["threadMessageId"]) == (casemap("Äpfel"), 1, "a@x")
    assert st.get_item(folder, uids[1], ["threadParents"])["threadParents"] == "a@x"


def test_a_sort_reads_the_index_in_order(tmp_path):
    """On SQLite (the engine whose plan we can read the same way everywhere): no sort step."""
    st = Storage("sqlite:///" + str(tmp_path / "store.db"), FileBlobStore(str(tmp_path / "blobs"), fsync=False))
    st.migrate()
    try:
        st.backend = "sqlite"
        folder = folder_of(st, "planner")
        store(st, folder)
        for column in ("sentDate", "internalDate", "sortSubject", "sortFrom"):
            _, plans = planned(st, lambda: st.query_items(folder, ["uid"], None, [(column, False)]))
            lines = [line for _, plan in plans for line in plan]
            assert not any("TEMP B-TREE" in line for line in lines), (column, lines)
    finally:
        st.close()


def test_migration_0016_fills_in_the_keys_of_stored_messages(st, tmp_path):
    envelope = {"date": "Tue, 2 Jan 2024 08:00:00 +0100", "subject": "=?utf-8?q?Fwd=3A_=C3=84pfel?=",
                "from": [["=?utf-8?q?Zo=C3=AB?=", None, "zoe", "x.org"]], "sender": None, "replyTo": None,
                "to": [[None, None, "team", "x.org"]], "cc": None, "bcc": None,
                "inReplyTo": "<parent@x>", "messageId": "<own@x>"}

    def run(old, conn, store_id):
        conn.execute(text("INSERT INTO folders (store_id, name, container_class, uidvalidity, uidnext, "
                          "highestmodseq, tombstone_floor) VALUES (:s, 'Old', 'mail', 1, 3, 1, 0)"), {"s": store_id})
        folder = conn.execute(text("SELECT max(id) FROM folders")).scalar()
        # The items table as revision 0015 has it: only the columns named here.
        items = sa.table("items", *(sa.column(n) for n in (
            "folder_id", "uid", "modseq", "size", "flags", "keywords", "internalDate", "recurring",
            "itemClass", "envelope", "blob_key")))
        for uid, env in ((1, envelope), (2, {"date": None, "subject": None})):
            conn.execute(sa.insert(items).values(folder_id=folder, uid=uid, modseq=1, size=10, flags=0, keywords="",
                                                 internalDate=5000 + uid, recurring=0, itemClass="IPM.Note",
                                                 envelope=json.dumps(env), blob_key="k"))

        def checks():
            columns = ["sortSubject", "subjectReply", "sortFrom", "sortTo", "displayFrom", "sentDate",
                       "threadMessageId", "threadParents"]
            _, table = old.query_items(folder, columns, None, [("uid", False)])
            assert [table[c][0] for c in columns] == [casemap("Äpfel"), 1, "ZOE", "TEAM", casemap("Zoë"),
                                                      1704178800, "own@x", "parent@x"]
            assert [table[c][1] for c in columns] == ["", 0, "", "", "", 5002, "", ""]
        return checks
    on_an_old_schema(st, tmp_path, "0015", run)
