"""CATENATE (RFC 4469) through `groupware serve` over a raw socket: the RFC's own
example (a draft made of another draft's header, a new text part and one of its
body parts), URLs relative to the selected mailbox, BADURL for what does not
exist (nothing stored, MULTIAPPEND included), TOOBIG past the APPEND limits."""
from __future__ import annotations

import re

import pytest

MAX_LITERAL = 200_000
pytestmark = pytest.mark.gateway_env("imap", imap_max_literal=str(MAX_LITERAL))

HEADER = (b"From: Alice <alice@example.org>\r\nTo: Bob <bob@example.org>\r\nSubject: draft\r\n"
          b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n")
PART_MIME = b"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
PART_BODY = b"The first part's text.\r\n"
ATTACHMENT = (b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
              b"AAECAwQFBgcICQ==\r\n")
DRAFT = (HEADER + b"--b1\r\n" + PART_MIME + PART_BODY + b"\r\n--b1\r\n" + ATTACHMENT + b"\r\n--b1--\r\n")
FORWARDED = b"From: carol@example.org\r\nSubject: forwarded\r\n\r\nCarol's words.\r\n"
# Over the 64 KB a literal or a made message is kept in memory for: spooled to disk.
BIG = b"Subject: big\r\n\r\n" + b"0123456789abcdef" * 4500 + b"\r\n"


@pytest.fixture(scope="module")
def drafts(env):
    folder = env.fresh("CatDrafts")
    env.rt.call(folder.append, DRAFT)
    env.rt.call(folder.append, FORWARDED)
    env.rt.call(folder.append, BIG)
    return env.rt.call(folder.refresh).uid_validity


def answer(lines: list[bytes]) -> bytes:
    return lines[-1].split(b" ", 1)[1]


def literal(data: bytes) -> bytes:
    return b"{%d+}\r\n" % len(data) + data


def stored(env, uid: int) -> bytes:
    message = env.rt.call(env.folder("CatDrafts").message, uid, ["uid", "size"])
    return env.rt.call(message.source)


def count(env) -> int:
    return env.rt.call(env.folder("CatDrafts").refresh).count


def appended_uid(lines: list[bytes]) -> int:
    return int(re.search(rb"\[APPENDUID \d+ (\d+)\]", lines[-1]).group(1))


def test_catenate_is_advertised(env):
    raw = env.raw(login=True)
    assert b" CATENATE" in raw.cmd("CAPABILITY")[0]
    raw.close()


def test_rfc_4469_example(env, drafts):
    """§4: header of one draft, a new delimiter, a part's MIME header and body, then
    a whole other message as the next part, each between TEXT literals."""
    base = f"/CatDrafts;UIDVALIDITY={drafts}/;UID=1".encode()
    boundary = b"\r\n--------------030308070208000400050907\r\n"
    last = b"\r\n--------------030308070208000400050907--\r\n"
    raw = env.raw(login=True)
    lines = raw.cmd(b"APPEND CatDrafts (\\Seen \\Draft $MDNSent) CATENATE (URL \"" + base + b"/;section=HEADER\" TEXT "
                    + literal(boundary) + b" URL \"" + base + b"/;section=1.MIME\" URL \"" + base
                    + b"/;section=1\" TEXT " + literal(boundary) + b" URL \"/CatDrafts;UIDVALIDITY=%d/;UID=2\" TEXT "
                    % drafts + literal(last) + b")")
    assert answer(lines).startswith(b"OK [APPENDUID %d " % drafts), lines
    made = stored(env, appended_uid(lines))
    assert made == HEADER + boundary + PART_MIME + PART_BODY + boundary + FORWARDED + last
    assert raw.cmd("NOOP")[-1].split()[1] == b"OK"
    raw.close()


def test_relative_urls_partial_and_header_fields(env, drafts):
    raw = env.raw(login=True)
    raw.cmd("SELECT CatDrafts")
    lines = raw.cmd(b'APPEND CatDrafts CATENATE (URL ";UID=1/;SECTION=HEADER.FIELDS%20(Subject%20From)" '
                    b'URL ";UID=2/;SECTION=TEXT/;PARTIAL=0.7" TEXT ' + literal(b"\r\n") + b")")
    assert answer(lines).startswith(b"OK [APPENDUID"), lines
    made = stored(env, appended_uid(lines))
    assert made == b"From: Alice <alice@example.org>\r\nSubject: draft\r\n\r\nCarol's\r\n"
    raw.close()


@pytest.mark.parametrize("url", [
    "/CatDrafts;UIDVALIDITY={v}/;UID=999",                  # no such message
    "/CatDrafts;UIDVALIDITY={w}/;UID=1",                    # another UIDVALIDITY
    "/NoSuchBox/;UID=1",
    "/CatDrafts/;UID=1/;SECTION=7",                         # no such part
    "imap://someone-else@localhost/CatDrafts/;UID=1",
    "/CatDrafts/;UID=1;URLAUTH=anonymous:internal:91354a473744909de610943775f92038",
    "not a url",
])
def test_bad_urls_get_badurl_and_store_nothing(env, drafts, url):
    url = url.format(v=drafts, w=drafts + 1)
    before = count(env)
    raw = env.raw(login=True)
    # MULTIAPPEND: a good message first; all or none.
    lines = raw.cmd(b"APPEND CatDrafts " + literal(b"Subject: fine\r\n\r\nfine\r\n")
                    + b' CATENATE (TEXT ' + literal(b"Subject: x\r\n\r\n") + b' URL "' + url.encode() + b'")')
    shown = url.replace("]", "").encode()
    assert answer(lines).startswith(b"NO [BADURL " + shown + b"]"), lines
    assert count(env) == before
    assert raw.cmd("NOOP")[-1].split()[1] == b"OK"
    raw.close()


def test_a_made_message_over_the_append_limit_gets_toobig(env, drafts):
    """BIG three times is over imap_max_literal: NO [TOOBIG], nothing stored. Twice,
    between big TEXT literals (written to disk as they arrive), it is stored."""
    assert 2 * len(BIG) + 2 * 1000 < MAX_LITERAL < 3 * len(BIG)
    url = b' URL "/CatDrafts/;UID=3"'
    before = count(env)
    raw = env.raw(login=True)
    lines = raw.cmd(b"APPEND CatDrafts CATENATE (" + url.strip() + url * 2 + b")")
    assert answer(lines).startswith(b"NO [TOOBIG]"), lines
    assert count(env) == before
    text = b"X-Filler: " + b"y" * 70_000 + b"\r\n"
    lines = raw.cmd(b"APPEND CatDrafts CATENATE (TEXT " + literal(text) + url + b" TEXT " + literal(b"\r\n--\r\n")
                    + url + b")")
    assert answer(lines).startswith(b"NO [TOOBIG]"), lines  # 70 KB more: over the limit again
    within = raw.cmd(b"APPEND CatDrafts (\\Seen) CATENATE (TEXT " + literal(b"X-Big: 1\r\n" + b"z" * 66_000 + b"\r\n")
                     + url + b")")
    assert answer(within).startswith(b"OK"), within
    assert stored(env, appended_uid(within)) == b"X-Big: 1\r\n" + b"z" * 66_000 + b"\r\n" + BIG
    assert count(env) == before + 1
    raw.close()


def test_catenate_grammar():
    from gateways.imap.grammar.errors import ParseError
    from gateways.imap.grammar.parser import parse_command
    cmd = parse_command(b'a APPEND x CATENATE (URL "/x/;UID=1" TEXT {2}\r\nhi URL ";UID=2")')
    parts = cmd.args.messages[0].catenate
    assert [(p.url, bytes(p.text) if p.text is not None else None) for p in parts] == [
        ("/x/;UID=1", None), (None, b"hi"), (";UID=2", None)]
    for bad in (b"a APPEND x CATENATE ()", b"a APPEND x CATENATE (TEXT x)", b"a APPEND x CATENATE (FOO {1}\r\nx)"):
        with pytest.raises(ParseError):
            parse_command(bad)
