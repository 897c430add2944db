"""Mail columns from RFC 822 bytes: real-world messages and hand-made edge cases."""
from __future__ import annotations

import base64
import binascii
import email
import io
import json
import os
import quopri
import random
import re
import subprocess
import sys
from email import policy

import pytest

from debian import email_corpus
from server.mime import decoders, message_columns, structure
from server.mime.decoders import Base64Decoder, QuotedPrintableDecoder
from server.mime.headers import HeaderBlock, content_type, disposition, envelope
from server.mime.structure import HEADER_CAP, MAX_DEPTH, MAX_PARTS

KEYS = {"subject", "from", "to", "cc", "messageId", "inReplyTo", "date", "internalDate", "envelope",
        "bodystructure", "fromAddresses", "toAddresses", "ccAddresses", "bccAddresses",
        # SORT and THREAD keys (their values: tests/test_imap_sort_keys.py)
        "sortSubject", "subjectReply", "sortFrom", "sortTo", "sortCc", "displayFrom", "displayTo",
        "sentDate", "threadMessageId", "threadParents"}


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    return email_corpus()


def cols(raw: bytes) -> tuple[dict, dict, dict]:
    c = message_columns(io.BytesIO(raw))
    assert set(c) == KEYS
    return c, json.loads(c["envelope"]), json.loads(c["bodystructure"])


def walk(node: dict):
    yield node
    for p in node.get("parts", []):
        yield from walk(p)
    if "body" in node:
        yield from walk(node["body"])


def ref_types(msg):
    """Part types in IMAP's view: only multiparts and message/rfc822 have children."""
    yield msg.get_content_type()
    if msg.is_multipart() and msg.get_content_maintype() == "multipart":
        for p in msg.get_payload():
            yield from ref_types(p)
    elif msg.get_content_type() == "message/rfc822" and msg.is_multipart():
        yield from ref_types(msg.get_payload(0))


def test_corpus_messages(corpus):
    compared = 0
    for path in corpus:
        raw = open(path, "rb").read()
        c, env, body = cols(raw)
        assert body["size"] == len(body_of(raw)), path
        for node in walk(body):
            assert node["size"] >= 0 and node["type"] and node["subtype"]
            if node["type"] == "text":
                assert node["lines"] >= 0
            for p in node.get("parts", []):
                assert p["size"] <= node["size"]
        assert set(env) == {"date", "subject", "from", "sender", "replyTo", "to", "cc", "bcc",
                            "inReplyTo", "messageId"}
        # Where Python's own parser sees a sound message, both agree on the part tree.
        ref = email.message_from_bytes(raw, policy=policy.compat32)
        if path.endswith("msg_37.txt"):
            # Adjacent delimiters: Python drops the empty parts, an IMAP server lists them.
            assert len(body["parts"]) == 7 and body["parts"][1]["size"] == 0
            continue
        if any(p.defects for p in ref.walk()):
            continue
        ours = [f"{n['type']}/{n['subtype']}" for n in walk(body)]
        assert ours == list(ref_types(ref)), path
        compared += 1
    assert compared > 30


def test_exact_part_sizes_with_crlf():
    raw = (b"From: a@b.c\r\nSubject: hi\r\nContent-Type: multipart/alternative; boundary=XY\r\n\r\n"
           b"preamble\r\n--XY\r\nContent-Type: text/plain\r\n\r\nline1\r\nline2\r\n\r\n--XY\r\n"
           b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n"
           b"Content-Disposition: inline; filename=\"a.html\"\r\nContent-ID: <c1>\r\n\r\nPGI+\r\n--XY--\r\n")
    _, _, body = cols(raw)
    text, html = body["parts"]
    assert (text["size"], text["lines"]) == (len(b"line1\r\nline2\r\n"), 2)
    # RFC 2045 §5.2: a text part without a charset is US-ASCII, and says so
    assert text["params"] == {"charset": "us-ascii"} and text["encoding"] == "7BIT"
    assert (html["size"], html["encoding"], html["id"]) == (4, "BASE64", "<c1>")
    assert html["params"] == {"charset": "utf-8"}
    assert html["disposition"] == ["inline", {"filename": "a.html"}]
    assert body["params"] == {"boundary": "XY"}


def test_headers_decoded_for_display_but_raw_in_envelope():
    raw = ("Subject: =?iso-8859-1?q?Gr=FC=DFe?= aus\r\nFrom: =?utf-8?b?SsO2cmc=?= <j@x.de>\r\n"
           "To: Team: a@x.de, \"Doe, J\" <d@x.de>;, c@y\r\nCc: <e@f>\r\nDate: Mon, 2 Jan 2006 15:04:05 -0700\r\n"
           "Message-ID: <m1@x>\r\nIn-Reply-To: <m0@x>\r\n\r\nbody").encode()
    c, env, _ = cols(raw)
    assert c["subject"] == "Grüße aus"
    assert c["from"] == "Jörg <j@x.de>"
    assert (c["messageId"], c["inReplyTo"]) == ("<m1@x>", "<m0@x>")
    assert c["internalDate"] == 1136239445
    assert env["subject"] == "=?iso-8859-1?q?Gr=FC=DFe?= aus"
    assert env["from"] == [["=?utf-8?b?SsO2cmc=?=", None, "j", "x.de"]]
    assert env["sender"] == env["replyTo"] == env["from"]
    assert env["to"] == [[None, None, "Team", None], [None, None, "a", "x.de"], ["Doe, J", None, "d", "x.de"],
                         [None, None, None, None], [None, None, "c", "y"]]
    assert env["cc"] == [[None, None, "e", "f"]] and env["bcc"] is None


def test_folded_and_eight_bit_headers():
    raw = "Subject: first\r\n second\r\nFrom: Zoë <z@x>\r\n\r\n".encode()
    c, env, body = cols(raw)
    assert c["subject"] == env["subject"] == "first second"
    assert c["from"] == "Zoë <z@x>"
    assert body["size"] == 0 and body["type"] == "text"


def test_nested_message_and_digest():
    inner = b"Subject: inner\r\nFrom: i@x\r\n\r\nhello\r\n"
    raw = (b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\n" + inner +
           b"\r\n--d\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"--d--\r\n")
    _, _, body = cols(raw)
    first, second = body["parts"]
    assert first["type"] == "message" and first["size"] == len(inner)
    assert first["envelope"]["subject"] == "inner" and first["body"]["size"] == len(b"hello\r\n")
    assert second["size"] == len(inner) - 2  # the CRLF before the delimiter is not part of it
    assert first["lines"] == 4


# -- the rules Dovecot reads messages by (RFC 3501 leaves them to the server) ---

def test_header_block_ends_at_the_first_empty_line():
    # A line without a colon is skipped with its continuation lines, not taken for the body.
    _, env, body = cols(b"Subject: s\r\nno colon here\r\n\tstill none\r\nTo: a@b\r\n\r\nbody")
    assert (env["subject"], env["to"], body["size"], body["lines"]) == ("s", [[None, None, "a", "b"]], 4, 0)
    _, _, body = cols(b"From: a@b\r\nSubject: no empty line\r\ncounter to RFC 5322\r\n")
    assert (body["size"], body["lines"]) == (0, 0)
    block = HeaderBlock(b"Subject: a\r\n\tb\r\n  c  \r\nX:\r\n")
    assert block.first(b"subject") == "a b c  " and block.first(b"x") == ""


def test_envelope_addresses_and_repeated_fields():
    _, env, _ = cols(b"From: a@b (x) (Last Comment)\r\nFrom: c@d\r\nSender: <e@f> (not a name)\r\n"
                     b"Reply-To: (before) g@h, i@j (nested (c) z)\r\nTo: x@y\r\nCC: one@x\r\ncc: two@x\r\n"
                     b"Subject: first\r\nSubject: last\r\nMessage-ID: <1@x>\r\nMessage-ID: <2@x>\r\n\r\n")
    assert env["from"] == [["Last Comment", None, "a", "b"], [None, None, "c", "d"]]
    assert env["sender"] == [[None, None, "e", "f"]]
    assert env["replyTo"] == [[None, None, "g", "h"], ["nested (c) z", None, "i", "j"]]
    assert env["cc"] == [[None, None, "one", "x"], [None, None, "two", "x"]]
    assert (env["subject"], env["messageId"]) == ("last", "<2@x>")
    assert envelope(HeaderBlock(b""))["from"] is None
    # subjects and names are for humans: blank runs become one space, none at the ends
    _, env, _ = cols(b"Subject:  a\tb  c\r\n\td \r\nFrom: \"Tab\tName \" <a@b>\r\n\r\n")
    assert (env["subject"], env["from"][0][0]) == ("a b c d", "Tab Name")


def test_address_search_text_is_written_as_dovecot_writes_it():
    """What SEARCH FROM/TO/CC/BCC look in (tests/test_imap_search_dovecot.py compares the
    answers with Dovecot's): one line per field, addresses written again."""
    c, _, _ = cols(b"From: <user (comment)@ (comment) domain.org>\r\nFrom: jdoe@x.org (John Doe)\r\n"
                   b"To: Team: a@x.org, =?utf-8?q?J=C3=BCrgen?= <j@y.org>;, \"Lee,  Ann\" <ann@x.com>\r\n"
                   b"Cc: MAILER DAEMON, <>, \"quoted local\"@example.com, Mary O'Brien <m@ie>\r\n\r\n")
    assert c["fromAddresses"] == '\n<user@domain.org>\n"John Doe" <jdoe@x.org>'
    assert c["toAddresses"] == '\nTeam: <a@x.org>, J\u00fcrgen <j@y.org>;, "Lee,  Ann" <ann@x.com>'
    assert c["ccAddresses"] == ('\n"MAILER DAEMON" <MISSING_MAILBOX@MISSING_DOMAIN>, <MISSING_MAILBOX@MISSING_DOMAIN>, '
                                '<"quoted local"@example.com>, "Mary O\\\'Brien" <m@ie>')
    assert c["bccAddresses"] == ""  # no such field


def test_parameters_as_sent():
    assert content_type('Text/Plain; Name="a\\"b"; x=  "y z" ; junk ; q=1=2; empty=""') == (
        "text/plain", {"name": 'a"b', "x": "y z", "empty": ""})
    # RFC 2231: continuations are joined, encoded values stay encoded, after the plain ones
    assert content_type("text/plain; title*2=\"isn't it!\"; charset=us-ascii; title*1*=%2A%20; "
                        "title*0*=us-ascii'en'This%20") == (
        "text/plain", {"charset": "us-ascii", "title*": "us-ascii'en'This%20%2A%20isn't it!"})
    assert content_type("text/plain; v*0=a; v*1=b; w*0=c; w*2=d") == (
        "text/plain", {"v": "ab", "w*0": "c", "w*2": "d"})
    assert disposition("attachment; filename*=utf-8''%E2%82%AC.txt") == (
        "attachment", {"filename*": "utf-8''%E2%82%AC.txt"})
    assert content_type("text") == (None, {}) and content_type("/") == (None, {})
    assert content_type("text/plain junk; charset=x") == (None, {})
    # after a malformed parameter the reading resumes one character on, at the next ";"
    assert content_type("text/plain; junk ; q=1; boundary=BOUND\txARY; c=\"open") == (
        "text/plain", {"boundary": "BOUND"})
    # the boundary is found in its RFC 2231 form too
    raw = (b"Content-Type: multipart/signed; boundary*=\"us-ascii''b%31\"\r\n\r\n--b1\r\n\r\none\r\n"
           b"--b1\r\n\r\ntwo\r\n--b1--\r\n")
    _, _, body = cols(raw)
    assert body["params"] == {"boundary*": "us-ascii''b%31"} and len(body["parts"]) == 2


def test_text_parts_default_to_us_ascii():
    _, _, body = cols(b"Content-Type: text/html; name=x\r\n\r\n<p>")
    assert list(body["params"].items()) == [("name", "x"), ("charset", "us-ascii")]
    _, _, body = cols(b"Content-Type: application/pdf\r\n\r\n%PDF")
    assert body["params"] == {}


def test_delimiters_of_every_enclosing_multipart():
    # a line that merely starts with the boundary is a delimiter (RFC 2046 §5.1.1 forbids it
    # in content); an outer delimiter ends the inner multipart; the innermost of equal
    # boundaries takes the line; the longest matching boundary wins over a shorter one.
    raw = (b"Content-Type: multipart/mixed; boundary=ab\r\n\r\n--abc\r\nContent-Type: text/html\r\n\r\nx\r\n"
           b"--ab\r\nContent-Type: multipart/alternative; boundary=ab\r\n\r\n--ab\r\n\r\ny\r\n--ab--\r\n"
           b"--ab\r\nContent-Type: multipart/alternative; boundary=abx\r\n\r\n--abx\r\n\r\nz\r\n"
           b"--ab--x\r\nepilogue\r\n")
    _, _, body = cols(raw)
    first, second, third = body["parts"]
    assert (first["subtype"], first["size"], first["lines"]) == ("html", 1, 0)
    assert second["subtype"] == "alternative" and [p["size"] for p in second["parts"]] == [1]
    assert third["subtype"] == "alternative" and [p["size"] for p in third["parts"]] == [1]
    assert body["size"] == len(body_of(raw))


def test_delimiter_inside_a_header_block():
    # a header cut short by a delimiter keeps its last line end; a message/rfc822 part
    # without a body still holds an (empty) message
    raw = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n"
           b"Subject: inner\r\n--b\r\nContent-Type: message/rfc822\r\n--b--\r\n")
    _, _, body = cols(raw)
    first, second = body["parts"]
    assert (first["size"], first["lines"], first["envelope"]["subject"]) == (16, 1, "inner")
    assert (second["size"], second["lines"], second["envelope"]["subject"]) == (0, 0, None)
    assert (second["body"]["type"], second["body"]["size"]) == ("text", 0)


def _located(node: dict):
    if "offsets" in node:
        yield node
    for part in node.get("parts", []):
        yield from _located(part)
    if "body" in node:
        yield from _located(node["body"])


def test_offsets_locate_every_part(corpus):
    """[header start, body start, end] of each part in the source: the header re-read
    gives the same media type, the body is `size` octets with `lines` line feeds."""
    long_delimiter = (b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz" + b" " * 100_000 +
                      b"\r\nContent-Type: text/html\r\n\r\n<p>\r\n--zz--\r\n")
    for raw in [open(p, "rb").read() for p in corpus] + HAND_MADE + [long_delimiter]:
        _, _, body = cols(raw)
        assert body["offsets"][0] == 0 and body["offsets"][2] == len(raw)
        for node in _located(body):
            start, body_start, end = node["offsets"]
            assert 0 <= start <= body_start <= end <= len(raw) and end - body_start == node["size"]
            if "lines" in node:
                assert raw[body_start:end].count(b"\n") == node["lines"]
            ctype, _ = content_type(HeaderBlock(raw[start:body_start]).first(b"content-type"))
            if ctype is not None:
                assert ctype == f"{node['type']}/{node['subtype']}"
    _, _, body = cols(long_delimiter)
    start, body_start, end = body["parts"][0]["offsets"]
    assert long_delimiter[start:end] == b"Content-Type: text/html\r\n\r\n<p>"


def test_hostile_structures_stay_bounded():
    many = b"Content-Type: multipart/mixed; boundary=m\r\n\r\n" + b"--m\r\n\r\nx\r\n" * (MAX_PARTS + 500)
    _, _, body = cols(many)
    assert len(body["parts"]) == MAX_PARTS
    deep = b"".join(b"Content-Type: multipart/mixed; boundary=d%d\r\n\r\n--d%d\r\n" % (i, i) for i in range(200))
    _, _, body = cols(deep + b"\r\nleaf")
    depth = 0
    while body.get("parts"):
        body, depth = body["parts"][0], depth + 1
    assert depth == MAX_DEPTH + 1  # the entity at MAX_DEPTH shows an empty part
    huge = b"Subject: " + b"x" * (4 * HEADER_CAP) + b"\r\nX-After: 1\r\n\r\nbody"
    c, env, body = cols(huge)
    assert len(env["subject"]) <= HEADER_CAP and body["size"] == 4  # kept up to the cap


def test_broken_messages_never_raise():
    samples = [
        b"", b"\r\n", b"no headers at all\r\njust text", b"\x00\xff\xfe" * 100,
        b"Content-Type: multipart/mixed\r\n\r\nno boundary", b"Content-Type: multipart/mixed; boundary=q\r\n\r\nnone",
        b"Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\nunterminated",
        b"Content-Type: /\r\n\r\nx", b"Content-Type: text/plain; charset*=bogus''%ZZ\r\n\r\nx",
        b"Subject: =?bogus?q?x?=\r\nFrom: <<<@@@>>>, \"unterminated\r\nTo: (comment (nested\r\n\r\n",
        b"Date: not a date\r\n\r\n", b"Date: Mon, 99 Foo 99999 99:99:99 +9999\r\n\r\n",
        b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!notbase64",
    ]
    nest = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(300))
    samples.append(nest)
    for raw in samples:
        c, env, body = cols(raw)
        assert body["size"] >= 0
    _, _, body = cols(b"Content-Type: multipart/mixed\r\n\r\nno boundary")
    # a multipart in which no part is found shows one empty text part, as Dovecot shows it
    assert (body["type"], body["subtype"], body["size"]) == ("multipart", "mixed", 11)
    assert [(p["type"], p["subtype"], p["size"], p["lines"]) for p in body["parts"]] == [("text", "plain", 0, 0)]
    c, _, _ = cols(b"Date: not a date\r\n\r\n")
    assert c["internalDate"] is None and c["date"] == "not a date"


def body_of(raw: bytes) -> bytes:
    """What follows the first empty line (nothing when there is none)."""
    m = re.search(rb"^\r?\n", raw, re.M)
    return raw[m.end():] if m else b""


# -- the stream may be cut anywhere -----------------------------------------

class Whole:
    """A reader that hands out the whole message in one read."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, n: int = -1) -> bytes:
        out, self.data = self.data, b""
        return out


class Trickle:
    """A reader that hands out a few bytes per read, as a slow socket would."""

    def __init__(self, data: bytes, seed: int = 0) -> None:
        self.data, self.pos, self.rnd = data, 0, random.Random(seed)

    def read(self, n: int = -1) -> bytes:
        k = self.rnd.choice((1, 2, 3, 5, 8, 13, 200))
        out = self.data[self.pos:self.pos + k]
        self.pos += len(out)
        return out


def assert_same_however_read(raw: bytes) -> None:
    """However the message is cut into reads, the columns are the same."""
    ref = message_columns(Whole(raw))
    assert message_columns(io.BytesIO(raw)) == ref, raw[:200]
    assert message_columns(Trickle(raw)) == ref, raw[:200]
    if len(raw) < 4096:
        assert message_columns(Trickle(raw, seed=len(raw))) == ref, raw[:200]


HAND_MADE = [
    b"From: a@b.c\r\nSubject: hi\r\nContent-Type: multipart/alternative; boundary=XY\r\n\r\n"
    b"preamble\r\n--XY\r\nContent-Type: text/plain\r\n\r\nline1\r\nline2\r\n\r\n--XY\r\n"
    b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n"
    b"Content-Disposition: inline; filename=\"a.html\"\r\nContent-ID: <c1>\r\n\r\nPGI+\r\n--XY--\r\n",
    ("Subject: =?iso-8859-1?q?Gr=FC=DFe?= aus\r\nFrom: =?utf-8?b?SsO2cmc=?= <j@x.de>\r\n"
     "To: Team: a@x.de, \"Doe, J\" <d@x.de>;, c@y\r\nCc: <e@f>\r\nDate: Mon, 2 Jan 2006 15:04:05 -0700\r\n"
     "Message-ID: <m1@x>\r\nIn-Reply-To: <m0@x>\r\n\r\nbody").encode(),
    "Subject: first\r\n second\r\nFrom: Zoë <z@x>\r\n\r\n".encode(),
    (b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: inner\r\nFrom: i@x\r\n\r\nhello\r\n"
     b"\r\n--d\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: i@x\r\n\r\nhello\r\n--d--\r\n"),
    b"", b"\r\n", b"no headers at all\r\njust text", b"\x00\xff\xfe" * 100,
    b"Content-Type: multipart/mixed\r\n\r\nno boundary", b"Content-Type: multipart/mixed; boundary=q\r\n\r\nnone",
    b"Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\nunterminated",
    b"Content-Type: /\r\n\r\nx", b"Content-Type: text/plain; charset*=bogus''%ZZ\r\n\r\nx",
    b"Subject: =?bogus?q?x?=\r\nFrom: <<<@@@>>>, \"unterminated\r\nTo: (comment (nested\r\n\r\n",
    b"Date: not a date\r\n\r\n", b"Date: Mon, 99 Foo 99999 99:99:99 +9999\r\n\r\n",
    b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!notbase64",
    b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(300)),
    # delimiters: trailing blanks, longer boundaries, adjacent, at the very end, closing mid-way
    b"Content-Type: multipart/mixed; boundary=ab\n\n--ab \t\n\nx\n--abc\nstill\n--ab\n--ab\n\n--ab--  \nepilogue\n--ab\n",
    b"Content-Type: multipart/mixed; boundary=ab\r\n\r\n--ab\r\n\r\nlast\r\n--ab",
    b"Content-Type: multipart/mixed; boundary=ab\r\n\r\n--ab\r\n\r\n\r\r\n\r\n--ab-- junk\r\n--ab--",
    b"From someone Mon Jan 1\nFrom: a@b\n\tcontinued\nnot: a header line?\n\nbody",
]


def _encoded_messages(corpus: list[str]) -> list[bytes]:
    inner = open(corpus[10], "rb").read()
    out = []
    for cte, body in (("base64", base64.encodebytes(inner)), ("base64", base64.b64encode(inner)),
                      ("base64", base64.b64encode(inner)[:-3]), ("base64", b"QUJD=junk\n" + base64.b64encode(inner)),
                      ("quoted-printable", quopri.encodestring(inner)),
                      ("quoted-printable", b"a=\rjunk\nb=3\n=3D=\n=")):
        out.append(b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: %s\r\n\r\n%s" % (cte.encode(), body))
    return out


def test_reads_of_any_size_give_the_same_columns(corpus):
    for path in corpus:
        raw = open(path, "rb").read()
        assert_same_however_read(raw)
        assert_same_however_read(raw.replace(b"\n", b"\r\n"))
    for raw in HAND_MADE + _encoded_messages(corpus):
        assert_same_however_read(raw)


def test_streaming_matches_on_mangled_messages(corpus):
    """Truncated, cut and spliced corpus messages, read a few bytes at a time."""
    rnd = random.Random(7)
    pieces = [b"\n", b"\r\n", b"\r", b"--", b" ", b"=", b"=3D", b"From ", b"\tx", b"Subject: s\n",
              b"Content-Type: message/rfc822\n", b"Content-Transfer-Encoding: base64\n"]
    samples = [open(p, "rb").read() for p in corpus] + HAND_MADE
    for _ in range(600):
        raw = bytearray(rnd.choice(samples))
        for _ in range(rnd.randint(1, 5)):
            pos, op = rnd.randint(0, len(raw)), rnd.random()
            if op < 0.4:
                raw[pos:pos] = rnd.choice(pieces)
            elif op < 0.7:
                del raw[pos:pos + rnd.randint(1, 20)]
            elif op < 0.8:
                del raw[pos:]
            else:
                m = re.search(rb'boundary="?([^";\s]+)', raw)
                if m:
                    raw[pos:pos] = b"\n--" + m.group(1) + rnd.choice((b"", b"--", b" ", b"x")) + \
                        rnd.choice((b"\n", b"\r\n", b""))
        assert_same_however_read(bytes(raw))


def test_transfer_decoders_match_the_stdlib():
    rnd = random.Random(3)
    for _ in range(3000):
        data = bytes(rnd.choice(b"AB+/=\r\n =x9=\r3Df") for _ in range(rnd.randint(0, 60)))
        cuts = sorted(rnd.sample(range(len(data) + 1), min(len(data) + 1, 4)))
        chunks = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]
        dec = Base64Decoder()
        out = b"".join(dec.feed(c) for c in chunks)
        tail = dec.close()
        try:
            want = base64.b64decode(re.sub(rb"[^A-Za-z0-9+/=]", b"", data) + b"==", validate=False)
        except binascii.Error:
            want = None
        assert (None if tail is None else out + tail) == want, data
        dec = QuotedPrintableDecoder()
        assert b"".join(dec.feed(c) for c in chunks) + dec.close() == quopri.decodestring(data), data


def test_long_lines_are_counted_in_pieces(monkeypatch):
    """Lines beyond LINE_CAP (shrunk here) stream through: sizes and the decoded
    inner message stay exact."""
    inner = b"Subject: inner\r\nContent-Type: text/plain\r\n\r\n" + b"=3D" * 500 + b"y" * 300
    samples = [b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\n\r\n" + b"x" * 5000 + b"\r\n--zz--\r\n",
               b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + inner,
               b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(inner),
               b"Subject: " + b"s" * 300 + b"\r\nX-Long: " + b"v" * 300 + b"\r\n\r\nbody",
               b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz" + b" " * 300 + b"\r\n\r\na\r\n--zz--"]
    expected = [message_columns(Whole(raw)) for raw in samples]
    for module in (decoders, structure):  # each binds its own LINE_CAP
        monkeypatch.setattr(module, "LINE_CAP", 64)
    for raw, want in zip(samples, expected):
        assert message_columns(Whole(raw)) == want
        assert_same_however_read(raw)


# -- memory ------------------------------------------------------------------

MB = 1024 * 1024

_MEASURE = """
import json, resource, sys
from server.mime import message_columns
with open("/etc/hostname", "rb") as fp:
    message_columns(fp)  # warm up: every import and cache in place
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with open(sys.argv[1], "rb") as fp:
    columns = message_columns(fp)
growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024
print(json.dumps({"growth": growth, "columns": columns}))
"""


def _columns_in_subprocess(path) -> tuple[int, dict]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(path)], cwd=root, check=True,
                         capture_output=True).stdout
    answer = json.loads(out)
    return answer["growth"], answer["columns"]


@pytest.mark.parametrize("shape", ["lines", "one line", "no newline at all"])
def test_fifty_megabyte_message_in_bounded_memory(tmp_path, shape):
    encoded = base64.b64encode(os.urandom(37 * MB))
    if shape == "lines":
        encoded = b"\r\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76)) + b"\r\n"
    path = tmp_path / "big.eml"
    if shape == "no newline at all":
        path.write_bytes(encoded)
        size = len(encoded)
        del encoded
        growth, c = _columns_in_subprocess(path)
        body = json.loads(c["bodystructure"])
        # no empty line: all of it is a (broken) header block, as Dovecot reads it
        assert (body["type"], body["size"], body["lines"]) == ("text", 0, 0)
        assert c["subject"] is None and size > 49 * MB
    else:
        head = (b"From: big@example.org\r\nSubject: fifty megabytes\r\nMessage-ID: <big@x>\r\n"
                b"Content-Type: multipart/mixed; boundary=\"=_b\"\r\n\r\n")
        body = (b"--=_b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
                b"--=_b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
                b"Content-Disposition: attachment; filename=big.bin\r\n\r\n" + encoded + b"\r\n--=_b--\r\n")
        path.write_bytes(head + body)
        size, lines = len(encoded), encoded.count(b"\n") + 1
        del encoded
        growth, c = _columns_in_subprocess(path)
        top = json.loads(c["bodystructure"])
        text, attachment = top["parts"]
        assert top["size"] == len(body) and (text["size"], text["lines"]) == (12, 0)
        assert attachment["size"] == size and "lines" not in attachment
        assert attachment["disposition"] == ["attachment", {"filename": "big.bin"}]
        assert (c["subject"], c["messageId"]) == ("fifty megabytes", "<big@x>")
        assert lines > 1 if shape == "lines" else lines == 1
    print(f"{shape}: peak RSS grew by {growth / MB:.2f} MB")
    assert growth < 20 * MB, f"parsing grew the process by {growth / MB:.1f} MB"
