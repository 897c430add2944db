"""Encrypted blobs in a running suite: real messages and events stored over IMAP and
CalDAV come back intact, the blob files, blob rows and bucket objects hold none of their
text, and a damaged blob is answered with IMAP's NO, never with its bytes."""
from __future__ import annotations

import base64
import contextlib
import glob
import imaplib
import os
import poplib
import re
import sqlite3
from typing import Any

import icalendar
import pytest
import requests
from debian import email_corpus
from harness import ServerProcess


@pytest.fixture(scope="module", params=["files", "database", "s3"])
def suite(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp("encrypted-" + request.param)
    key_file = directory / "blobs.key"
    key_file.write_bytes(base64.b64encode(os.urandom(32)) + b"\n")
    os.chmod(key_file, 0o600)
    options = {"attachment_storage": request.param, "attachment_encryption_key_file": str(key_file)}
    if request.param == "s3":
        options.update(request.getfixturevalue("s3_options"))
    server = ServerProcess(str(directory / "var"), options, demo=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def imap(server: ServerProcess) -> imaplib.IMAP4:
    m = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=60)
    m.login("demo", server.demo_password())
    return m


def crlf(data: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", data)


def messages() -> list[bytes]:
    """The email package's real-world messages that have a header and a body."""
    found = []
    for path in email_corpus():
        with open(path, "rb") as fp:
            data = crlf(fp.read())
        if b"\r\n\r\n" in data and re.match(rb"[A-Za-z-]+:", data):
            found.append(data)
    assert len(found) > 30
    return found


def telltales(message: bytes) -> list[bytes]:
    """Texts of `message` that must not be readable at rest: its subject, and its
    longest body line."""
    head, _, body = message.partition(b"\r\n\r\n")
    found = []
    subject = re.search(rb"^Subject:[ \t]*(.+?)\r\n", head, re.M | re.I)
    if subject and len(subject.group(1).strip()) >= 8:
        found.append(subject.group(1).strip())
    lines = sorted((line.strip() for line in body.split(b"\r\n")), key=len)
    if lines and len(lines[-1]) >= 16:
        found.append(lines[-1])
    return found


def calendars() -> list[bytes]:
    """The icalendar package's test calendars that hold one event with a UID (one each)."""
    found, uids = [], set()
    pattern = os.path.join(os.path.dirname(icalendar.__file__), "tests", "calendars", "*.ics")
    for path in sorted(glob.glob(pattern)):
        with open(path, "rb") as fp:
            data = fp.read()
        uid = re.search(rb"^UID:(.+?)\r?$", data, re.M)
        if data.count(b"BEGIN:VEVENT") == 1 and uid and uid.group(1) not in uids and b"RECURRENCE-ID" not in data:
            uids.add(uid.group(1))
            found.append(crlf(data))
    assert len(found) >= 10
    return found[:40]


def bucket(server: ServerProcess) -> tuple[Any, str]:
    """A boto3 client of the server's S3 bucket, and the bucket's name."""
    import boto3
    o = server.options
    client = boto3.session.Session().client(
        "s3", endpoint_url=f"{o['attachment_s3_protocol']}://{o['attachment_s3_hostname']}",
        region_name=o["attachment_s3_region"], aws_access_key_id=o["attachment_s3_accesskeyid"],
        aws_secret_access_key=o["attachment_s3_secretaccesskey"])
    return client, o["attachment_s3_bucketname"]


def at_rest(server: ServerProcess) -> list[bytes]:
    """Every stored blob as the disk holds it: blob files, the rows of the blobs table,
    and the objects of the S3 bucket."""
    if server.options["attachment_storage"] == "s3":
        client, name = bucket(server)
        keys = [entry["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=name)
                for entry in page.get("Contents", ())]
        return [client.get_object(Bucket=name, Key=key)["Body"].read() for key in keys]
    stored = []
    for parent, _dirs, names in os.walk(os.path.join(server.data_dir, "attachments")):
        for name in names:
            with open(os.path.join(parent, name), "rb") as fp:
                stored.append(fp.read())
    with contextlib.closing(sqlite3.connect(os.path.join(server.data_dir, "store.db"))) as db:
        stored.extend(bytes(row[0]) for row in db.execute("SELECT data FROM blobs"))
    return stored


def test_stored_mail_and_events_come_back_and_are_unreadable_at_rest(suite):
    corpus = messages()
    m = imap(suite)
    m.create("Corpus")
    for message in corpus:
        assert m.append("Corpus", None, None, message)[0] == "OK"
    m.select("Corpus", readonly=True)
    typ, data = m.uid("FETCH", "1:*", "(BODY.PEEK[])")
    assert typ == "OK"
    fetched = [part[1] for part in data if isinstance(part, tuple)]
    assert fetched == corpus  # byte for byte, in order
    m.logout()

    http = requests.Session()
    http.auth = ("demo", suite.demo_password())
    base = f"http://127.0.0.1:{suite.port('ical')}/caldav/demo/Calendar/"
    events = []
    for i, text in enumerate(calendars()):
        r = http.put(f"{base}corpus-{i}.ics", data=text, headers={"Content-Type": "text/calendar"}, timeout=60)
        if r.status_code == 400:
            continue  # some of the corpus is broken on purpose: refused, as it should be
        assert r.status_code in (201, 204), (i, r.status_code, r.text)
        back = http.get(f"{base}corpus-{i}.ics", timeout=60)
        assert back.status_code == 200 and b"BEGIN:VCALENDAR" in back.content
        events.append(text)
    assert len(events) >= 10

    stored = at_rest(suite)
    assert len(stored) >= len(corpus)
    blob = b"\0".join(stored)
    secrets = [t for message in corpus for t in telltales(message)]
    summaries = [m.group(1).strip() for text in events
                 for m in [re.search(rb"\r\nSUMMARY[^:]*:(.{8,}?)\r\n", text)] if m]
    assert len(secrets) > 40 and summaries
    readable = [s for s in [b"BEGIN:VCALENDAR", b"BEGIN:VEVENT", *secrets, *summaries] if s in blob]
    assert readable == []


def blob_key_of(server: ServerProcess, folder: str) -> list[str]:
    """The blob keys of a mail folder's messages, in uid order."""
    with contextlib.closing(sqlite3.connect(os.path.join(server.data_dir, "store.db"))) as db:
        rows = db.execute("SELECT i.blob_key FROM items i JOIN folders f ON f.id = i.folder_id "
                          "WHERE f.name = ? ORDER BY i.uid", (folder,)).fetchall()
    return [row[0] for row in rows]


def read_blob(server: ServerProcess, key: str) -> bytes:
    if server.options["attachment_storage"] == "s3":
        client, name = bucket(server)
        return client.get_object(Bucket=name, Key=key)["Body"].read()
    if server.options["attachment_storage"] == "files":
        with open(os.path.join(server.data_dir, "attachments", key[:2], key[2:4], key), "rb") as fp:
            return fp.read()
    with contextlib.closing(sqlite3.connect(os.path.join(server.data_dir, "store.db"))) as db:
        return b"".join(bytes(r[0]) for r in db.execute("SELECT data FROM blobs WHERE key = ? ORDER BY seq", (key,)))


def write_blob(server: ServerProcess, key: str, data: bytes) -> None:
    """Replace a blob's stored bytes behind the server's back, as whoever holds the disk could."""
    if server.options["attachment_storage"] == "s3":
        client, name = bucket(server)
        client.put_object(Bucket=name, Key=key, Body=data)
        return
    if server.options["attachment_storage"] == "files":
        with open(os.path.join(server.data_dir, "attachments", key[:2], key[2:4], key), "wb") as fp:
            fp.write(data)
        return
    with contextlib.closing(sqlite3.connect(os.path.join(server.data_dir, "store.db"), timeout=60)) as db:
        db.execute("DELETE FROM blobs WHERE key = ?", (key,))
        db.execute("INSERT INTO blobs (key, seq, data) VALUES (?, 0, ?)", (key, data))
        db.commit()


@pytest.mark.parametrize("damage", ["tamper", "truncate", "swap"])
def test_a_damaged_blob_is_answered_with_no(suite, damage):
    folder = "Damaged-" + damage
    m = imap(suite)
    m.create(folder)
    bodies = [b"From: a@example.com\r\nSubject: %s %d\r\n\r\n%s\r\n" % (damage.encode(), i, b"line\r\n" * 2000)
              for i in range(3)]
    for body in bodies:
        assert m.append(folder, None, None, body)[0] == "OK"
    keys = blob_key_of(suite, folder)
    assert len(keys) == 3
    first = read_blob(suite, keys[0])
    if damage == "tamper":
        write_blob(suite, keys[0], first[:200] + bytes([first[200] ^ 1]) + first[201:])
    elif damage == "truncate":
        write_blob(suite, keys[0], first[:len(first) // 2])
    else:
        second = read_blob(suite, keys[1])
        write_blob(suite, keys[0], second)
        write_blob(suite, keys[1], first)
    m.select(folder, readonly=True)
    typ, data = m.uid("FETCH", "1", "(BODY.PEEK[])")
    assert typ == "NO", data
    assert b"line" not in b"".join(part if isinstance(part, bytes) else b"".join(part) for part in data)
    # The connection stays usable, and undamaged messages still come back.
    typ, data = m.uid("FETCH", "3", "(BODY.PEEK[])")
    assert typ == "OK" and data[0][1] == bodies[2]
    assert m.noop()[0] == "OK"
    m.logout()
    with open(suite.options["log_file"], encoding="utf-8", errors="replace") as fp:
        assert f"blob damaged: blob {keys[0]}" in fp.read()


def test_a_damaged_blob_is_pop3s_err_and_http_500(suite):
    body = b"From: a@example.com\r\nSubject: pop3 damage\r\n\r\n" + b"text\r\n" * 100
    m = imap(suite)
    assert m.append("INBOX", None, None, body)[0] == "OK"
    m.logout()
    key = (blob_key_of(suite, "Inbox") or blob_key_of(suite, "INBOX"))[-1]
    sealed = read_blob(suite, key)
    write_blob(suite, key, sealed[:-1] + bytes([sealed[-1] ^ 1]))
    pop = poplib.POP3("127.0.0.1", suite.port("pop3"), timeout=60)
    pop.user("demo")
    pop.pass_(suite.demo_password())
    with pytest.raises(poplib.error_proto, match="-ERR"):
        pop.retr(pop.stat()[0])
    assert pop.noop().startswith(b"+OK")
    pop.quit()

    http = requests.Session()
    http.auth = ("demo", suite.demo_password())
    url = f"http://127.0.0.1:{suite.port('ical')}/caldav/demo/Calendar/damaged.ics"
    event = (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:damaged-1\r\n"
             b"DTSTAMP:20260101T000000Z\r\nDTSTART:20261201T100000Z\r\nSUMMARY:board meeting\r\n"
             b"END:VEVENT\r\nEND:VCALENDAR\r\n")
    assert http.put(url, data=event, headers={"Content-Type": "text/calendar"}, timeout=60).status_code == 201
    with contextlib.closing(sqlite3.connect(os.path.join(suite.data_dir, "store.db"))) as db:
        key, = db.execute("SELECT blob_key FROM items WHERE name = 'damaged.ics'").fetchone()
    sealed = read_blob(suite, key)
    write_blob(suite, key, sealed[:100] + bytes([sealed[100] ^ 1]) + sealed[101:])
    r = http.get(url, timeout=60)
    assert r.status_code >= 500 and b"board meeting" not in r.content


def test_damage_inside_a_big_message_cuts_the_connection(suite):
    """A message too big to read first is streamed: damage found once its literal is
    under way can only end the connection, never be followed by other bytes."""
    body = b"From: a@example.com\r\nSubject: big one\r\n\r\n" + b"0123456789abcdef" * (3 << 16)
    m = imap(suite)
    m.create("Big")
    assert m.append("Big", None, None, body)[0] == "OK"
    key, = blob_key_of(suite, "Big")
    sealed = bytearray(read_blob(suite, key))
    sealed[len(sealed) // 2] ^= 1
    write_blob(suite, key, bytes(sealed))
    m.select("Big", readonly=True)
    m.sock.settimeout(30)  # a gateway that waited instead of closing would fail the test
    with pytest.raises((imaplib.IMAP4.abort, ConnectionError, EOFError)):
        typ, data = m.uid("FETCH", "1", "(BODY.PEEK[])")
        # A NO before any byte of the literal is as good; a partial literal is not.
        assert typ == "NO", typ
        raise imaplib.IMAP4.abort("answered NO")
    with contextlib.suppress(Exception):
        m.shutdown()
    with imap(suite) as again:  # the gateway itself carries on
        assert again.noop()[0] == "OK"
