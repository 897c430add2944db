"""OBJECTID (RFC 8474: MAILBOXID, EMAILID, THREADID), SAVEDATE (RFC 8514) and PREVIEW
(RFC 8970) against a real `groupware serve`, following the RFCs' examples; and the migration
that gives stored messages a save date and an EMAILID."""
from __future__ import annotations

import datetime
import re
import time

import pytest
from sqlalchemy import text

from old_schema import on_an_old_schema

pytestmark = [pytest.mark.gateway_env("imap"), pytest.mark.database_engines("sqlite", "mariadb")]

MESSAGE = (b"From: Fred Foobar <foobar@example.com>\r\nSubject: afternoon meeting\r\n"
           b"To: mooch@example.com\r\nMessage-Id: <objectid@example.com>\r\n\r\nHello Joe\r\n")
OBJECTID = rb"[A-Za-z0-9_-]{1,255}"


def mailbox_id(line: bytes) -> bytes:
    match = re.search(rb"MAILBOXID \((" + OBJECTID + rb")\)", line)
    assert match, line
    return match.group(1)


def fetched(raw, command: str, item: bytes) -> list[bytes]:
    return re.findall(item + rb" (\(" + OBJECTID + rb"\)|NIL|\"[^\"]*\")", b"".join(raw.cmd(command)))


def test_mailboxid_rfc8474_example(env):
    raw = env.raw(login=True)
    for name in ("foo", "bar", "renamed"):
        raw.cmd(f"DELETE {name}")
    assert b"OBJECTID" in raw.cmd("CAPABILITY")[0].split()
    foo = mailbox_id(raw.cmd("create foo")[-1])
    bar = mailbox_id(raw.cmd("create bar")[-1])
    assert foo != bar
    assert raw.cmd("create foo")[-1].split()[1] == b"NO"
    assert raw.cmd("rename foo renamed")[-1].split()[1] == b"OK"
    assert mailbox_id(raw.cmd("status renamed (mailboxid)")[0]) == foo
    assert mailbox_id(raw.cmd("status bar (mailboxid)")[0]) == bar
    selected = raw.cmd("SELECT renamed")
    assert any(line.startswith(b"* OK [MAILBOXID (" + foo + b")]") for line in selected), selected
    raw.cmd("UNSELECT")
    # A mailbox made again under a deleted one's name is another mailbox.
    assert raw.cmd("delete bar")[-1].split()[1] == b"OK"
    assert mailbox_id(raw.cmd("create bar")[-1]) not in (foo, bar)
    # Among other STATUS items, and in LIST-STATUS.
    line = raw.cmd("STATUS renamed (MESSAGES MAILBOXID UIDNEXT)")[0]
    assert re.match(rb"\* STATUS renamed \(MESSAGES 0 MAILBOXID \(" + foo + rb"\) UIDNEXT 1\)", line), line
    assert b"MAILBOXID (" + foo + b")" in b"".join(raw.cmd('LIST "" renamed RETURN (STATUS (MAILBOXID))'))
    raw.close()


def test_emailid_is_kept_by_copy_and_move_threadid_is_nil(env):
    env.fresh("Ids")
    env.fresh("IdsCopy")
    env.fresh("IdsMoved")
    raw = env.raw(login=True)
    raw.send(b'5 append Ids "20-Mar-2018 03:07:37 +1100" {%d+}\r\n' % len(MESSAGE) + MESSAGE + b"\r\n")
    assert raw.until(b"5")[-1].startswith(b"5 OK")
    raw.send(b"6 append Ids {%d+}\r\n" % len(MESSAGE) + MESSAGE + b"\r\n")
    assert raw.until(b"6")[-1].startswith(b"6 OK")
    raw.cmd("SELECT Ids")
    ids = fetched(raw, "FETCH 1:2 (EMAILID THREADID)", b"EMAILID")
    assert len(ids) == 2 and ids[0] != ids[1], ids  # the same bytes stored twice: two messages
    assert fetched(raw, "FETCH 1 (THREADID)", b"THREADID") == [b"NIL"]
    assert fetched(raw, "UID FETCH 1:* EMAILID", b"EMAILID") == ids
    assert raw.cmd("COPY 1 IdsCopy")[-1].split()[1] == b"OK"
    assert raw.cmd("MOVE 2 IdsMoved")[-1].split()[1] == b"OK"
    raw.cmd("SELECT IdsCopy")
    assert fetched(raw, "FETCH 1 (EMAILID)", b"EMAILID") == ids[:1]
    raw.cmd("SELECT IdsMoved")
    assert fetched(raw, "FETCH 1 (EMAILID)", b"EMAILID") == ids[1:]
    raw.close()


def test_savedate_rfc8514(env):
    env.fresh("Saved")
    env.fresh("SavedCopy")
    raw = env.raw(login=True)
    assert b"SAVEDATE" in raw.cmd("CAPABILITY")[0].split()
    before = time.time()
    raw.send(b'a APPEND Saved "01-Feb-2000 00:00:00 -0500" {%d+}\r\n' % len(MESSAGE) + MESSAGE + b"\r\n")
    assert raw.until(b"a")[-1].startswith(b"a OK")
    raw.cmd("SELECT Saved")
    line = b"".join(raw.cmd("FETCH 1 (INTERNALDATE SAVEDATE)"))
    internal, saved = re.findall(rb'(?:INTERNALDATE|SAVEDATE) "([^"]+)"', line)
    assert internal == b" 1-Feb-2000 05:00:00 +0000" or internal.startswith(b" 1-Feb-2000")
    saved_at = datetime.datetime.strptime(saved.decode().strip(), "%d-%b-%Y %H:%M:%S %z").timestamp()
    assert before - 2 <= saved_at <= time.time() + 2
    today = datetime.datetime.fromtimestamp(saved_at, datetime.timezone.utc).strftime("%d-%b-%Y")
    assert raw.cmd(f"SEARCH SAVEDSINCE {today}")[0] == b"* SEARCH 1\r\n"
    assert raw.cmd(f"SEARCH SAVEDON {today}")[0] == b"* SEARCH 1\r\n"
    assert raw.cmd(f"SEARCH SAVEDBEFORE {today}")[0] == b"* SEARCH\r\n"
    assert raw.cmd(f"SEARCH SINCE {today}")[0] == b"* SEARCH\r\n"  # the internal date is old
    assert raw.cmd("SEARCH SAVEDATESUPPORTED")[0] == b"* SEARCH 1\r\n"
    assert raw.cmd("SEARCH NOT SAVEDATESUPPORTED")[0] == b"* SEARCH\r\n"
    # A copy is saved anew.
    time.sleep(1.1)
    raw.cmd("COPY 1 SavedCopy")
    raw.cmd("SELECT SavedCopy")
    copied = re.search(rb'SAVEDATE "([^"]+)"', b"".join(raw.cmd("FETCH 1 SAVEDATE"))).group(1)
    copied_at = datetime.datetime.strptime(copied.decode().strip(), "%d-%b-%Y %H:%M:%S %z").timestamp()
    assert copied_at > saved_at
    raw.close()


def test_preview_rfc8970(env):
    env.fresh("Previews")
    raw = env.raw(login=True)
    assert b"PREVIEW" in raw.cmd("CAPABILITY")[0].split()
    messages = [
        b"Subject: plain\r\n\r\nHello Joe,\r\n\r\n  do you think we can meet at 3:30 tomorrow?\r\n",
        (b"Subject: html\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
         b"--b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
         b"<html><head><style>p {color: red}</style></head><body><p>Gr=C3=BC=C3=9Fe &amp; <b>bye</b></p></body></html>\r\n"
         b"--b--\r\n"),
        b"Subject: long\r\n\r\n" + b"word " * 500 + b"\r\n",
        b"Subject: picture\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n",
    ]
    for message in messages:
        append_one(raw, b"Previews", message)
    raw.cmd("SELECT Previews")
    lines = raw.cmd("FETCH 1:4 (PREVIEW)")
    assert lines[0] == b'* 1 FETCH (PREVIEW "Hello Joe, do you think we can meet at 3:30 tomorrow?")\r\n'
    # 8-bit text travels as a literal.
    text = b"".join(lines)
    assert b"* 2 FETCH (PREVIEW {13}\r\nGr\xc3\xbc\xc3\x9fe & bye)" in text, text
    long_preview = re.search(rb'\* 3 FETCH \(PREVIEW "([^"]*)"\)', text).group(1)
    assert long_preview == (b"word " * 40).strip()
    assert b'* 4 FETCH (PREVIEW "")' in text  # no text to show
    assert lines[-1].split()[1] == b"OK"
    # LAZY: the same, as the preview is always at hand; with other items and UID FETCH.
    assert raw.cmd("FETCH 1 (PREVIEW (LAZY))")[0] == lines[0]
    assert raw.cmd("UID FETCH 1 (FLAGS PREVIEW (LAZY) UID)")[0].startswith(b'* 1 FETCH (FLAGS (')
    assert raw.cmd("FETCH 1 PREVIEW")[0] == lines[0]
    raw.close()


def append_one(raw, mailbox: bytes, message: bytes) -> None:
    raw.send(b"a APPEND %s {%d+}\r\n" % (mailbox, len(message)) + message + b"\r\n")
    assert raw.until(b"a")[-1].startswith(b"a OK")


def test_migration_0018_gives_stored_messages_a_save_date_and_an_emailid(st, tmp_path):
    def run(old, conn, store_id):
        conn.execute(text("INSERT INTO folders (store_id, name, container_class, uidvalidity, uidnext, "
                          "highestmodseq, tombstone_floor) VALUES (:s, 'Old', 'mail', 1, 3, 1, 0)"), {"s": store_id})
        folder_id = conn.execute(text("SELECT id FROM folders WHERE name = 'Old' AND store_id = :s"),
                                 {"s": store_id}).scalar()
        for uid in (1, 2):
            conn.execute(text("INSERT INTO items (folder_id, uid, modseq, size, flags, keywords, internalDate, "
                              "recurring, itemClass, blob_key) VALUES (:f, :u, 1, 10, 0, '', :d, 0, 'IPM.Note', "
                              "'00000000deadbeef')"), {"f": folder_id, "u": uid, "d": 949381200 + uid})

        def checks():
            rows = [old.get_item(folder_id, uid, ["savedDate", "emailId"]) for uid in (1, 2)]
            assert [r["savedDate"] for r in rows] == [949381201, 949381202]
            assert [r["emailId"] for r in rows] == [f"L{folder_id}-1", f"L{folder_id}-2"]
        return checks

    on_an_old_schema(st, tmp_path, "0015", run)
