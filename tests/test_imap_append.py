"""APPEND against a real `groupware serve`: APPENDUID, flags and INTERNALDATE kept, LITERAL+,
APPENDLIMIT and TOOBIG with the connection still usable, byte-exact round trips of corpus
messages, and a 50 MB message that the process stores without holding it."""
from __future__ import annotations

import hashlib
import os
import re
import time

import pytest

from debian import email_corpus
from shared.flags import flag_names
from harness import peak_rss_kb
from imap_env import Env
from waiting import wait_until

LIMIT = 60 * 1024 * 1024
pytestmark = pytest.mark.gateway_env("imap", imap_max_literal=str(LIMIT))
SMALL = b"From: a@example.com\r\nSubject: appended\r\n\r\nhello\r\n"


def source_of(env: Env, folder, uid: int) -> bytes:
    href, size = env.rt.call(folder.open_stream, uid)
    parts: list[bytes] = []
    env.rt.call(folder.stream, href, parts.append)
    return b"".join(parts)


def appenduid(line: bytes) -> tuple[int, int]:
    match = re.search(rb"\[APPENDUID (\d+) (\d+)\]", line)
    assert match, line
    return int(match.group(1)), int(match.group(2))


def test_append_keeps_flags_date_and_bytes(env):
    folder = env.fresh("Appended")
    raw = env.raw(login=True)
    raw.send(b'a APPEND Appended (\\Seen $Forwarded) "05-Mar-2021 14:07:09 +0100" {%d}\r\n' % len(SMALL))
    assert raw.readline().startswith(b"+ ")
    raw.send(SMALL + b"\r\n")
    line = raw.until(b"a")[-1]
    assert line.startswith(b"a OK [APPENDUID ")
    validity, uid = appenduid(line)
    assert validity == folder.uid_validity
    message = env.rt.call(folder.message, uid, ["flags", "keywords", "internalDate", "size"])
    assert set(message.flags) == {"\\Seen", "$Forwarded"}
    assert source_of(env, folder, uid) == SMALL
    _, table = env.rt.call(folder.query, ["uid", "internalDate"], {"uids": str(uid)})
    assert table["internalDate"] == [1614949629]
    # Without flags and date, with LITERAL+ and a binary literal.
    raw.send(b"b APPEND Appended {%d+}\r\n" % len(SMALL) + SMALL + b"\r\n")
    assert appenduid(raw.until(b"b")[-1])[1] == uid + 1
    raw.send(b"c APPEND Appended ~{%d+}\r\n" % len(SMALL) + SMALL + b"\r\n")
    assert appenduid(raw.until(b"c")[-1])[1] == uid + 2
    raw.close()


def test_internal_date_is_honoured(env):
    folder = env.fresh("Dated")
    raw = env.raw(login=True)
    raw.send(b'a APPEND Dated "01-Feb-2000 00:00:00 -0500" {%d+}\r\n' % len(SMALL) + SMALL + b"\r\n")
    _, uid = appenduid(raw.until(b"a")[-1])
    _, table = env.rt.call(folder.query, ["uid", "internalDate"], {"uids": str(uid)})
    assert table["internalDate"] == [949381200]
    raw.close()


def test_append_to_the_selected_mailbox_announces_it(env):
    env.fresh("Selected", 2)
    raw = env.raw(login=True)
    assert b"* 2 EXISTS\r\n" in raw.cmd("SELECT Selected")
    raw.send(b"a APPEND Selected {%d+}\r\n" % len(SMALL) + SMALL + b"\r\n")
    lines = raw.until(b"a")
    assert b"* 3 EXISTS\r\n" in lines and lines[-1].startswith(b"a OK [APPENDUID")
    raw.close()


def test_append_errors(env):
    raw = env.raw(login=True)
    raw.send(b"a APPEND NoSuchBox {%d+}\r\n" % len(SMALL) + SMALL + b"\r\n")
    assert raw.until(b"a")[-1].startswith(b"a NO [TRYCREATE]")
    raw.send(b"b APPEND INBOX {0+}\r\n\r\n")
    assert raw.until(b"b")[-1].startswith(b"b NO")
    # Over APPENDLIMIT, synchronizing: refused before the client sends a byte.
    raw.send(b"c APPEND INBOX {%d}\r\n" % (LIMIT + 1))
    assert raw.readline().startswith(b"c NO [TOOBIG]")
    assert raw.cmd("NOOP")[-1].startswith(b"r2 OK")
    # Over APPENDLIMIT with LITERAL+: read and thrown away, the connection stays usable.
    size = LIMIT + 1024
    raw.send(b"d APPEND INBOX {%d+}\r\n" % size)
    chunk = b"y" * 65536
    sent = 0
    while sent < size:
        n = min(len(chunk), size - sent)
        raw.send(chunk[:n])
        sent += n
    raw.send(b"\r\n")
    assert raw.until(b"d")[-1].startswith(b"d NO [TOOBIG]")
    assert raw.cmd("NOOP")[-1].startswith(b"r3 OK")
    caps = raw.cmd("CAPABILITY")[0].split()
    assert b"APPENDLIMIT=%d" % LIMIT in caps and b"UIDPLUS" in caps and b"LITERAL+" in caps
    status = raw.cmd("STATUS INBOX (APPENDLIMIT)")[0]
    assert b"APPENDLIMIT %d" % LIMIT in status
    raw.close()


def test_corpus_round_trips_byte_for_byte(env):
    folder = env.fresh("AppendCorpus")
    raw = env.raw(login=True)
    files = email_corpus()
    for i, name in enumerate(files):
        data = open(name, "rb").read()
        raw.send(b"a%d APPEND AppendCorpus {%d+}\r\n" % (i, len(data)) + data + b"\r\n")
    uids = []
    for i in range(len(files)):
        uids.append(appenduid(raw.until(b"a%d" % i)[-1])[1])
    for uid, name in zip(uids, files):
        assert source_of(env, folder, uid) == open(name, "rb").read(), name
    raw.close()


def big_message(size: int) -> tuple[bytes, bytes]:
    """A message of about `size` octets whose lines all differ (a shifted byte shows)."""
    head = b"From: big@example.com\r\nSubject: fifty megabytes\r\n\r\n"
    lines = []
    total = len(head)
    n = 0
    while total < size:
        line = hashlib.sha256(b"%d" % n).hexdigest().encode() * 2 + b"\r\n"
        lines.append(line)
        total += len(line)
        n += 1
    return head, b"".join(lines)


def test_fifty_megabytes_streamed_into_the_store(env):
    folder = env.fresh("Big")
    head, body = big_message(50 * 1024 * 1024)
    message = head + body
    digest = hashlib.sha256(message).hexdigest()
    pid = env.server.pid()
    with open(f"/proc/{pid}/clear_refs", "w") as fp:
        fp.write("5")  # reset the peak resident size to the current one
    before = peak_rss_kb(pid)
    raw = env.raw(login=True)
    raw.send(b"a APPEND Big (\\Flagged) {%d}\r\n" % len(message))
    assert raw.readline().startswith(b"+ ")
    view = memoryview(message)
    for start in range(0, len(message), 256 * 1024):
        raw.send(view[start:start + 256 * 1024])
    raw.send(b"\r\n")
    started = time.monotonic()
    line = raw.until(b"a")[-1]
    assert line.startswith(b"a OK [APPENDUID"), line
    grown = peak_rss_kb(pid) - before
    print(f"50 MB APPEND: peak RSS growth {grown / 1024:.1f} MB, stored in {time.monotonic() - started:.1f}s "
          "after the last byte")
    assert grown < 20 * 1024, f"the process grew by {grown} kB"
    _, uid = appenduid(line)
    href, size = env.rt.call(folder.open_stream, uid)
    assert size == len(message)
    h = hashlib.sha256()
    env.rt.call(folder.stream, href, h.update, timeout=120)
    assert h.hexdigest() == digest
    # A body search reads the big source in the store without holding it either.
    last = body.rsplit(b"\r\n", 2)[-2][:40].decode()
    del message, view, body
    assert raw.cmd("SELECT Big")[-1].startswith(b"r2 OK")
    with open(f"/proc/{pid}/clear_refs", "w") as fp:
        fp.write("5")
    before = peak_rss_kb(pid)
    started = time.monotonic()
    assert raw.cmd(f"SEARCH BODY {last}")[0] == b"* SEARCH 1\r\n"
    assert raw.cmd("SEARCH BODY not-in-there")[0] == b"* SEARCH\r\n"
    grown = peak_rss_kb(pid) - before
    print(f"BODY search of 50 MB twice: peak RSS growth {grown / 1024:.1f} MB in {time.monotonic() - started:.1f}s")
    assert grown < 20 * 1024, f"the process grew by {grown} kB"
    raw.close()
    wait_until(lambda: not [target for target in open_files(pid) if target.endswith("(deleted)")],
               message="spooled file left open")


def open_files(pid: int) -> list[str]:
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:
            pass  # closed meanwhile
    return out


def test_append_follows_folders_changed_by_another_session(env):
    """APPEND resolves its target from a tree kept per connection; a folder deleted,
    recreated or created elsewhere in between is still found (or refused) correctly."""
    env.fresh("Moving")
    imap = env.imap()
    try:
        assert imap.append("Moving", None, None, SMALL)[0] == "OK"
        recreated = env.fresh("Moving")  # deleted and made again by someone else
        typ, data = imap.append("Moving", None, None, SMALL)
        assert typ == "OK", data
        assert appenduid(b"x OK " + data[0])[0] == recreated.uid_validity
        created = env.fresh("CreatedElsewhere")
        typ, data = imap.append("CreatedElsewhere", None, None, SMALL)
        assert typ == "OK", data
        assert appenduid(b"x OK " + data[0])[0] == created.uid_validity

        async def drop():
            for folder in await env.session.store().folders():
                if folder.name == "CreatedElsewhere":
                    await folder.delete()
        env.rt.coro(drop)
        typ, data = imap.append("CreatedElsewhere", None, None, SMALL)
        assert typ == "NO" and b"TRYCREATE" in data[0], data
    finally:
        imap.logout()


def test_multiappend_past_what_fits_inline_stores_all_at_once(env):
    """A MULTIAPPEND (RFC 3502) of more than travels inside one store call: the rest is
    uploaded first (more uploads than a session parks for anything else), then one call
    stores them all."""
    folder = env.fresh("Uploaded")
    line = b"the quick brown fox jumps over the lazy dog %06d\r\n"
    messages = [b"Subject: %d\r\n\r\n" % i + b"".join(line % (i * 10_000 + n) for n in range(3000))
                for i in range(60)]
    raw = env.raw(login=True)
    raw.send(b"a APPEND Uploaded" + b"".join(b" {%d+}\r\n" % len(m) + m for m in messages) + b"\r\n")
    line_ = raw.until(b"a")[-1]
    assert line_.startswith(b"a OK [APPENDUID"), line_
    _, table = env.rt.call(folder.query, ["uid"])
    assert [source_of(env, folder, uid) for uid in table["uid"]] == messages
    raw.close()


def test_fetch_after_append_answers_the_stored_sizes_and_bytes(env):
    """The gateway remembers the sizes of what it appended: a FETCH of those messages reads
    their sources at once, and sizes and bytes are the store's, for an inline literal and
    for one spooled to a file on the way in."""
    folder = env.fresh("ReadBack")
    spooled = b"Subject: big\r\n\r\n" + b"x" * 100 + b"\r\n" * 40_000
    messages = [SMALL, spooled]
    raw = env.raw(login=True)
    raw.cmd("SELECT ReadBack")
    raw.send(b"a APPEND ReadBack" + b"".join(b" {%d+}\r\n" % len(m) + m for m in messages) + b"\r\n")
    line = raw.until(b"a")[-1]
    assert line.startswith(b"a OK [APPENDUID"), line
    first, last = re.search(rb"APPENDUID \d+ (\d+):(\d+)", line).groups()
    uids = [int(first), int(last)]
    for uid, message in zip(uids, messages):
        stored = env.rt.call(folder.message, uid, ["size"])
        assert stored.size == len(message)
        answer = b"".join(raw.cmd(f"UID FETCH {uid} (RFC822.SIZE BODY.PEEK[])"))
        assert b"RFC822.SIZE %d " % len(message) in answer
        assert b"BODY[] {%d}\r\n" % len(message) + message + b")\r\n" in answer
    raw.close()


def test_append_to_the_selected_mailbox_shows_what_the_store_holds(env):
    """The session's own APPEND is queued from the store's answer when nothing came in
    between; interleaved with another session's APPENDs, and with keywords, the mailbox
    still shows exactly the store's uids, flags and modseqs."""
    folder = env.fresh("OwnAppends", 1)
    mine, other = env.raw(login=True), env.raw(login=True)
    mine.cmd("ENABLE CONDSTORE")
    assert b"* 1 EXISTS\r\n" in mine.cmd("SELECT OwnAppends")
    for n, flags in enumerate([b"(\\Seen)", b"(\\Flagged $Label)", b"()", b"(\\Draft \\Deleted)"]):
        if n % 2:
            other.send(b"o%d APPEND OwnAppends {%d+}\r\n" % (n, len(SMALL)) + SMALL + b"\r\n")
            assert other.until(b"o%d" % n)[-1].startswith(b"o%d OK" % n)
        mine.send(b"a%d APPEND OwnAppends %s {%d+}\r\n" % (n, flags, len(SMALL)) + SMALL + b"\r\n")
        assert mine.until(b"a%d" % n)[-1].startswith(b"a%d OK [APPENDUID" % n)
    shown = {}
    for line in mine.cmd("FETCH 1:* (UID FLAGS MODSEQ)"):
        match = re.match(rb"\* \d+ FETCH \(UID (\d+) FLAGS \(([^)]*)\) MODSEQ \((\d+)\)\)", line)
        if match:
            flags = {f for f in match.group(2).decode().split() if f != "\\Recent"}
            shown[int(match.group(1))] = (flags, int(match.group(3)))
    _, table = env.rt.call(folder.query, ["uid", "flags", "keywords", "modseq"])
    stored = {}
    for k, uid in enumerate(table["uid"]):
        names = set(flag_names(table["flags"][k] or 0)) | set((table["keywords"][k] or "").split())
        stored[uid] = (names, table["modseq"][k])
    assert len(stored) == 7 and shown == stored
    mine.close()
    other.close()
