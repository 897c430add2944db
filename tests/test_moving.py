"""`groupware import`, `export`, `backup` and `restore` against a live Dovecot, real files
and a serving store."""
from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from dovecot import PrivateDovecot
from harness import CONFIG_DIR, ROOT, ServerProcess, run_groupware as groupware
from mail_moving import (PEER_PASSWORD, PEER_USER, append_samples, mailbox, open_store, sample_date,
                         make_peer, sample_message)
from waiting import scaled



@pytest.fixture(scope="module", autouse=True)
def dovecot_installed():
    """Debian's dovecot-imapd for the live source, installed when missing."""
    PrivateDovecot.install("imap")


@pytest.fixture
def idle_peer():
    """A private Dovecot to fill before it starts."""
    dovecot = make_peer()
    yield dovecot
    dovecot.stop()
    shutil.rmtree(os.path.dirname(dovecot.base), ignore_errors=True)


@pytest.fixture
def peer(idle_peer):
    return idle_peer.start()


def add_user(data_dir, name):
    groupware(data_dir, "user", "add", name, "--password-stdin", stdin="pw\n")


def import_from(data_dir, peer, password_file, *more, check=True):
    return groupware(data_dir, "import", "alice", "--from", f"imap://{PEER_USER}@127.0.0.1:{peer.port}",
                     "--password-file", str(password_file), "--allow-plaintext", *more, check=check)


@pytest.fixture
def password_file(tmp_path):
    path = tmp_path / "peer-password"
    path.write_text(PEER_PASSWORD + "\n")
    return path


def expected_store_names(sent: dict) -> dict:
    # The source's INBOX is the store's inbox; Sent lands in the store's Sent folder.
    return {name: sorted(messages, key=lambda m: m[2]) for name, messages in sent.items()}


def test_import_from_dovecot_is_exact_and_idempotent(tmp_path, peer, password_file):
    sent = append_samples(peer, {"INBOX": 14, "Sent": 5, "Projects/2024/Q1": 7, "Ünïcode": 3})
    data = tmp_path / "data"
    add_user(data, "alice")

    first = import_from(data, peer, password_file)
    assert "29 messages copied, 0 already there" in first.stdout
    assert "import imap://peer@127.0.0.1" in first.stderr  # a progress line: not a terminal
    got = mailbox(data, "alice")
    assert got == sent  # bytes, flags (keywords too) and internal dates, in source order
    storage = open_store(data)
    try:
        rows = storage.list_folders(storage.get_user("alice")["store_id"], counts=False)
        sent_folder = next(r for r in rows if r["role"] == "sent")
        assert sent_folder["name"] == "Sent" and sum(r["name"] == "Sent" for r in rows) == 1
        assert {r["name"] for r in rows} >= {"Projects", "2024", "Q1", "Ünïcode"}
    finally:
        storage.close()

    again = import_from(data, peer, password_file)
    assert "0 messages copied" in again.stdout
    assert mailbox(data, "alice") == sent

    # Without the remembered UIDs, the messages are still recognised (Message-ID, date, size).
    state = data / "import-state" / "alice.json"
    assert json.loads(state.read_text())
    state.unlink()
    rerun = import_from(data, peer, password_file)
    assert "0 messages copied, 29 already there" in rerun.stdout

    more = append_samples(peer, {"INBOX": 2}, start=100)
    newer = import_from(data, peer, password_file)
    assert "2 messages copied" in newer.stdout
    assert mailbox(data, "alice")["INBOX"] == sent["INBOX"] + more["INBOX"]
    # The source is left as it was: opened read-only, bodies peeked (no \\Seen added).
    import imaplib
    imap = imaplib.IMAP4("127.0.0.1", peer.port)
    imap.login(PEER_USER, PEER_PASSWORD)
    imap.select("INBOX", readonly=True)
    typ, flags = imap.fetch("2", "(FLAGS)")
    imap.logout()
    assert typ == "OK" and b"\\Seen" not in flags[0]


def test_import_refusals(tmp_path, peer, password_file):
    data = tmp_path / "data"
    add_user(data, "alice")
    plaintext = groupware(data, "import", "alice", "--from", f"imap://{PEER_USER}@127.0.0.1:{peer.port}",
                          "--password-file", str(password_file), check=False)
    assert plaintext.returncode == 1 and "STARTTLS" in plaintext.stderr
    bad = tmp_path / "bad"
    bad.write_text("wrong\n")
    refused = import_from(data, peer, bad, check=False)
    assert refused.returncode == 1 and "AUTHENTICATIONFAILED" in refused.stderr.upper()
    in_url = groupware(data, "import", "alice", "--from", f"imap://{PEER_USER}:x@127.0.0.1:{peer.port}",
                       check=False)
    assert in_url.returncode == 1 and "--password-file" in in_url.stderr
    nobody = groupware(data, "import", "nobody", "--from", "maildir:/nonexistent", check=False)
    assert nobody.returncode == 1 and "no user" in nobody.stderr
    wrong = groupware(data, "import", "alice", "--from", "pop3://x@y", check=False)
    assert wrong.returncode != 0 and "maildir:PATH" in wrong.stderr


def test_interrupted_import_resumes(tmp_path, idle_peer, password_file):
    # Maildir files straight into Dovecot's store: enough messages to be interrupted midway.
    messages = [sample_message("INBOX", i, size=2000) for i in range(1500)]
    idle_peer.folder("INBOX", messages)
    peer = idle_peer.start()
    data = tmp_path / "data"
    add_user(data, "alice")
    state = data / "import-state" / "alice.json"
    proc = subprocess.Popen([sys.executable, "-m", "groupware.cli", "import", "alice", "--from",
                             f"imap://{PEER_USER}@127.0.0.1:{peer.port}", "--password-file", str(password_file),
                             "--allow-plaintext", "--config-dir", CONFIG_DIR, "--data-dir", str(data)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + scaled(60)
    while time.monotonic() < deadline and proc.poll() is None:
        if state.exists() and json.loads(state.read_text()).get(
                f"imap://{PEER_USER}@127.0.0.1:{peer.port}", {}).get("INBOX", {}).get("uid", 0) > 0:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=scaled(60))
    assert proc.returncode == 130, (out, err)
    assert "interrupted" in err and "resumes" in err
    partial = mailbox(data, "alice").get("INBOX", [])
    assert 0 < len(partial) < len(messages)

    resumed = import_from(data, peer, password_file)
    assert f"{len(messages) - len(partial)} messages copied" in resumed.stdout
    assert [m[0] for m in mailbox(data, "alice")["INBOX"]] == messages


def test_maildir_from_dovecot_and_round_trips(tmp_path, peer, password_file):
    sent = append_samples(peer, {"INBOX": 8, "Archive/Old": 4, "Lists": 6})
    data = tmp_path / "data"
    add_user(data, "alice")

    # Dovecot's own Maildir (LF line ends, keywords in dovecot-keywords, order in dovecot-uidlist).
    peer.stop()
    groupware(data, "import", "alice", "--from", f"maildir:{peer.maildir}")
    assert mailbox(data, "alice") == sent
    again = groupware(data, "import", "alice", "--from", f"maildir:{peer.maildir}")
    assert "0 messages copied, 18 already there" in again.stdout

    # Export -> import reproduces the mailbox byte for byte: Maildir with flags and dates,
    # mbox with bytes and dates.
    groupware(data, "export", "alice", "--to", f"maildir:{tmp_path / 'out-maildir'}")
    groupware(data, "export", "alice", "--to", f"mbox:{tmp_path / 'out-mbox'}")
    assert (tmp_path / "out-mbox" / "Archive" / "Old.mbox").exists()
    mbox_text = (tmp_path / "out-mbox" / "INBOX.mbox").read_bytes()
    assert b"\n>From the start of a line" in mbox_text and b"\n>>From too." in mbox_text
    for user, target in (("bob", f"maildir:{tmp_path / 'out-maildir'}"),
                         ("carol", f"mbox:{tmp_path / 'out-mbox'}")):
        add_user(data, user)
        groupware(data, "import", user, "--from", target)
    assert mailbox(data, "bob") == sent
    assert {name: [(m[0], m[2]) for m in messages] for name, messages in mailbox(data, "carol").items()} == \
        {name: [(m[0], m[2]) for m in messages] for name, messages in sent.items()}
    # A second export into the same Maildir writes nothing new.
    repeat = groupware(data, "export", "alice", "--to", f"maildir:{tmp_path / 'out-maildir'}")
    assert "0 messages written" in repeat.stdout and "18 there already" in repeat.stdout


def test_mbox_from_another_program(tmp_path):
    # As mutt or Thunderbird leave it: LF line ends, no escaping of >From, flags in Status fields.
    text = (b"From someone@example.org Tue Feb  6 10:00:00 2024\n"
            b"From: someone@example.org\nSubject: one\nStatus: RO\nX-Status: F\nX-Keywords: $Label2\n\nfirst\n\n"
            b"From other@example.org Wed Feb  7 11:30:00 2024\n"
            b"From: other@example.org\nSubject: two\n\nsecond\n>From quoted\n")
    path = tmp_path / "old.mbox"
    path.write_bytes(text)
    data = tmp_path / "data"
    add_user(data, "alice")
    assert "2 messages copied" in groupware(data, "import", "alice", "--from", f"mbox:{path}").stdout
    inbox = mailbox(data, "alice")["INBOX"]
    assert inbox[0] == (b"From: someone@example.org\r\nSubject: one\r\nStatus: RO\r\nX-Status: F\r\n"
                        b"X-Keywords: $Label2\r\n\r\nfirst\r\n", sorted(["\\Seen", "\\Flagged", "$Label2"]),
                        1707213600)
    assert inbox[1] == (b"From: other@example.org\r\nSubject: two\r\n\r\nsecond\r\nFrom quoted\r\n", [], 1707305400)
    broken = tmp_path / "not.mbox"
    broken.write_bytes(b"Subject: no From line\n\nx\n")
    refused = groupware(data, "import", "alice", "--from", f"mbox:{broken}", check=False)
    assert refused.returncode == 1 and "not an mbox" in refused.stderr


ICS = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//test//EN\r
BEGIN:VTIMEZONE\r
TZID:Europe/Berlin\r
BEGIN:STANDARD\r
DTSTART:19701025T030000\r
TZOFFSETFROM:+0200\r
TZOFFSETTO:+0100\r
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r
END:STANDARD\r
END:VTIMEZONE\r
BEGIN:VEVENT\r
UID:standup@example.org\r
DTSTAMP:20240101T000000Z\r
DTSTART;TZID=Europe/Berlin:20240108T093000\r
DURATION:PT15M\r
RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR\r
SUMMARY:Standup\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:party@example.org\r
DTSTAMP:20240101T000000Z\r
DTSTART:20241220T180000Z\r
DTEND:20241220T230000Z\r
SUMMARY:Party\r
END:VEVENT\r
END:VCALENDAR\r
"""

VCF = """BEGIN:VCARD\r
VERSION:3.0\r
UID:card-1@example.org\r
FN:Anna Müller\r
N:Müller;Anna;;;\r
EMAIL;TYPE=work:anna@example.org\r
TEL:+49 30 1234\r
END:VCARD\r
BEGIN:VCARD\r
VERSION:4.0\r
FN:Bernd Without UID\r
EMAIL:bernd@example.org\r
END:VCARD\r
"""


def test_calendars_and_contacts(tmp_path):
    data = tmp_path / "data"
    add_user(data, "alice")
    (tmp_path / "work.ics").write_text(ICS, newline="")
    (tmp_path / "people.vcf").write_text(VCF, newline="")
    out = groupware(data, "import", "alice", str(tmp_path / "work.ics"), str(tmp_path / "people.vcf")).stdout
    assert "work.ics: 2 objects saved, 0 unchanged" in out
    assert "people.vcf: 2 objects saved, 0 unchanged" in out
    again = groupware(data, "import", "alice", str(tmp_path / "work.ics"), str(tmp_path / "people.vcf")).stdout
    assert "2 objects saved" not in again and "0 objects saved, 2 unchanged" in again

    storage = open_store(data)
    try:
        rows = {r["name"]: r for r in storage.list_folders(storage.get_user("alice")["store_id"])}
        _, contacts = storage.query_items(rows["Contacts"]["id"], ["name", "icalUid", "itemClass", "fn"])
        assert contacts["itemClass"] == ["IPM.Contact"] * 2
        assert contacts["fn"] == ["Anna Müller", "Bernd Without UID"]
        assert contacts["name"][0] == "card-1@example.org.vcf"
        _, events = storage.query_items(rows["Calendar"]["id"], ["icalUid", "summary", "recurring"])
        assert sorted(zip(events["icalUid"], events["summary"], events["recurring"])) == \
            [("party@example.org", "Party", 0), ("standup@example.org", "Standup", 1)]
    finally:
        storage.close()

    groupware(data, "export", "alice", "--to", f"maildir:{tmp_path / 'out'}", "--pim-to", str(tmp_path / "pim"))
    calendar = (tmp_path / "pim" / "Calendar.ics").read_bytes().decode()
    assert calendar.count("BEGIN:VEVENT") == 2 and calendar.count("BEGIN:VTIMEZONE") == 1
    assert "RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR" in calendar
    assert (tmp_path / "pim" / "Contacts.vcf").read_bytes().decode() == VCF
    # The exported files import into another user as they were.
    add_user(data, "bob")
    groupware(data, "import", "bob", str(tmp_path / "pim" / "Calendar.ics"), str(tmp_path / "pim" / "Contacts.vcf"))
    groupware(data, "export", "bob", "--to", f"maildir:{tmp_path / 'out-bob'}", "--pim-to", str(tmp_path / "pim-bob"))
    assert (tmp_path / "pim-bob" / "Contacts.vcf").read_bytes().decode() == VCF
    assert sorted((tmp_path / "pim-bob" / "Calendar.ics").read_bytes().decode().split("\r\n")) == \
        sorted(calendar.split("\r\n"))


def test_backup_while_serving_and_restore(tmp_path):
    data = tmp_path / "data"
    server = ServerProcess(str(data)).start()
    stop = threading.Event()
    appended: list[int] = []
    errors: list[BaseException] = []
    try:
        server.cli("user", "add", "alice", "--password-stdin", stdin="pw\n")
        port = server.port("imap")

        def load() -> None:
            import imaplib
            try:
                imap = imaplib.IMAP4("127.0.0.1", port)
                imap.login("alice", "pw")
                i = 0
                while not stop.is_set():
                    typ, _ = imap.append("INBOX", "(\\Seen)", time.localtime(sample_date(i)),
                                         sample_message("INBOX", i, size=4000))
                    assert typ == "OK"
                    appended.append(i)
                    if i % 10 == 9:  # and delete an old one now and then
                        imap.select("INBOX")
                        imap.store("1", "+FLAGS", "\\Deleted")
                        imap.expunge()
                    i += 1
                imap.logout()
            except BaseException as exc:  # reported by the test
                errors.append(exc)

        writer = threading.Thread(target=load)
        writer.start()
        deadline = time.monotonic() + scaled(30)
        while len(appended) < 200 and time.monotonic() < deadline and not errors:
            time.sleep(0.05)
        before = len(appended)
        backup = server.cli("backup", str(tmp_path / "backup"))
        during = len(appended)
        time.sleep(0.5)
        stop.set()
        writer.join(scaled(30))
        assert not errors
        # Messages were stored while the backup ran, and after it.
        assert "backup in" in backup and during > before >= 200 and len(appended) > during
    finally:
        stop.set()
        server.stop()

    restored = tmp_path / "restored"
    refused = groupware(data, "restore", str(tmp_path / "backup"), check=False)
    assert refused.returncode == 1 and "--force" in refused.stderr
    groupware(restored, "restore", str(tmp_path / "backup"))
    with sqlite3.connect(restored / "store.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    storage = open_store(restored)
    try:
        inbox = next(r for r in storage.list_folders(storage.get_user("alice")["store_id"]) if r["role"] == "inbox")
        _, rows = storage.query_items(inbox["id"], ["uid", "size", "blob_key"])
        assert 0 < len(rows["uid"])
        for size, key in zip(rows["size"], rows["blob_key"]):
            with storage.blobs.open(key) as fp:  # every message the snapshot names is there, whole
                body = fp.read()
            assert len(body) == size and body.startswith(b"From: Sender")
    finally:
        storage.close()
    # The restored store serves: the last message the backup holds reads back over IMAP.
    server = ServerProcess(str(restored)).start()
    try:
        import imaplib
        imap = imaplib.IMAP4("127.0.0.1", server.port("imap"))
        imap.login("alice", "pw")
        typ, data_ = imap.select("INBOX")
        assert typ == "OK" and int(data_[0]) == len(rows["uid"])
        imap.logout()
    finally:
        server.stop()


def test_import_over_starttls_and_imaps(tmp_path, password_file):
    from certificates import make_ca_and_server_cert
    from harness import free_port

    peer = make_peer()
    os.makedirs(peer.base, exist_ok=True)
    ca, cert, key = make_ca_and_server_cert(peer.base)
    imaps_port = free_port()
    peer.tuning = (f"ssl = required\nssl_cert = <{cert}\nssl_key = <{key}\n"
                   f"service imap-login {{\n  inet_listener imaps {{\n    address = 127.0.0.1\n"
                   f"    port = {imaps_port}\n  }}\n}}\n")
    peer.folder("INBOX", [sample_message("INBOX", i) for i in range(5)])
    peer.start()
    try:
        data = tmp_path / "data"
        add_user(data, "alice")
        untrusted = groupware(data, "import", "alice", "--from", f"imap://{PEER_USER}@127.0.0.1:{peer.port}",
                              "--password-file", str(password_file), check=False)
        assert untrusted.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
        starttls = groupware(data, "import", "alice", "--from", f"imap://{PEER_USER}@127.0.0.1:{peer.port}",
                             "--password-file", str(password_file), "--cafile", ca)
        assert "5 messages copied" in starttls.stdout
        add_user(data, "bob")
        implicit = groupware(data, "import", "bob", "--from", f"imaps://{PEER_USER}@127.0.0.1:{imaps_port}",
                             "--password-file", str(password_file), "--cafile", ca)
        assert "5 messages copied" in implicit.stdout
        assert mailbox(data, "alice") == mailbox(data, "bob")
    finally:
        peer.stop()
        shutil.rmtree(os.path.dirname(peer.base), ignore_errors=True)


def test_import_reaches_idle_clients_of_a_running_server(tmp_path):
    from raw_clients import RawIMAP

    mbox = tmp_path / "in.mbox"
    mbox.write_bytes(b"".join(b"From MAILER-DAEMON Mon Jan  1 10:00:00 2024\n"
                              + sample_message("INBOX", i).replace(b"\nFrom ", b"\n>From ") + b"\n"
                              for i in range(3)))
    data = tmp_path / "data"
    server = ServerProcess(str(data)).start()
    try:
        server.cli("user", "add", "alice", "--password-stdin", stdin="pw\n")
        client = RawIMAP(server.port("imap"))
        client.sock.settimeout(scaled(20))
        client.cmd(b"LOGIN alice pw")
        assert any(b"0 EXISTS" in line for line in client.cmd(b"SELECT INBOX"))
        client.send(b"c IDLE\r\n")
        assert client.readline().startswith(b"+")
        assert "3 messages copied" in server.cli("import", "alice", "--from", f"mbox:{mbox}")
        # Told at once by the import, not at the end of an IDLE poll.
        started = time.monotonic()
        line = client.readline()
        assert line == b"* 3 EXISTS\r\n" and time.monotonic() - started < scaled(5)
        client.send(b"DONE\r\n")
        client.until(b"c")
        client.close()
    finally:
        server.stop()


def test_progress_bar_on_a_terminal(tmp_path):
    import pty

    mbox = tmp_path / "in.mbox"
    mbox.write_bytes(b"".join(b"From MAILER-DAEMON Mon Jan  1 10:00:00 2024\n"
                              + sample_message("INBOX", i).replace(b"\nFrom ", b"\n>From ") + b"\n"
                              for i in range(20)))
    data = tmp_path / "data"
    add_user(data, "alice")
    groupware(data, "import", "alice", "--from", f"mbox:{mbox}")
    leader, follower = pty.openpty()
    screen = bytearray()

    def read_terminal() -> None:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal's other end is closed: all read
                return
            if not chunk:
                return
            screen.extend(chunk)

    reader = threading.Thread(target=read_terminal)
    reader.start()
    try:
        proc = subprocess.run([sys.executable, "-m", "groupware.cli", "export", "alice", "--to",
                               f"maildir:{tmp_path / 'out'}", "--config-dir", CONFIG_DIR, "--data-dir", str(data)],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=follower, timeout=scaled(120))
    finally:
        os.close(follower)
        reader.join(scaled(10))
        os.close(leader)
    assert proc.returncode == 0
    # tqdm's bar: percentage, the bar, count of total and rate, redrawn with carriage returns.
    assert b"100%|" in screen and b"20/20" in screen and b"msg/s" in screen
    assert b"export to maildir" in screen and b", done" not in screen  # not the plain line
