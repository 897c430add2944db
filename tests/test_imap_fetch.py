"""FETCH, STORE and CONDSTORE/QRESYNC against a real `groupware serve`, with imaplib and raw sockets."""
from __future__ import annotations

import email
import email.policy
import imaplib
import os
import re
import time

import pytest

from debian import email_corpus
from harness import rss_kb
from imap_env import Env

pytestmark = pytest.mark.gateway_env("imap")

MULTIPART = (b"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: parts\r\n"
             b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n"
             b"preamble\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n"
             b"Content-Transfer-Encoding: quoted-printable\r\n\r\nHall=C3=B6 Welt=\r\n!\r\n"
             b"--XX\r\nContent-Type: message/rfc822\r\n\r\n"
             b"From: inner@example.com\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=YY\r\n\r\n"
             b"--YY\r\nContent-Type: text/plain\r\n\r\ninner plain\r\n--YY\r\nContent-Type: text/html\r\n\r\n"
             b"<p>inner</p>\r\n--YY--\r\n"
             b"\r\n--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
             b"AAECAwQFBgcICQ==\r\n--XX--\r\nepilogue\r\n")


def fill(env: Env, name: str, sources: list[bytes], flags=()):
    folder = env.fresh(name)
    env.rt.call(folder.append_many, sources, flags)
    return folder


def literal_items(m: imaplib.IMAP4, data) -> list[tuple[bytes, bytes]]:
    """imaplib's FETCH answer as (head, literal) pairs."""
    return [item for item in data if isinstance(item, tuple)]


def reuses_boundary(msg, outer=()) -> bool:
    """A nested multipart with its parent's boundary: Python and our BODYSTRUCTURE
    (like Dovecot's) split such a message differently, so part numbers disagree."""
    boundary = msg.get_boundary()
    if boundary is not None and boundary in outer:
        return True
    if msg.get_content_maintype() == "multipart" and isinstance(msg.get_payload(), list):
        return any(reuses_boundary(part, outer + (boundary,)) for part in msg.get_payload())
    return False


# -- items from the listing ----------------------------------------------------------------

def test_metadata_items_and_macros(env):
    fill(env, "meta", [MULTIPART, b"Subject: plain\r\n\r\nhello\r\n"], flags=["\\Flagged", "$Forwarded"])
    raw = env.raw(login=True)
    raw.cmd("SELECT meta")
    lines = raw.cmd("FETCH 1:2 (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY)")
    assert lines[-1].startswith(b"r3 OK")
    first = lines[0]
    assert first.startswith(b"* 1 FETCH (UID 1 FLAGS (\\Flagged $Forwarded) INTERNALDATE \"")
    assert b"RFC822.SIZE %d " % len(MULTIPART) in first
    assert b'ENVELOPE (NIL "parts" (("Alice" NIL "alice" "example.com"))' in first
    assert b'BODYSTRUCTURE (("text" "plain" ("charset" "utf-8") NIL NIL "QUOTED-PRINTABLE"' in first
    assert b' "mixed" ("boundary" "XX") NIL NIL NIL) BODY (("text" "plain"' in first
    assert lines[1].startswith(b'* 2 FETCH (UID 2 FLAGS (\\Flagged $Forwarded) INTERNALDATE "')
    fast = raw.cmd("FETCH 2 FAST")[0]
    assert re.match(rb'\* 2 FETCH \(FLAGS \(\\Flagged \$Forwarded\) INTERNALDATE "[^"]+" RFC822.SIZE 25\)\r\n', fast)
    full = raw.cmd("FETCH 2 FULL")[0]
    assert b"ENVELOPE (NIL \"plain\"" in full and b"BODY (\"text\" \"plain\"" in full
    every = raw.cmd("FETCH 2 ALL")[0]
    assert b"ENVELOPE" in every and b"BODY " not in every
    # UID FETCH adds UID; MODSEQ turns CONDSTORE on.
    assert raw.cmd("UID FETCH 2 FLAGS")[0] == b"* 2 FETCH (UID 2 FLAGS (\\Flagged $Forwarded))\r\n"
    lines = raw.cmd("FETCH 1 MODSEQ")
    assert lines[0].startswith(b"* OK [HIGHESTMODSEQ ")  # RFC 7162 §3.1, once
    assert re.match(rb"\* 1 FETCH \(MODSEQ \(\d+\)\)\r\n", lines[1])
    assert raw.cmd("FETCH 3 UID")[-1].startswith(b"r9 BAD")
    assert raw.cmd("UID FETCH 3:9 UID") == [b"r10 OK UID FETCH completed\r\n"]
    raw.close()


def test_uid_fetch_uid_flags_on_a_big_folder_is_quick(env):
    count = 20000
    folder = env.fresh("bigmeta")
    for start in range(0, count, 5000):
        env.rt.call(folder.append_many, [b"Subject: %d\r\n\r\nx\r\n" % i for i in range(start, start + 5000)],
                    ["\\Seen"])
    raw = env.raw(login=True)
    raw.cmd("SELECT bigmeta")
    start = time.perf_counter()
    lines = raw.cmd("UID FETCH 1:* (UID FLAGS)")
    elapsed = time.perf_counter() - start
    assert len(lines) == count + 1 and lines[-1].startswith(b"r3 OK")
    assert lines[count - 1] == b"* %d FETCH (UID %d FLAGS (\\Seen))\r\n" % (count, count)
    assert elapsed < 2.0, elapsed
    start = time.perf_counter()
    lines = raw.cmd("FETCH 1:* (RFC822.SIZE INTERNALDATE)")
    assert len(lines) == count + 1 and time.perf_counter() - start < 5
    raw.close()


# -- bodies --------------------------------------------------------------------------------

def test_sections_of_a_nested_message(env):
    fill(env, "sections", [MULTIPART])
    raw = env.raw(login=True)
    raw.cmd("EXAMINE sections")

    def section(spec: str) -> bytes:
        lines = raw.cmd(f"FETCH 1 ({spec})")
        assert lines[-1].split()[1] == b"OK", lines
        blob = b"".join(lines[:-1])
        m = re.search(rb"\{(\d+)\}\r\n", blob)
        if m is None:
            return blob
        n = int(m.group(1))
        return blob[m.end():m.end() + n]

    header_end = MULTIPART.index(b"\r\n\r\n") + 4
    assert section("BODY.PEEK[]") == MULTIPART
    assert section("BODY.PEEK[HEADER]") == MULTIPART[:header_end]
    assert section("BODY.PEEK[TEXT]") == MULTIPART[header_end:]
    assert section("RFC822.HEADER") == MULTIPART[:header_end]
    assert section("BODY.PEEK[1]") == b"Hall=C3=B6 Welt=\r\n!"
    assert section("BODY.PEEK[1.MIME]") == (b"Content-Type: text/plain; charset=utf-8\r\n"
                                            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n")
    inner = section("BODY.PEEK[2]")
    assert inner.startswith(b"From: inner@example.com\r\n") and inner.endswith(b"--YY--\r\n")
    assert section("BODY.PEEK[2.HEADER]").endswith(b"boundary=YY\r\n\r\n")
    assert section("BODY.PEEK[2.1]") == b"inner plain"
    assert section("BODY.PEEK[2.2]") == b"<p>inner</p>"
    assert section("BODY.PEEK[2.2.MIME]") == b"Content-Type: text/html\r\n\r\n"
    assert section("BODY.PEEK[2.TEXT]").startswith(b"--YY\r\n")
    assert section("BODY.PEEK[3]") == b"AAECAwQFBgcICQ=="
    assert section("BINARY.PEEK[3]") == bytes(range(10))
    assert b"~{10}\r\n" in b"".join(raw.cmd("FETCH 1 (BINARY.PEEK[3])"))  # NUL: literal8
    assert section("BINARY.PEEK[1]") == "Hallö Welt!".encode()
    assert b"BINARY.SIZE[3] 10" in section("BINARY.SIZE[3]")
    assert section("BODY.PEEK[HEADER.FIELDS (SUBJECT from)]") == (
        b"From: Alice <alice@example.com>\r\nSubject: parts\r\n\r\n")
    assert section("BODY.PEEK[HEADER.FIELDS.NOT (Subject From To MIME-Version)]") == (
        b'Content-Type: multipart/mixed; boundary="XX"\r\n\r\n')
    assert section("BODY.PEEK[]<6.5>") == MULTIPART[6:11]
    assert b"BODY[]<6> {5}" in b"".join(raw.cmd("FETCH 1 BODY.PEEK[]<6.5>"))
    assert section("BODY.PEEK[1]<5.100>") == b"C3=B6 Welt=\r\n!"
    assert section("BODY.PEEK[]<100000.10>") == b""
    assert b"BODY[9] NIL" in section("BODY.PEEK[9]")
    assert section("RFC822.TEXT") == MULTIPART[header_end:]  # EXAMINE: no \Seen
    assert b"FLAGS ()" in b"".join(raw.cmd("FETCH 1 FLAGS"))
    raw.close()


def test_non_peek_fetch_sets_seen_and_reports_flags(env):
    fill(env, "seen", [b"Subject: a\r\n\r\none\r\n", b"Subject: b\r\n\r\ntwo\r\n", b"Subject: c\r\n\r\n3\r\n"])
    m = env.imap()
    m.select("seen")
    typ, data = m.fetch("1", "(BODY.PEEK[])")
    assert b"FLAGS" not in data[0][0]
    typ, data = m.fetch("1:2", "(BODY[TEXT])")
    assert typ == "OK"
    heads = [item[0] for item in literal_items(m, data)]
    tails = [item for item in data if isinstance(item, bytes)]
    assert all(b"FLAGS (\\Seen)" in h or any(b"FLAGS (\\Seen)" in t for t in tails) for h in heads)
    assert m.fetch("1:3", "FLAGS")[1] == [b"1 (FLAGS (\\Seen))", b"2 (FLAGS (\\Seen))", b"3 (FLAGS ())"]
    typ, data = m.uid("FETCH", "3", "(RFC822)")
    assert typ == "OK" and literal_items(m, data)[0][1] == b"Subject: c\r\n\r\n3\r\n"
    assert m.fetch("3", "FLAGS")[1] == [b"3 (FLAGS (\\Seen))"]
    m.logout()


def test_every_corpus_message_comes_back_byte_for_byte(env):
    files = email_corpus()
    sources = [open(path, "rb").read() for path in files]
    fill(env, "corpus", sources)
    m = env.imap()
    m.select("corpus", readonly=True)
    typ, data = m.fetch("1:*", "(RFC822.SIZE BODY.PEEK[])")
    assert typ == "OK"
    got = literal_items(m, data)
    assert [item[1] for item in got] == sources
    for (head, _), source in zip(got, sources):
        assert b"RFC822.SIZE %d " % len(source) in head
    # Header and text add up to the message; every leaf part decodes as Python decodes it.
    typ, data = m.fetch("1:*", "(BODY.PEEK[HEADER] BODY.PEEK[TEXT])")
    pieces = literal_items(m, data)
    for k, source in enumerate(sources):
        assert pieces[2 * k][1] + pieces[2 * k + 1][1] == source
    checked = 0
    for n, source in enumerate(sources, start=1):
        msg = email.message_from_bytes(source, policy=email.policy.compat32)
        if not msg.is_multipart() or msg.get_content_maintype() != "multipart" or reuses_boundary(msg):
            continue
        for k, part in enumerate(msg.get_payload(), start=1):
            if part.is_multipart() or part.get_content_maintype() == "message":
                continue
            cte = (part.get("Content-Transfer-Encoding") or "").strip().lower()
            if cte not in ("base64", "quoted-printable"):
                continue
            typ, data = m.fetch(str(n), f"(BINARY.PEEK[{k}])")
            if typ != "OK" or not literal_items(m, data):
                continue
            assert literal_items(m, data)[0][1] == part.get_payload(decode=True), (files[n - 1], k)
            checked += 1
    assert checked >= 5
    m.logout()


def test_many_small_bodies_in_batches(env):
    sources = [b"Subject: m%d\r\n\r\n" % i + os.urandom(200 + 37 * i).hex().encode() + b"\r\n"
               for i in range(400)]
    fill(env, "many", sources)
    raw = env.raw(login=True)
    raw.cmd("EXAMINE many")
    raw.send(b"f FETCH 1:* (UID BODY.PEEK[])\r\n")
    for n, source in enumerate(sources, start=1):
        head = raw.readline()
        assert head == b"* %d FETCH (UID %d BODY[] {%d}\r\n" % (n, n, len(source)), head
        assert raw.file.read(len(source)) == source
        assert raw.readline() == b")\r\n"
    assert raw.readline().startswith(b"f OK")
    raw.close()


def test_fifty_megabytes_stream_without_being_held(env, tmp_path):
    path = tmp_path / "big.eml"
    boundary = b"BIGBIG"
    chunk = (b"A" * 76 + b"\r\n") * 13000  # ~1 MB of base64-looking lines
    with open(path, "wb") as fp:
        fp.write(b"Subject: big\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=BIGBIG\r\n\r\n")
        fp.write(b"--BIGBIG\r\nContent-Type: text/plain\r\n\r\nsmall first part\r\n")
        fp.write(b"--BIGBIG\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
        for _ in range(50):
            fp.write(chunk)
        fp.write(b"--" + boundary + b"--\r\n")
    size = os.path.getsize(path)
    folder = env.fresh("bigmsg")
    env.rt.call(folder.append, str(path))
    raw = env.raw(login=True)
    raw.cmd("SELECT bigmsg")
    pid = env.server.pid()
    before = rss_kb(pid)
    raw.send(b"b FETCH 1 (BODY.PEEK[])\r\n")
    head = raw.readline()
    assert head == b"* 1 FETCH (BODY[] {%d}\r\n" % size
    peak, left = before, size
    with open(path, "rb") as fp:
        while left:
            data = raw.file.read(min(left, 1 << 20))
            assert data == fp.read(len(data))
            left -= len(data)
            peak = max(peak, rss_kb(pid))
            time.sleep(0.005)  # a slowish reader is the case under test
    assert raw.readline() == b")\r\n" and raw.readline().startswith(b"b OK")
    assert peak - before < 20 * 1024, (before, peak)
    # Sections of the big message: located, then read by range.
    lines = raw.cmd("FETCH 1 (BODY.PEEK[1] BODY.PEEK[HEADER] BODY.PEEK[2]<1000.10> BINARY.SIZE[1])")
    text = b"".join(lines)
    assert b"BODY[1] {16}\r\nsmall first part" in text
    assert b"BODY[2]<1000> {10}\r\n" + chunk[1000:1010] in text
    assert b"BINARY.SIZE[1] 16" in text and b"Subject: big\r\n" in text
    raw.close()


def test_partial_of_a_big_message_reads_only_its_range(env, tmp_path):
    path = tmp_path / "big2.eml"
    with open(path, "wb") as fp:
        fp.write(b"Subject: big2\r\n\r\n")
        for i in range(200000):
            fp.write(b"%09d\r\n" % i)
    folder = env.fresh("bigpartial")
    env.rt.call(folder.append, str(path))
    raw = env.raw(login=True)
    raw.cmd("EXAMINE bigpartial")
    start = time.perf_counter()
    lines = raw.cmd("FETCH 1 (BODY.PEEK[TEXT]<1100000.22> BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert time.perf_counter() - start < 1.0
    text = b"".join(lines)
    assert b"BODY[TEXT]<1100000> {22}\r\n000100000\r\n000100001\r\n" in text
    assert b"Subject: big2\r\n\r\n" in text
    raw.close()


def test_partials_and_headers_of_mid_sized_messages(env):
    sources = [b"Subject: mid %d\r\nX-Pad: %s\r\n\r\n" % (n, b"p" * n) + b"".join(b"%07d\r\n" % i for i in range(30000))
               for n in range(3)]
    fill(env, "midsized", sources)
    raw = env.raw(login=True)
    raw.cmd("EXAMINE midsized")
    lines = raw.cmd("FETCH 1:3 (BODY.PEEK[]<100000.18> BODY.PEEK[TEXT]<9.9> BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    text = b"".join(lines)
    for n, source in enumerate(sources, start=1):
        body = source.index(b"\r\n\r\n") + 4
        assert (b"* %d FETCH (BODY[]<100000> {18}\r\n" % n + source[100000:100018]
                + b" BODY[TEXT]<9> {9}\r\n" + source[body + 9:body + 18]
                + b" BODY[HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: mid %d\r\n\r\n)" % (n - 1)) in text
    assert lines[-1].startswith(b"r3 OK")
    raw.close()


# -- STORE ---------------------------------------------------------------------------------

def test_store_flags_and_keywords(env):
    fill(env, "storing", [b"Subject: %d\r\n\r\nx\r\n" % i for i in range(5)])
    raw = env.raw(login=True)
    raw.cmd("SELECT storing")
    lines = raw.cmd("STORE 1:3 +FLAGS (\\Seen $Label1)")
    # A keyword new to the mailbox is announced first (FLAGS, PERMANENTFLAGS).
    assert lines[0].startswith(b"* FLAGS (") and lines[0].endswith(b" $Label1)\r\n")
    assert lines[1].startswith(b"* OK [PERMANENTFLAGS (")
    assert lines[2:5] == [b"* %d FETCH (FLAGS (\\Seen $Label1))\r\n" % n for n in (1, 2, 3)]
    assert lines[5].startswith(b"r3 OK")
    lines = raw.cmd("UID STORE 2 -FLAGS ($Label1)")
    assert lines[0] == b"* 2 FETCH (UID 2 FLAGS (\\Seen))\r\n"
    assert raw.cmd("STORE 4 +FLAGS.SILENT (\\Deleted)") == [b"r5 OK STORE completed\r\n"]
    lines = raw.cmd("STORE 5 FLAGS (\\Answered \\Draft Junk)")
    assert lines[0].endswith(b" $Label1 Junk)\r\n")
    assert lines[2] == b"* 5 FETCH (FLAGS (\\Answered \\Draft Junk))\r\n"
    assert raw.cmd("FETCH 1:5 FLAGS")[:5] == [
        b"* 1 FETCH (FLAGS (\\Seen $Label1))\r\n", b"* 2 FETCH (FLAGS (\\Seen))\r\n",
        b"* 3 FETCH (FLAGS (\\Seen $Label1))\r\n", b"* 4 FETCH (FLAGS (\\Deleted))\r\n",
        b"* 5 FETCH (FLAGS (\\Answered \\Draft Junk))\r\n"]
    assert raw.cmd("STORE 9 +FLAGS (\\Seen)")[-1].startswith(b"r8 BAD")
    assert raw.cmd("STORE 5 FLAGS ()")[0] == b"* 5 FETCH (FLAGS ())\r\n"
    assert raw.cmd("STORE 5 FLAGS (\\Answered \\Draft Junk)")[0] == b"* 5 FETCH (FLAGS (\\Answered \\Draft Junk))\r\n"
    # Another session sees the change.
    m = env.imap()
    m.select("storing")
    assert m.fetch("1", "FLAGS")[1] == [b"1 (FLAGS (\\Seen $Label1))"]
    m.logout()
    raw.cmd("EXAMINE storing")
    assert raw.cmd("STORE 1 +FLAGS (\\Flagged)")[-1].startswith(b"r12 NO")
    raw.close()


def test_store_unchangedsince_reports_modified(env):
    fill(env, "condstore", [b"Subject: %d\r\n\r\nx\r\n" % i for i in range(3)])
    raw = env.raw(login=True)
    lines = raw.cmd("SELECT condstore (CONDSTORE)")
    highest = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"".join(lines)).group(1))
    modseqs = {}
    for line in raw.cmd("FETCH 1:3 (MODSEQ)")[:-1]:
        n, ms = re.match(rb"\* (\d+) FETCH \(MODSEQ \((\d+)\)\)", line).groups()
        modseqs[int(n)] = int(ms)
    lines = raw.cmd("STORE 1 (UNCHANGEDSINCE %d) +FLAGS (\\Seen)" % modseqs[1])
    m = re.match(rb"\* 1 FETCH \(FLAGS \(\\Seen\) MODSEQ \((\d+)\)\)", lines[0])
    assert m and int(m.group(1)) > highest
    # Message 1 has changed since: the conditional store leaves it and says so.
    lines = raw.cmd("STORE 1:2 (UNCHANGEDSINCE %d) +FLAGS (\\Flagged)" % modseqs[2])
    assert lines[-1] == b"r5 OK [MODIFIED 1] Conditional STORE failed for some messages\r\n"
    assert lines[0].startswith(b"* 2 FETCH (FLAGS (\\Flagged) MODSEQ (")
    lines = raw.cmd("UID STORE 1:3 (UNCHANGEDSINCE 1) -FLAGS.SILENT (\\Seen)")
    assert lines[-1].startswith(b"r6 OK [MODIFIED 1:3]")
    raw.close()


# -- CONDSTORE / QRESYNC -------------------------------------------------------------------

def test_changedsince_and_qresync(env):
    folder = fill(env, "qresync", [b"Subject: %d\r\n\r\nx\r\n" % i for i in range(6)])
    raw = env.raw(login=True)
    assert b"CONDSTORE" in raw.cmd("CAPABILITY")[0] and b"QRESYNC" in raw.cmd("CAPABILITY")[0]
    lines = raw.cmd("ENABLE QRESYNC")
    assert lines[0] == b"* ENABLED QRESYNC\r\n"
    lines = raw.cmd("SELECT qresync")
    text = b"".join(lines)
    validity = int(re.search(rb"UIDVALIDITY (\d+)", text).group(1))
    highest = int(re.search(rb"HIGHESTMODSEQ (\d+)", text).group(1))
    raw.cmd("UNSELECT")
    # Elsewhere: one message flagged, two expunged.
    env.rt.call(folder.set_flags, [2], "add", ["\\Flagged"])
    env.rt.call(folder.delete_items, [4, 5])
    lines = raw.cmd("SELECT qresync (QRESYNC (%d %d 1:6))" % (validity, highest))
    assert b"* VANISHED (EARLIER) 4:5\r\n" in lines
    flagged = [line for line in lines if b"FETCH" in line]
    assert len(flagged) == 1 and flagged[0].startswith(b"* 2 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ (")
    assert lines[-1].startswith(b"r7 OK [READ-WRITE]")
    # FETCH CHANGEDSINCE names only what changed; VANISHED reports what went.
    lines = raw.cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % highest)
    assert lines[0] == b"* VANISHED (EARLIER) 4:5\r\n"
    assert lines[1].startswith(b"* 2 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ (") and len(lines) == 3
    assert raw.cmd("FETCH 1:* (FLAGS) (CHANGEDSINCE 999999999)") == [b"r9 OK FETCH completed\r\n"]
    # A stale UIDVALIDITY gets a plain SELECT.
    lines = raw.cmd("SELECT qresync (QRESYNC (%d %d))" % (validity + 1, highest))
    assert not any(b"VANISHED" in line or b"FETCH" in line for line in lines)
    assert lines[0] == b"* OK [CLOSED] Previous mailbox closed\r\n"
    raw.close()


def test_listing_cache_stays_within_its_bytes():
    from gateways.imap.listing_cache import ListingCache
    cache = ListingCache(max_bytes=10_000)
    for uid in range(1, 200):
        cache.put((1, 7, uid), {"ENVELOPE": b"x" * 100, "RFC822.SIZE": 5})
    assert cache.bytes <= 10_000
    assert cache.get((1, 7, 1)) is None and cache.get((1, 7, 199))["RFC822.SIZE"] == 5
    cache.put((1, 7, 500), {"ENVELOPE": b"y" * 20_000})  # bigger than the whole cache: not kept
    assert cache.get((1, 7, 500)) is None and cache.bytes <= 10_000
    cache.resize(1_000)  # imap_listing_cache, applied when the gateway starts
    assert 0 < cache.bytes <= 1_000 and cache.get((1, 7, 199)) is not None


def test_fetch_of_a_message_expunged_elsewhere(env):
    folder = fill(env, "expunged", [b"Subject: %d\r\n\r\nbody %d\r\n" % (i, i) for i in range(3)])
    raw = env.raw(login=True)
    raw.cmd("SELECT expunged")
    # Every session with the folder open hears of changes from the one long-poll per
    # folder, in the order they opened it: once a later idling session is told, so is raw.
    observer = env.raw(login=True)
    observer.cmd("EXAMINE expunged")
    observer.send(b"i IDLE\r\n")
    assert observer.readline() == b"+ idling\r\n"
    env.rt.call(folder.delete_items, [2])
    while observer.readline() != b"* 2 EXPUNGE\r\n":
        pass
    observer.close()
    # The push has come; FETCH may not announce the expunge.
    lines = raw.cmd("FETCH 1:3 (BODY.PEEK[])")
    assert lines[-1].startswith(b"r3 NO [EXPUNGEISSUED]")
    assert not any(b"EXPUNGE\r\n" in line for line in lines[:-1])
    text = b"".join(lines)
    assert b"* 1 FETCH (BODY[] {22}\r\nSubject: 0\r\n\r\nbody 0\r\n)" in text
    assert b"* 3 FETCH (BODY[] {22}\r\nSubject: 2\r\n\r\nbody 2\r\n)" in text
    # UID FETCH may carry it; afterwards message 2 is the former 3.
    assert raw.cmd("UID FETCH 1:* (UID)") == [b"* 1 FETCH (UID 1)\r\n", b"* 2 FETCH (UID 2)\r\n",
                                              b"* 3 FETCH (UID 3)\r\n", b"* 2 EXPUNGE\r\n",
                                              b"r4 OK UID FETCH completed\r\n"]
    assert raw.cmd("FETCH 2 (UID)")[0] == b"* 2 FETCH (UID 3)\r\n"
    raw.close()


def test_binary_of_an_unknown_encoding_and_a_header_only_message(env):
    odd = (b"Subject: odd\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
           b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n--B--\r\n")
    fill(env, "oddities", [odd, b"Subject: only a header\r\nFrom: a@b.example\r\n"])
    raw = env.raw(login=True)
    raw.cmd("EXAMINE oddities")
    assert raw.cmd("FETCH 1 (BINARY.PEEK[1])")[-1].startswith(b"r3 NO [UNKNOWN-CTE]")
    text = b"".join(raw.cmd("FETCH 2 (BODY.PEEK[HEADER] BODY.PEEK[TEXT] BODY.PEEK[1])"))
    assert b"BODY[HEADER] {43}\r\nSubject: only a header\r\nFrom: a@b.example\r\n" in text
    assert b"BODY[TEXT] {0}\r\n" in text and b"BODY[1] {0}\r\n" in text
    raw.close()
