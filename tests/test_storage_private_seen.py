"""Per-user \\Seen in the storage layer (server/storage/private_seen.py): a reader who does
not own the folder's store keeps a \\Seen of their own, on SQLite and MariaDB."""
from __future__ import annotations

import secrets

import pytest

from server.storage import NewMessage
from server.storage.private_seen import subtract
from shared.flags import FLAGGED, SEEN

pytestmark = pytest.mark.database_engines("sqlite", "mariadb")


@pytest.fixture
def team(st):
    """alice's folder "Team" with 5 messages (1 and 2 seen by alice), and bob, a reader."""
    suffix = secrets.token_hex(4)
    alice = st.create_user("alice-" + suffix, "x")
    bob = st.create_user("bob-" + suffix, "x")
    folder = st.create_folder(alice["store_id"], None, "Team")["id"]
    for i in range(5):
        st.create_message(folder, "k%d" % i, 10, 0, SEEN if i < 2 else 0)
    return alice["id"], bob["id"], folder


def flags_of(st, folder: int, reader: int | None) -> list[int]:
    return st.query_items(folder, ["flags"], reader=reader)[1]["flags"]


def unseen_of(st, folder: int, reader: int) -> int:
    rows = [f for f in st.list_folders(st.get_folder(folder)["store_id"]) if f["id"] == folder]
    st.count_private_unseen(reader, rows)
    return rows[0]["unseen"]


def test_whose_seen_a_call_reads(st, team):
    alice, bob, folder = team
    assert st.seen_reader(alice, folder) is None
    assert st.seen_reader(bob, folder) == bob
    public = st.create_folder(st.public_store_id(), None, "Office-" + secrets.token_hex(4))["id"]
    assert st.seen_reader(alice, public) == alice  # in the public store \Seen is everyone's own


def test_a_reader_marks_read_for_themselves_only(st, team):
    alice, bob, folder = team
    assert [f & SEEN for f in flags_of(st, folder, bob)] == [0] * 5
    result = st.set_flags(folder, "3:4", "add", SEEN | FLAGGED, reader=bob)
    assert [(uid, flags) for uid, _, flags, _ in result["changed"]] == [(3, SEEN | FLAGGED), (4, SEEN | FLAGGED)]
    assert flags_of(st, folder, bob) == [0, 0, SEEN | FLAGGED, SEEN | FLAGGED, 0]
    # The owner keeps their own \Seen and sees the shared \Flagged.
    assert flags_of(st, folder, None) == [SEEN, SEEN, FLAGGED, FLAGGED, 0]
    assert unseen_of(st, folder, bob) == 3
    # A \Seen-only change moves the rows' modseq, so the reader's other sessions hear of it.
    before = st.get_changes(folder, 0)["highestmodseq"]
    result = st.set_flags(folder, "5", "add", SEEN, reader=bob)
    assert result["modseq"] > before and [c[0] for c in result["changed"]] == [5]
    changes = st.get_changes(folder, before, reader=bob)
    assert changes["changed"]["uid"] == [5] and changes["changed"]["flags"] == [SEEN]
    assert st.get_changes(folder, before)["changed"]["flags"] == [0]  # the owner's view
    assert st.get_item(folder, 5, ["flags"], reader=bob)["flags"] == SEEN
    # Setting again changes nothing.
    assert st.set_flags(folder, "5", "add", SEEN, reader=bob)["changed"] == []


def test_remove_and_replace_keep_the_owners_seen(st, team):
    alice, bob, folder = team
    st.set_flags(folder, "1:5", "add", SEEN, reader=bob)
    st.set_flags(folder, "2", "remove", SEEN, reader=bob)
    assert [f & SEEN for f in flags_of(st, folder, bob)] == [SEEN, 0, SEEN, SEEN, SEEN]
    st.set_flags(folder, "1:3", "replace", FLAGGED, reader=bob)
    assert flags_of(st, folder, bob) == [FLAGGED, FLAGGED, FLAGGED, SEEN, SEEN]
    assert flags_of(st, folder, None) == [SEEN | FLAGGED, SEEN | FLAGGED, FLAGGED, 0, 0]
    assert unseen_of(st, folder, bob) == 3


def test_expunged_messages_leave_the_readers_sets(st, team):
    alice, bob, folder = team
    st.set_flags(folder, "1:4", "add", SEEN, reader=bob)
    st.delete_items(folder, "2:3")
    assert unseen_of(st, folder, bob) == 1  # 1 and 4 seen, 5 not
    assert flags_of(st, folder, bob) == [SEEN, SEEN, 0]
    st.empty_folder(folder)
    assert unseen_of(st, folder, bob) == 0
    st.create_message(folder, "k9", 10, 0)
    assert flags_of(st, folder, bob) == [0]


def test_a_reader_storing_a_read_message_keeps_it_read_for_themselves(st, team):
    alice, bob, folder = team
    uids = st.create_messages(folder, [NewMessage("n1", 10, flags=SEEN | FLAGGED), NewMessage("n2", 10)],
                              reader=bob)["uids"]
    assert flags_of(st, folder, bob)[-2:] == [SEEN | FLAGGED, 0]
    assert flags_of(st, folder, None)[-2:] == [FLAGGED, 0]
    assert uids == [6, 7] and unseen_of(st, folder, bob) == 6


def test_subtract_keeps_ranges():
    assert subtract([(1, 10), (20, 20)], [1, 5, 6, 10, 20, 30]) == [(2, 4), (7, 9)]
    assert subtract([(1, 3)], []) == [(1, 3)]
