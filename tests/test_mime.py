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
from email.utils import parsedate_to_datetime

import pytest

from debian import email_corpus
from server.mime import decoders, message_columns, structure
from server.mime.decoders import Base64Decoder, QuotedPrintableDecoder
from server.mime.headers import decode_words, envelope, header_params, header_parser, raw_header
from server.mime.structure import HEADER_LINE, MAX_DEPTH, MAX_PARTS

KEYS = {"subject", "from", "to", "cc", "messageId", "inReplyTo", "date", "internalDate", "envelope",
        "bodystructure"}


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


# -- the streaming parser against the whole-message parser it replaced ---------

def split_header(raw: bytes) -> tuple[bytes, bytes]:
    """(For whole messages in memory; structure._Part streams the same rule.) Split at the end of the header block; a line that is not a header starts the body."""
    pos, n = 0, len(raw)
    while pos < n:
        eol = raw.find(b"\n", pos)
        end = n if eol < 0 else eol + 1
        line = raw[pos:end]
        if line in (b"\n", b"\r\n"):
            return raw[:pos], raw[end:]
        # An mbox "From " line may lead the headers; it belongs to neither part.
        if HEADER_LINE.match(line) or (pos > 0 and line[:1] in (b" ", b"\t")) or \
                (pos == 0 and line.startswith(b"From ")):
            pos = end
            continue
        return raw[:pos], raw[pos:]
    return raw, b""


def split_multipart(body: bytes, boundary: bytes) -> list[bytes]:
    """(For whole bodies in memory; structure._Multipart streams the same rule.)
    The body parts between boundary lines (RFC 2046 5.1.1): the CRLF before a
    delimiter belongs to the delimiter, text before the first and after the last is dropped."""
    delim = b"--" + boundary
    marks: list[tuple[int, int, bool]] = []  # (line start, line end, closing)
    pos = 0
    while len(marks) < MAX_PARTS:
        i = body.find(delim, pos)
        if i < 0:
            break
        pos = i + len(delim)
        if i and body[i - 1:i] != b"\n":
            continue
        eol = body.find(b"\n", i)
        end = len(body) if eol < 0 else eol + 1
        rest = body[pos:end]
        closing = rest.startswith(b"--")
        if closing:
            rest = rest[2:]
        if rest.strip():
            continue  # a longer boundary that merely starts with ours
        marks.append((i, end, closing))
        if closing:
            break
    parts: list[bytes] = []
    for (_, start, closing), nxt in zip(marks, marks[1:] + [None]):
        if closing:
            break
        if nxt is None:
            parts.append(body[start:])  # unterminated: the part runs to the end
            break
        stop = nxt[0]
        if body[stop - 2:stop] == b"\r\n":
            stop -= 2
        elif body[stop - 1:stop] == b"\n":
            stop -= 1
        parts.append(body[start:max(start, stop)])
    return parts


def _reference_decode_transfer(body: bytes, encoding: str) -> bytes:
    try:
        if encoding == "BASE64":
            return base64.b64decode(re.sub(rb"[^A-Za-z0-9+/=]", b"", body) + b"==", validate=False)
        if encoding == "QUOTED-PRINTABLE":
            return quopri.decodestring(body)
    except (binascii.Error, ValueError):
        pass
    return body


def _reference_lines(body: bytes) -> int:
    return body.count(b"\n") + (1 if body and not body.endswith(b"\n") else 0)


def _reference_part(raw: bytes, default_type: str = "text/plain", depth: int = 0) -> dict:
    header, body = split_header(raw)
    msg = header_parser.parsebytes(header)
    if msg.get("Content-Type") is None:
        ctype, params = default_type, ({"charset": "us-ascii"} if default_type == "text/plain" else {})
    else:
        ctype, params = header_params(msg, "content-type")
        if not ctype or ctype.count("/") != 1 or not all(ctype.split("/")):
            ctype, params = "text/plain", {"charset": "us-ascii"}
    maintype, subtype = ctype.split("/")
    encoding = (raw_header(msg, "Content-Transfer-Encoding") or "7BIT").strip().upper()
    disp_type, disp_params = header_params(msg, "content-disposition")
    language = raw_header(msg, "Content-Language")
    node = {
        "type": maintype, "subtype": subtype, "params": params,
        "id": raw_header(msg, "Content-ID"), "description": raw_header(msg, "Content-Description"),
        "encoding": encoding, "size": len(body),
        "md5": raw_header(msg, "Content-MD5"),
        "disposition": [disp_type, disp_params] if disp_type else None,
        "language": [x.strip() for x in language.split(",") if x.strip()] if language else None,
        "location": raw_header(msg, "Content-Location"),
    }
    if maintype == "multipart":
        boundary = params.get("boundary")
        parts = split_multipart(body, boundary.encode("utf-8", "surrogateescape")) if boundary else []
        if parts and depth < MAX_DEPTH:
            child_default = "message/rfc822" if subtype == "digest" else "text/plain"
            node["parts"] = [_reference_part(p, child_default, depth + 1) for p in parts]
            return node
        node.update(type="text", subtype="plain", params={"charset": "us-ascii"})
        maintype = "text"
    if maintype == "message" and subtype in ("rfc822", "global") and depth < MAX_DEPTH:
        inner = _reference_decode_transfer(body, encoding)
        inner_header, _ = split_header(inner)
        node["envelope"] = envelope(header_parser.parsebytes(inner_header))
        node["body"] = _reference_part(inner, "text/plain", depth + 1)
        node["lines"] = _reference_lines(body)
    elif maintype == "text":
        node["lines"] = _reference_lines(body)
    return node


def whole_message_columns(raw: bytes) -> dict:
    """The columns as the former implementation derived them, from the whole message
    in memory: the reference the streaming parser must reproduce."""
    try:
        header, _ = split_header(raw)
        msg = header_parser.parsebytes(header)
        env = envelope(msg)
        date = env["date"]
        internal = None
        if date:
            try:
                internal = int(parsedate_to_datetime(date).timestamp())
            except (TypeError, ValueError, IndexError, OverflowError):
                internal = None
        return {
            "subject": decode_words(env["subject"]), "from": decode_words(raw_header(msg, "From")),
            "to": decode_words(raw_header(msg, "To")), "cc": decode_words(raw_header(msg, "Cc")),
            "messageId": env["messageId"], "inReplyTo": env["inReplyTo"], "date": date,
            "internalDate": internal,
            "envelope": json.dumps(env, ensure_ascii=False, separators=(",", ":")),
            "bodystructure": json.dumps(_reference_part(raw), ensure_ascii=False, separators=(",", ":")),
        }
    except Exception:
        empty = {"date": None, "subject": None, "from": None, "sender": None, "replyTo": None,
                 "to": None, "cc": None, "bcc": None, "inReplyTo": None, "messageId": None}
        plain = {"type": "text", "subtype": "plain", "params": {"charset": "us-ascii"}, "id": None,
                 "description": None, "encoding": "7BIT", "size": len(raw), "md5": None,
                 "disposition": None, "language": None, "location": None, "lines": _reference_lines(raw)}
        return {"subject": None, "from": None, "to": None, "cc": None, "messageId": None,
                "inReplyTo": None, "date": None, "internalDate": None,
                "envelope": json.dumps(empty), "bodystructure": json.dumps(plain)}


class Trickle:
    """A reader that hands out a few bytes per read, as a slow socket would."""

    def __init__(self, data: bytes, seed: int = 0) -> None:
        self.data, self.pos, self.rnd = data, 0, random.Random(seed)

    def read(self, n: int = -1) -> bytes:
        k = self.rnd.choice((1, 2, 3, 5, 8, 13, 200))
        out = self.data[self.pos:self.pos + k]
        self.pos += len(out)
        return out


def assert_same_as_reference(raw: bytes) -> None:
    ref = whole_message_columns(raw)
    assert message_columns(io.BytesIO(raw)) == ref, raw[:200]
    assert message_columns(Trickle(raw)) == ref, raw[:200]


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


def test_streaming_matches_the_whole_message_parse(corpus):
    for path in corpus:
        raw = open(path, "rb").read()
        assert_same_as_reference(raw)
        assert_same_as_reference(raw.replace(b"\n", b"\r\n"))
    for raw in HAND_MADE + _encoded_messages(corpus):
        assert_same_as_reference(raw)


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
        assert_same_as_reference(bytes(raw))


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
    for module in (decoders, structure):  # each binds its own LINE_CAP
        monkeypatch.setattr(module, "LINE_CAP", 64)
    inner = b"Subject: inner\r\nContent-Type: text/plain\r\n\r\n" + b"=3D" * 500 + b"y" * 300
    for raw in (b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\n\r\n" + b"x" * 5000 + b"\r\n--zz--\r\n",
                b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + inner,
                b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(inner)):
        assert_same_as_reference(raw)


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
        assert (body["type"], body["size"], body["lines"]) == ("text", size, 1)
        assert c["subject"] is None
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
        assert top["size"] == len(body) and (text["size"], text["lines"]) == (12, 1)
        assert attachment["size"] == size and "lines" not in attachment
        assert attachment["disposition"] == ["attachment", {"filename": "big.bin"}]
        assert (c["subject"], c["messageId"]) == ("fifty megabytes", "<big@x>")
        assert lines > 1 if shape == "lines" else lines == 1
    print(f"{shape}: peak RSS grew by {growth / MB:.2f} MB")
    assert growth < 20 * MB, f"parsing grew the process by {growth / MB:.1f} MB"
