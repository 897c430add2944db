"""The blob directory's disk fills up (a 2 MB tmpfs mounted under `attachment_path`).

Writes are refused with each protocol's own answer for a full disk: IMAP APPEND `NO
[OVERQUOTA]` (Dovecot's answer to ENOSPC), LMTP `452 4.3.1` (insufficient system storage, the
MTA tries again) and CalDAV PUT `507 Insufficient Storage`, on small messages sent inline and
on large ones that go through the upload channel. Nothing is left half-written (no temporary
blob files, counts unchanged, every earlier message byte for byte as it was), the connections
stay usable, and once space is freed the same connections store again.
"""
from __future__ import annotations

import glob
import imaplib
import os
import re
import smtplib

import pytest
import requests

from harness import ServerProcess
from outages import fill, tmpfs
from waiting import scaled

SMALL = (b"From: a@example.net\r\nTo: demo@localhost\r\nSubject: small %d\r\n"
         b"Message-ID: <small-%d@example.net>\r\n\r\nsmall body %d\r\n")


def big(n: int, size: int = 1200 * 1024) -> bytes:
    """A message above the inline limit's fraction the IMAP gateway spools (and above 1 MB,
    so it reaches the store through the upload channel)."""
    head = (b"From: a@example.net\r\nTo: demo@localhost\r\nSubject: big %d\r\n"
            b"Message-ID: <big-%d@example.net>\r\n\r\n" % (n, n))
    line = b"%076d\r\n" % n
    return head + line * (size // len(line))


def event(uid: str) -> bytes:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20261201T100000Z\r\n"
            f"DTEND:20261201T110000Z\r\nSUMMARY:{uid}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n").encode()


@pytest.fixture
def server(tmp_path):
    blobs = str(tmp_path / "blobs")
    with tmpfs(blobs, "2m"):
        options = {"attachment_path": blobs, "lmtp_listen": "127.0.0.1:0", "log_level": "warning"}
        with ServerProcess(str(tmp_path / "var"), options, demo=True) as proc:
            yield proc, blobs


def inbox_sources(imap: imaplib.IMAP4) -> dict[int, bytes]:
    typ, data = imap.select("INBOX")
    assert typ == "OK"
    if int(data[0]) == 0:
        return {}
    typ, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[])")
    assert typ == "OK"
    return {int(re.search(rb"UID (\d+)", item[0]).group(1)): item[1] for item in data if isinstance(item, tuple)}


def append(imap: imaplib.IMAP4, source: bytes) -> tuple[str, str]:
    typ, data = imap.append("INBOX", None, None, source)
    return typ, data[-1].decode()


def lmtp(server: ServerProcess, source: bytes) -> tuple[int, bytes]:
    client = smtplib.LMTP("127.0.0.1", server.port("lmtp"), timeout=scaled(60))
    try:
        client.sendmail("a@example.net", ["demo@localhost"], source)
        return 250, b""
    except smtplib.SMTPDataError as exc:
        return exc.smtp_code, exc.smtp_error
    except smtplib.SMTPRecipientsRefused as exc:
        (code, text), = exc.recipients.values()
        return code, text
    finally:
        client.quit()


def temp_blob_files(blobs: str) -> list[str]:
    return glob.glob(os.path.join(blobs, "*", "*", ".tmp-*"))


def test_full_blob_disk_refuses_writes_and_recovers(server):
    proc, blobs = server
    imap = imaplib.IMAP4("127.0.0.1", proc.port("imap"), timeout=scaled(60))
    imap.login("demo", proc.demo_password())
    http = requests.Session()
    http.auth = ("demo", proc.demo_password())
    calendar = f"http://127.0.0.1:{proc.port('ical')}/caldav/demo/Calendar/"

    # Some mail and an event stored while there is room.
    assert append(imap, SMALL % (1, 1, 1))[0] == "OK"
    assert append(imap, big(1, 400 * 1024))[0] == "OK"
    assert lmtp(proc, SMALL % (2, 2, 2))[0] == 250
    assert http.put(calendar + "before.ics", data=event("before"), timeout=scaled(60)).status_code == 201
    before = inbox_sources(imap)
    assert len(before) == 3

    filler = fill(blobs)
    try:
        for source in (SMALL % (3, 3, 3), big(3)):
            typ, text = append(imap, source)
            assert (typ, text[:12]) == ("NO", "[OVERQUOTA] "), text
        code, text = lmtp(proc, SMALL % (4, 4, 4))
        assert (code, text[:5]) == (452, b"4.3.1"), text
        code, text = lmtp(proc, big(4))
        assert (code, text[:5]) == (452, b"4.3.1"), text
        r = http.put(calendar + "during.ics", data=event("during"), timeout=scaled(60))
        assert r.status_code == 507, (r.status_code, r.text)

        # Nothing half-done: no temporary blob files, the same messages byte for byte, and
        # the connection still answers.
        assert not temp_blob_files(blobs)
        assert inbox_sources(imap) == before
        assert http.get(calendar + "during.ics", timeout=scaled(60)).status_code == 404
        assert http.get(calendar + "before.ics", timeout=scaled(60)).status_code == 200
        assert imap.noop()[0] == "OK"
    finally:
        os.unlink(filler)

    # Space again: the same connections store again, no restart.
    typ, text = append(imap, SMALL % (5, 5, 5))
    assert typ == "OK", text
    typ, text = append(imap, big(5))
    assert typ == "OK", text
    assert lmtp(proc, SMALL % (6, 6, 6))[0] == 250
    assert http.put(calendar + "after.ics", data=event("after"), timeout=scaled(60)).status_code == 201
    after = inbox_sources(imap)
    assert {uid: after[uid] for uid in before} == before
    subjects = sorted(re.search(rb"Subject: (\w+ \d+)", s).group(1) for s in after.values())
    assert subjects == [b"big 1", b"big 5", b"small 1", b"small 2", b"small 5", b"small 6"]
    assert not temp_blob_files(blobs)
    imap.logout()
    assert proc.alive()


def test_full_disk_under_sqlite_is_storage_full(tmp_path):
    """The database file's disk full: the storage layer says StorageFull (not an outage, not
    an internal error), the transaction leaves nothing, and writes work once space is freed."""
    from server.blobs import FileBlobStore
    from server.storage import Storage
    from shared.errors import StorageFull

    directory = str(tmp_path / "db")
    with tmpfs(directory, "2m"):
        st = Storage("sqlite:///" + os.path.join(directory, "store.db"), FileBlobStore(directory + "/blobs"))
        try:
            st.migrate()
            user = st.create_user("full", "hash")
            filler = fill(directory)
            names = [f"user-{i}-" + "x" * 200 for i in range(2000)]
            with pytest.raises(StorageFull):
                for name in names:  # grows the database until its disk refuses a page
                    st.create_user(name, "hash" * 100)
            os.unlink(filler)
            assert st.get_user("full")["id"] == user["id"]
            assert st.create_user("after", "hash")["name"] == "after"
        finally:
            st.close()
