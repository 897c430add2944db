"""Mail columns from RFC 822 bytes: real-world messages and hand-made edge cases."""
from __future__ import annotations

import email
import glob
import io
import json
import os
import shutil
import subprocess
from email import policy

import pytest

from server.mime import message_columns, split_header, split_multipart

CORPUS = "/usr/lib/python3.11/test/test_email/data"
KEYS = {"subject", "from", "to", "cc", "messageId", "inReplyTo", "date", "internalDate", "envelope",
        "bodystructure"}


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    """The email package's own test messages (Debian ships them in libpython3.11-testsuite)."""
    if not os.path.isdir(CORPUS) and shutil.which("apt-get"):
        subprocess.run("apt-get update -qq && apt-get install -y -qq libpython3.11-testsuite",
                       shell=True, check=True, stdout=subprocess.DEVNULL)
    files = sorted(glob.glob(os.path.join(CORPUS, "msg_*.txt")))
    assert len(files) > 40, "message corpus missing"
    return files


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
        _, top_body = split_header(raw)
        assert body["size"] == len(top_body), path
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
    assert text["params"] == {} and text["encoding"] == "7BIT"
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
    assert (body["type"], body["subtype"]) == ("text", "plain")
    c, _, _ = cols(b"Date: not a date\r\n\r\n")
    assert c["internalDate"] is None and c["date"] == "not a date"


def test_split_multipart_ignores_longer_boundaries():
    body = b"--ab\r\none\r\n--abc\r\nstill one\r\n--ab--\r\n"
    assert split_multipart(body, b"ab") == [b"one\r\n--abc\r\nstill one"]
