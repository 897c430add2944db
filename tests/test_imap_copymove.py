"""COPY, MOVE, UID COPY and UID MOVE against a real `groupware serve`: COPYUID, EXPUNGE and
VANISHED for moved messages, TRYCREATE, read-only mailboxes, one bulk store call."""
from __future__ import annotations

import re

import pytest

from imap_env import Env

pytestmark = pytest.mark.gateway_env("imap")


def listing(env: Env, folder):
    _, table = env.rt.call(folder.query, ["uid", "modseq", "flags", "keywords", "size"], None, [("uid", False)])
    return table


def copyuid(line: bytes) -> tuple[int, list[int], list[int]]:
    match = re.search(rb"\[COPYUID (\d+) ([\d:,]+) ([\d:,]+)\]", line)
    assert match, line

    def numbers(text: bytes) -> list[int]:
        out = []
        for part in text.split(b","):
            lo, _, hi = part.partition(b":")
            out.extend(range(int(lo), int(hi or lo) + 1))
        return out
    return int(match.group(1)), numbers(match.group(2)), numbers(match.group(3))


def test_copy_with_copyuid(env):
    source = env.fresh("CopySource", 5, flags=("\\Seen",))
    target = env.fresh("CopyTarget", 1)
    raw = env.raw(login=True)
    raw.cmd("SELECT CopySource")
    uids = listing(env, source)["uid"]
    lines = raw.cmd("COPY 2:3,5 CopyTarget")
    assert lines[-1].startswith(b"r3 OK [COPYUID ")
    validity, src, dst = copyuid(lines[-1])
    assert validity == target.uid_validity
    assert src == [uids[1], uids[2], uids[4]]
    after = listing(env, target)
    assert after["uid"][1:] == dst
    assert len(set(after["modseq"][1:])) == 1  # one store call, one transaction
    assert after["flags"][1:] == [listing(env, source)["flags"][0]] * 3
    # The copies are the same bytes.
    for s, d in zip(src, dst):
        assert env.rt.call(source.message, s, ["size"]).size == env.rt.call(target.message, d, ["size"]).size
    lines = raw.cmd(f"UID COPY {uids[0]},{uids[3]} CopyTarget")
    _, src, _ = copyuid(lines[-1])
    assert src == [uids[0], uids[3]]
    assert raw.cmd("UID COPY 999999 CopyTarget")[-1] == b"r5 OK UID COPY completed\r\n"
    assert raw.cmd("COPY 9 CopyTarget")[-1].startswith(b"r6 BAD")
    assert raw.cmd("COPY 1 NoSuchBox")[-1].startswith(b"r7 NO [TRYCREATE]")
    raw.close()


def test_copy_into_the_selected_mailbox(env):
    env.fresh("SelfCopy", 2)
    raw = env.raw(login=True)
    raw.cmd("SELECT SelfCopy")
    lines = raw.cmd("COPY 1:2 SelfCopy")
    assert b"* 4 EXISTS\r\n" in lines and lines[-1].startswith(b"r3 OK [COPYUID")
    raw.close()


def test_move_sends_copyuid_and_expunges(env):
    source = env.fresh("MoveSource", 6)
    target = env.fresh("MoveTarget")
    raw = env.raw(login=True)
    raw.cmd("SELECT MoveSource")
    uids = listing(env, source)["uid"]
    lines = raw.cmd("MOVE 2,4:5 MoveTarget")
    assert lines[0].startswith(b"* OK [COPYUID ")
    validity, src, dst = copyuid(lines[0])
    assert validity == target.uid_validity and src == [uids[1], uids[3], uids[4]]
    # Highest first, so every number is still right when the client reads it.
    assert lines[1:-1] == [b"* 5 EXPUNGE\r\n", b"* 4 EXPUNGE\r\n", b"* 2 EXPUNGE\r\n"]
    assert lines[-1] == b"r3 OK MOVE completed\r\n"
    assert listing(env, source)["uid"] == [uids[0], uids[2], uids[5]]
    assert listing(env, target)["uid"] == dst
    # Sequence numbers moved on: message 3 is now the last one.
    lines = raw.cmd("UID MOVE %d MoveTarget" % uids[5])
    assert lines[1] == b"* 3 EXPUNGE\r\n"
    assert b"CAPABILITY" not in lines[0] and raw.cmd("NOOP")[-1].startswith(b"r5 OK")
    assert b"MOVE" in raw.cmd("CAPABILITY")[0].split()
    raw.close()


def test_uid_move_with_qresync_sends_vanished(env):
    source = env.fresh("QMoveSource", 4)
    env.fresh("QMoveTarget")
    uids = listing(env, source)["uid"]
    raw = env.raw(login=True)
    enabled = raw.cmd("ENABLE QRESYNC")
    assert b"QRESYNC" in enabled[0], enabled
    raw.cmd("SELECT QMoveSource")
    lines = raw.cmd("UID MOVE %d:%d QMoveTarget" % (uids[1], uids[2]))
    assert lines[0].startswith(b"* OK [COPYUID")
    assert lines[1] == b"* VANISHED %d:%d\r\n" % (uids[1], uids[2])
    assert lines[-1].startswith(b"r4 OK")
    raw.close()


def test_move_errors(env):
    env.fresh("MoveRO", 2)
    raw = env.raw(login=True)
    raw.cmd("EXAMINE MoveRO")
    assert raw.cmd("MOVE 1 INBOX")[-1].startswith(b"r3 NO [READ-ONLY]")
    assert raw.cmd("COPY 1 INBOX")[-1].startswith(b"r4 OK [COPYUID")
    raw.cmd("SELECT MoveRO")
    assert raw.cmd("MOVE 1 Nowhere")[-1].startswith(b"r6 NO [TRYCREATE]")
    assert raw.cmd("MOVE 1:* MoveRO")[-1].startswith(b"r7 OK")  # into itself: new uids
    assert raw.cmd("NOOP")[-1].startswith(b"r8 OK")
    raw.close()


def test_bulk_move_is_one_store_call(env):
    source = env.fresh("BulkSource", 1000)
    target = env.fresh("BulkTarget")
    raw = env.raw(login=True)
    raw.cmd("SELECT BulkSource")
    lines = raw.cmd("MOVE 1:* BulkTarget")
    assert lines[-1].startswith(b"r3 OK")
    assert len([x for x in lines if x.endswith(b" EXPUNGE\r\n")]) == 1000
    after = listing(env, target)
    assert len(after["uid"]) == 1000 and len(set(after["modseq"])) == 1
    assert listing(env, source)["uid"] == []
    raw.close()
