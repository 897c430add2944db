"""MULTIAPPEND (RFC 3502) against a real `groupware serve`: the RFC's example, several messages
with their own flags, dates and literal forms stored byte for byte under one APPENDUID, and all
or none stored when one message fails at the gateway or inside the store's transaction."""
from __future__ import annotations

import re

import pytest

from imap_env import Env

# The gateway takes messages up to 1M; the store only up to 200k, so a 300k message passes the
# gateway and fails inside the store's transaction, after the messages before it were written.
pytestmark = pytest.mark.gateway_env("imap", imap_max_literal="1M", max_message_size="200k",
                                     imap_max_append_messages="5", max_keyword_length="40")

# RFC 3502 §6.3.11, the example's two messages.
FIRST = (b"Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\n"
         b"From: Fred Foobar <foobar@Blurdybloop.example.COM>\r\n"
         b"Subject: afternoon meeting\r\nTo: mooch@owatagu.siam.edu\r\n"
         b"Message-Id: <B27397-0100000@Blurdybloop.example.COM>\r\nMIME-Version: 1.0\r\n"
         b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\r\n"
         b"Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n")
SECOND = (b"Date: Mon, 7 Feb 1994 22:43:04 -0800 (PST)\r\n"
          b"From: Joe Mooch <mooch@OWaTaGu.siam.EDU>\r\n"
          b"Subject: Re: afternoon meeting\r\nTo: foobar@blurdybloop.example.com\r\n"
          b"Message-Id: <a0434793874930@OWaTaGu.siam.EDU>\r\nMIME-Version: 1.0\r\n"
          b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\r\n3:30 is fine with me.\r\n")


def small(i: int) -> bytes:
    return b"From: a@example.com\r\nSubject: part %d\r\n\r\nbody %d\r\n" % (i, i)


def big(i: int, size: int) -> bytes:
    head = b"From: a@example.com\r\nSubject: big %d\r\n\r\n" % i
    line = b"%08d " % i + b"x" * 70 + b"\r\n"
    return head + line * ((size - len(head)) // len(line))


def source_of(env: Env, folder, uid: int) -> bytes:
    href, _ = env.rt.call(folder.open_stream, uid)
    parts: list[bytes] = []
    env.rt.call(folder.stream, href, parts.append)
    return b"".join(parts)


def uids_of(env: Env, folder) -> list[int]:
    _, table = env.rt.call(folder.query, ["uid"])
    return table["uid"]


def uidnext(raw, name: str) -> int:
    return int(re.search(rb"UIDNEXT (\d+)", raw.cmd(f"STATUS {name} (UIDNEXT)")[0]).group(1))


def test_rfc3502_example_with_synchronizing_literals(env):
    folder = env.fresh("saved-messages")
    raw = env.raw(login=True)
    assert b"MULTIAPPEND" in raw.cmd("CAPABILITY")[0].split()
    raw.send(b"A003 APPEND saved-messages (\\Seen) {%d}\r\n" % len(FIRST))
    assert raw.readline().startswith(b"+ ")
    raw.send(FIRST + b" (\\Seen) {%d}\r\n" % len(SECOND))
    assert raw.readline().startswith(b"+ ")
    raw.send(SECOND + b"\r\n")
    line = raw.until(b"A003")[-1]
    match = re.match(rb"A003 OK \[APPENDUID (\d+) (\d+):(\d+)\]", line)
    assert match, line
    assert int(match.group(1)) == folder.uid_validity
    first, last = int(match.group(2)), int(match.group(3))
    assert last == first + 1 and uids_of(env, folder) == [first, last]
    assert source_of(env, folder, first) == FIRST and source_of(env, folder, last) == SECOND
    for uid in (first, last):
        assert env.rt.call(folder.message, uid, ["flags"]).flags == ["\\Seen"]
    raw.close()


def test_messages_keep_their_own_flags_dates_and_bytes(env):
    folder = env.fresh("Several")
    raw = env.raw(login=True)
    assert b"* 0 EXISTS\r\n" in raw.cmd("SELECT Several")
    # Inline and spooled (over 64k) literals, a literal8 with NUL octets, LITERAL+ throughout.
    messages = [small(1), big(2, 150_000), small(3).replace(b"body", b"b\x00dy"), big(4, 100_000)]
    command = (b"a APPEND Several {%d+}\r\n" % len(messages[0]) + messages[0]
               + b' (\\Flagged $Work) "05-Mar-2021 14:07:09 +0100" {%d+}\r\n' % len(messages[1]) + messages[1]
               + b" ~{%d+}\r\n" % len(messages[2]) + messages[2]
               + b' (\\Draft) " 1-Feb-2000 00:00:00 -0500" {%d+}\r\n' % len(messages[3]) + messages[3] + b"\r\n")
    raw.send(command)
    lines = raw.until(b"a")
    assert b"* 4 EXISTS\r\n" in lines, lines
    match = re.match(rb"a OK \[APPENDUID \d+ (\d+):(\d+)\]", lines[-1])
    assert match, lines[-1]
    uids = list(range(int(match.group(1)), int(match.group(2)) + 1))
    assert uids_of(env, folder) == uids
    assert [source_of(env, folder, uid) for uid in uids] == messages
    _, table = env.rt.call(folder.query, ["uid", "internalDate"])
    assert table["internalDate"][1] == 1614949629 and table["internalDate"][3] == 949381200
    assert set(env.rt.call(folder.message, uids[1], ["flags", "keywords"]).flags) == {"\\Flagged", "$Work"}
    assert env.rt.call(folder.message, uids[3], ["flags"]).flags == ["\\Draft"]
    raw.close()


@pytest.mark.parametrize("third, answer", [
    # Over the store's max_message_size: refused inside the transaction.
    (big(3, 300_000), b"NO [TOOBIG]"),
    # A keyword longer than the store allows: refused after the first two were written.
    (None, b"NO [LIMIT]"),
])
def test_a_failing_third_message_stores_none(env, third, answer):
    folder = env.fresh("AllOrNone", 1)
    raw = env.raw(login=True)
    before = uidnext(raw, "AllOrNone")
    flags = b"(k" + b"x" * 60 + b") " if third is None else b""
    third = third or small(3)
    raw.send(b"a APPEND AllOrNone {%d+}\r\n" % len(small(1)) + small(1)
             + b" {%d+}\r\n" % len(small(2)) + small(2)
             + b" " + flags + b"{%d+}\r\n" % len(third) + third
             + b" {%d+}\r\n" % len(small(4)) + small(4) + b"\r\n")
    line = raw.until(b"a")[-1]
    assert line.startswith(b"a " + answer), line
    assert len(uids_of(env, folder)) == 1
    assert raw.cmd("NOOP")[-1].startswith(b"r3 OK")
    # Nothing was half stored: the next APPEND works and the folder has the one message more.
    raw.send(b"b APPEND AllOrNone {%d+}\r\n" % len(small(5)) + small(5) + b"\r\n")
    assert raw.until(b"b")[-1].startswith(b"b OK [APPENDUID")
    assert len(uids_of(env, folder)) == 2 and uidnext(raw, "AllOrNone") >= before + 1
    raw.close()


def test_refusals_before_the_store_is_asked(env):
    folder = env.fresh("Refused")
    raw = env.raw(login=True)
    # An empty message among others.
    raw.send(b"a APPEND Refused {%d+}\r\n" % len(small(1)) + small(1) + b" {0+}\r\n\r\n")
    assert raw.until(b"a")[-1].startswith(b"a NO ")
    # More messages than imap_max_append_messages.
    command = b"b APPEND Refused" + b"".join(b" {%d+}\r\n" % len(small(i)) + small(i) for i in range(6))
    raw.send(command + b"\r\n")
    assert raw.until(b"b")[-1].startswith(b"b NO [LIMIT]")
    # Over APPENDLIMIT on the second message, synchronizing: refused before it is sent.
    raw.send(b"c APPEND Refused {%d}\r\n" % len(small(1)))
    assert raw.readline().startswith(b"+ ")
    raw.send(small(1) + b" {%d}\r\n" % (2 * 1024 * 1024))
    assert raw.readline().startswith(b"c NO [TOOBIG]")
    # A mailbox that is not there.
    raw.send(b"d APPEND Nowhere {%d+}\r\n" % len(small(1)) + small(1) + b" {%d+}\r\n" % len(small(2)) + small(2) + b"\r\n")
    assert raw.until(b"d")[-1].startswith(b"d NO [TRYCREATE]")
    assert uids_of(env, folder) == []
    # Up to the limit is fine.
    command = b"e APPEND Refused" + b"".join(b" {%d+}\r\n" % len(small(i)) + small(i) for i in range(5))
    raw.send(command + b"\r\n")
    assert raw.until(b"e")[-1].startswith(b"e OK [APPENDUID")
    assert len(uids_of(env, folder)) == 5
    raw.close()


def test_imaplib_appends_one_message_as_before(env):
    folder = env.fresh("Single")
    client = env.imap()
    typ, data = client.append("Single", "(\\Seen)", None, FIRST)
    assert typ == "OK" and b"APPENDUID" in data[0]
    assert source_of(env, folder, uids_of(env, folder)[0]) == FIRST
    client.logout()
