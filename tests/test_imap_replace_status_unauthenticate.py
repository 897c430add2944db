"""REPLACE (RFC 8508), STATUS=SIZE (RFC 8438) and UNAUTHENTICATE (RFC 8437) against a real
`groupware serve`, following each RFC's example exchange."""
from __future__ import annotations

import imaplib
import re

import pytest

from imap_env import Env

pytestmark = pytest.mark.gateway_env("imap")

# RFC 8508 §3.5's draft, twice edited.
DRAFT = (b"Date: Thu, 1 Jan 2015 00:05:00 -0500 (EST)\r\nFrom: Fritz Schmidt <fritz.ch@example.net>\r\n"
         b"Subject: happy new year !!\r\nTo: miss.mitzy@example.com\r\nMessage-Id: <B238822388-0100000@example.net>\r\n"
         b"MIME-Version: 1.0\r\nContent-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\r\n%s\r\n")


def draft(text: bytes) -> bytes:
    return DRAFT % text


def sources(env: Env, folder) -> dict[int, bytes]:
    _, table = env.rt.call(folder.query, ["uid"])
    out = {}
    for uid in table["uid"]:
        href, _ = env.rt.call(folder.open_stream, uid)
        parts: list[bytes] = []
        env.rt.call(folder.stream, href, parts.append)
        out[uid] = b"".join(parts)
    return out


def exists_after(count: int, lines: list[bytes]) -> int:
    """The message count a client that had `count` messages has after these responses."""
    for line in lines:
        if match := re.match(rb"\* (\d+) (EXISTS|EXPUNGE)\r\n", line):
            count = int(match.group(1)) if match.group(2) == b"EXISTS" else count - 1
    return count


def test_replace_in_the_same_mailbox_rfc8508_example(env):
    folder = env.fresh("Drafts", 3)
    raw = env.raw(login=True)
    assert b"REPLACE" in raw.cmd("CAPABILITY")[0].split()
    raw.send(b"a APPEND Drafts (\\Seen \\Draft) {%d+}\r\n" % len(draft(b"first")) + draft(b"first") + b"\r\n")
    assert raw.until(b"a")[-1].startswith(b"a OK")
    assert b"* 4 EXISTS\r\n" in raw.cmd("SELECT Drafts")
    new = draft(b"Happy new year!")
    raw.send(b"A003 REPLACE 4 Drafts (\\Seen \\Draft) {%d}\r\n" % len(new))
    assert raw.readline().startswith(b"+ ")
    raw.send(new + b"\r\n")
    lines = raw.until(b"A003")
    assert re.match(rb"\* OK \[APPENDUID %d (\d+)\] " % folder.uid_validity, lines[0]), lines
    # The RFC shows "* 5 EXISTS" then "* 4 EXPUNGE"; the other order says the same.
    assert b"* 4 EXPUNGE\r\n" in lines and exists_after(4, lines) == 4, lines
    assert lines[-1].startswith(b"A003 OK")
    replaced = int(re.search(rb"APPENDUID \d+ (\d+)", lines[0]).group(1))
    stored = sources(env, folder)
    assert len(stored) == 4 and stored[replaced] == new
    # UID REPLACE, with a literal8.
    newer = draft(b"Happy new year, again!")
    raw.send(b"B004 UID REPLACE %d Drafts (\\Seen \\Draft) ~{%d+}\r\n" % (replaced, len(newer)) + newer + b"\r\n")
    lines = raw.until(b"B004")
    assert lines[-1].startswith(b"B004 OK") and b"* 4 EXPUNGE\r\n" in lines, lines
    assert newer in sources(env, folder).values() and new not in sources(env, folder).values()
    # A draft with a big attachment: its literal is spooled as APPEND's are, and over
    # the line limit that bounds other commands' literals.
    biggest = draft(b"attached:\r\n" + b"0123456789abcdef" * 20_000)
    uid = max(sources(env, folder))
    raw.send(b"C005 UID REPLACE %d Drafts (\\Draft) {%d}\r\n" % (uid, len(biggest)))
    assert raw.readline().startswith(b"+ ")
    raw.send(biggest + b"\r\n")
    assert raw.until(b"C005")[-1].startswith(b"C005 OK")
    stored = sources(env, folder)
    assert biggest in stored.values() and newer not in stored.values() and len(stored) == 4
    raw.close()


def test_replace_into_another_mailbox_and_refusals(env):
    drafts = env.fresh("Drafts2", 2)
    archive = env.fresh("Archive2")
    raw = env.raw(login=True)
    assert b"* 2 EXISTS\r\n" in raw.cmd("SELECT Drafts2")
    new = draft(b"sent version")
    raw.send(b"A004 REPLACE 2 Archive2 (\\Seen) {%d+}\r\n" % len(new) + new + b"\r\n")
    lines = raw.until(b"A004")
    assert re.match(rb"\* OK \[APPENDUID %d \d+\]" % archive.uid_validity, lines[0]), lines
    assert lines[1:-1] == [b"* 2 EXPUNGE\r\n"] and lines[-1].startswith(b"A004 OK"), lines
    assert list(sources(env, archive).values()) == [new] and len(sources(env, drafts)) == 1
    # The new message cannot be stored: the old one stays.
    raw.send(b"b REPLACE 1 Nowhere {%d+}\r\n" % len(new) + new + b"\r\n")
    assert raw.until(b"b")[-1].startswith(b"b NO [TRYCREATE]")
    raw.send(b"c REPLACE 1 Archive2 {0+}\r\n\r\n")
    assert raw.until(b"c")[-1].startswith(b"c NO")
    assert len(sources(env, drafts)) == 1
    # No such message.
    raw.send(b"d REPLACE 9 Archive2 {%d+}\r\n" % len(new) + new + b"\r\n")
    assert raw.until(b"d")[-1].startswith(b"d BAD")
    raw.send(b"e UID REPLACE 999 Archive2 {%d+}\r\n" % len(new) + new + b"\r\n")
    assert raw.until(b"e")[-1].startswith(b"e NO [NONEXISTENT]")
    # A read-only mailbox keeps its message.
    raw.cmd("EXAMINE Drafts2")
    raw.send(b"f REPLACE 1 Archive2 {%d+}\r\n" % len(new) + new + b"\r\n")
    assert raw.until(b"f")[-1].startswith(b"f NO [READ-ONLY]")
    assert len(sources(env, drafts)) == 1 and len(sources(env, archive)) == 1
    # Not in the authenticated state.
    raw.cmd("UNSELECT")
    raw.send(b"g REPLACE 1 Archive2 {%d+}\r\n" % len(new) + new + b"\r\n")
    assert raw.until(b"g")[-1].startswith(b"g BAD")
    raw.close()


def test_status_size_rfc8438(env):
    env.fresh("Sized", 5)
    raw = env.raw(login=True)
    assert b"STATUS=SIZE" in raw.cmd("CAPABILITY")[0].split()
    line = raw.cmd("STATUS Sized (MESSAGES SIZE)")[0]
    match = re.match(rb"\* STATUS Sized \(MESSAGES 5 SIZE (\d+)\)", line)
    assert match, line
    raw.cmd("SELECT Sized")
    sizes = [int(n) for n in re.findall(rb"RFC822.SIZE (\d+)", b"".join(raw.cmd("FETCH 1:* RFC822.SIZE")))]
    assert len(sizes) == 5 and int(match.group(1)) == sum(sizes)
    # In LIST-STATUS too.
    listed = b"".join(raw.cmd('LIST "" Sized RETURN (STATUS (SIZE))'))
    assert b"(SIZE %d)" % sum(sizes) in listed
    raw.close()


def test_unauthenticate_rfc8437(env):
    env.fresh("Once", 1)
    raw = env.raw(login=True)
    assert b"UNAUTHENTICATE" in raw.cmd("CAPABILITY")[0].split()
    raw.cmd("ENABLE CONDSTORE")
    assert b"* 1 EXISTS\r\n" in raw.cmd("SELECT Once")
    assert raw.cmd("UNAUTHENTICATE")[-1].startswith(b"r5 OK")
    # Back to the not authenticated state: login commands again, nothing else.
    caps = raw.cmd("CAPABILITY")[0].split()
    assert b"AUTH=PLAIN" in caps and b"LITERAL-" in caps
    assert raw.cmd("SELECT Once")[-1].startswith(b"r7 BAD")
    assert raw.cmd("FETCH 1 FLAGS")[-1].startswith(b"r8 BAD")
    assert raw.cmd("UNAUTHENTICATE")[-1].startswith(b"r9 BAD")
    assert raw.cmd(f"LOGIN demo {env.password}")[-1].startswith(b"r10 OK")
    # ENABLE is forgotten with the session: no MODSEQ until the client asks again.
    raw.cmd("SELECT Once")
    assert b"MODSEQ" not in raw.cmd("FETCH 1 FLAGS")[0]
    assert raw.cmd("LOGOUT")[-1].startswith(b"r13 OK")
    raw.close()
    # imaplib knows no UNAUTHENTICATE, but carries it once told in which states it may go.
    imaplib.Commands.setdefault("UNAUTHENTICATE", ("AUTH", "SELECTED"))
    client = env.imap()
    typ, _ = client._simple_command("UNAUTHENTICATE")
    assert typ == "OK"
    client.state = "NONAUTH"
    assert client.login("demo", env.password)[0] == "OK"
    assert client.select("Once")[0] == "OK"
    client.logout()
