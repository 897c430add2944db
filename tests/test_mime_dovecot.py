"""ENVELOPE, BODY and BODYSTRUCTURE of real-world messages, compared with a live Dovecot.

A private Dovecot (Debian's dovecot-imapd) runs on a free loopback port with its own
configuration and Maildir; every message of the email corpus, the SpamAssassin samples
and a few hand-made edge cases (EDGE_CASES) is APPENDed to it (with CRLF line ends, as IMAP clients send them) and fetched back with
`FETCH 1:* (ENVELOPE BODY BODYSTRUCTURE)`. Our answers are rendered without a network,
from the JSON server.mime caches, by the gateway's writer. Both are parsed into trees
and compared; the case of media types, subtypes, transfer encodings, parameter and
disposition names is not significant (RFC 2045 §5.1, §6.1; RFC 2183 §2), so it is
ignored: the store spells them in lower case where Dovecot repeats the header's spelling.

Where Dovecot itself departs from RFC 3501 our answer is allowed to differ; each such
exception is listed in EXCEPTIONS with the reason.
"""
from __future__ import annotations

import glob
import io
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator

import pytest

from debian import email_corpus, ensure_packages, path
from dovecot import PrivateDovecot
from gateways.imap.grammar import writer
from server.mime import message_columns

SPAMASSASSIN_DIR = "/usr/share/doc/spamassassin/examples"
USER, PASSWORD = "mime", "mime compare secret"
ITEMS = ("ENVELOPE", "BODY", "BODYSTRUCTURE")

_NO_SUBTYPE = (
    "The Content-Type has no subtype (`text; charset=us-ascii`, `text`). Dovecot answers an "
    "empty subtype (and for the first an empty type with no parameters), which names no media "
    "type; RFC 2045 §5.2 says to take a syntactically invalid Content-Type as text/plain; "
    "charset=us-ascii, which is what we answer.")
_BOUNDARY_2231 = (
    "The multipart/signed names its boundary in RFC 2231 form only (`boundary*=\"ansi-x3.4-1968''...\"`). "
    "Dovecot does not decode RFC 2231 values, finds no boundary and shows one empty text part; "
    "RFC 2231 §3 makes it the boundary, so we list the two parts that are there (and, like "
    "Dovecot, still send the parameter as it was written).")
_ENCODED_MESSAGE = (
    "A message/rfc822 part sent in base64. RFC 2046 §5.2.1 allows only 7bit, 8bit and binary "
    "there, but such parts exist; Dovecot does not decode them and shows an empty message, we "
    "decode the body and show the message it holds (sizes inside it are of the decoded octets).")

# (file name, item) -> why our answer may differ from Dovecot's.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("msg_14.txt", "BODY"): _NO_SUBTYPE,
    ("msg_14.txt", "BODYSTRUCTURE"): _NO_SUBTYPE,
    ("msg_33.txt", "BODY"): _BOUNDARY_2231,
    ("msg_33.txt", "BODYSTRUCTURE"): _BOUNDARY_2231,
    ("edge-text-without-subtype.eml", "BODY"): _NO_SUBTYPE,
    ("edge-text-without-subtype.eml", "BODYSTRUCTURE"): _NO_SUBTYPE,
    ("edge-base64-message.eml", "BODY"): _ENCODED_MESSAGE,
    ("edge-base64-message.eml", "BODYSTRUCTURE"): _ENCODED_MESSAGE,
}


def crlf(data: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", data)


# Hand-made messages for the rules real mail rarely shows (line ends become CRLF).
EDGE_CASES = {
    "edge-repeated-fields.eml":
        b"Subject: one\nSubject: two\nDate: d1\nDate: d2\nMessage-ID: <m1>\nMessage-ID: <m2>\n"
        b"In-Reply-To: <r1>\nIn-Reply-To: <r2>\nFrom: a@b (x) (y)\nFrom: c@d\nSender: <e@f> (c)\n"
        b"Reply-To: g@h (nested (c) z)\nTo: x@y (one)\n (two), \"a b\" . c <d@e>\nCC: f@g\ncc: h@i\n\nbody",
    "edge-folding-and-tabs.eml":
        b"Subject: a\n\tb\n  c\tx  y \nFrom: a (b) c <d@e>\nSender: \"Tab\tName\" <a@b>\n"
        b"To: undisclosed-recipients:;\nContent-Type: text/plain; name=\"a\tb\"\nContent-Description: d\te\n\nx",
    "edge-no-colon-line.eml": b"Subject: s\nno colon here\n\tand its continuation\nX-A: b\n\nbody",
    "edge-no-empty-line.eml": b"From: a@b\nSubject: s\nno separating line here\n",
    "edge-duplicate-content-type.eml": b"Content-Type: text/plain; charset=utf-8\nContent-Type: text/html\n\nx",
    "edge-parameters.eml":
        b"Content-Type: text/plain; name=\"a\\\"b\"; x=  \"y z\" ; junk ; q=1=2; empty=\"\"; v*0=\"a\"; v*1=\"b\";\n"
        b" t*1*=%2A; t*0*=us-ascii'en'%41; t*2=\"c%d\"; w*0=1; w*2=3; u=\"open\nContent-Disposition: attachment;"
        b" filename*=utf-8''%E2%82%AC.txt\nContent-Language: en, de\nContent-Location: http://x/y\n\nx\n",
    "edge-prefix-boundary.eml":
        b"Content-Type: multipart/mixed; boundary=ab\n\n--abc\nContent-Type: text/html\n\nx\n--ab\n"
        b"Content-Type: multipart/alternative; boundary=ab\n\n--ab\n\ny\n--ab--\n--ab\n"
        b"Content-Type: multipart/alternative; boundary=abx\n\n--abx\n\nz\n--ab--x\nepilogue\n",
    "edge-outer-ends-inner.eml":
        b"Content-Type: multipart/mixed; boundary=out\n\n--out\nContent-Type: multipart/alternative; boundary=in\n\n"
        b"--in\nContent-Type: text/plain\n\na\n--out\nContent-Type: text/html\n\nb\n--out--",
    "edge-empty-multiparts.eml":
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: multipart/alternative\n\nno boundary\n"
        b"--b\nContent-Type: multipart/related; boundary=none\n\nno delimiter\n--b--\n",
    "edge-cut-short-headers.eml":
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\nSubject: inner\n"
        b"--b\nContent-Type: message/rfc822\n\n--b\nContent-Type: message/rfc822\n--b--\n",
    "edge-text-without-subtype.eml": b"Content-Type: text\n\nx",
    "edge-address-forms.eml":
        b"From: MAILER DAEMON\nSender: \"Someone\"\nReply-To: postmaster\nTo: <>, x@y\n"
        b"Cc: <user (comment)@ (comment) domain.org>, \"quoted local\"@example.com\n"
        b"Bcc: Team: a@x.org, Bob <b@y.org>;, undisclosed-recipients:;\nSender: \"Lee,  Ann\"   <ann@x.com>\n\nx",
    "edge-base64-message.eml":
        b"Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nU3ViamVjdDogaW5uZXIKCmJvZHkK\n",
}


def corpus() -> list[tuple[str, bytes]]:
    """(name, message with CRLF line ends): the email corpus, the SpamAssassin samples
    and the hand-made edge cases."""
    ensure_packages({"spamassassin": path(os.path.join(SPAMASSASSIN_DIR, "sample-*.txt"))})
    samples = sorted(glob.glob(os.path.join(SPAMASSASSIN_DIR, "sample-*.txt")))
    assert len(samples) == 2, samples
    out = []
    for file in email_corpus() + samples:
        with open(file, "rb") as fp:
            out.append((os.path.basename(file), crlf(fp.read())))
    return out + [(name, crlf(raw)) for name, raw in EDGE_CASES.items()]


# -- IMAP response values as trees -----------------------------------------------------

class Atom(bytes):
    """An atom or number, told apart from a string of the same bytes."""


def parse_value(data: bytes, pos: int) -> tuple[object, int]:
    """One IMAP value at data[pos:]: a list for a parenthesized list, bytes for a string,
    Atom for an atom or number, None for NIL; and the position after it."""
    while data[pos:pos + 1] == b" ":
        pos += 1
    ch = data[pos:pos + 1]
    if ch == b"(":
        items, pos = [], pos + 1
        while True:
            while data[pos:pos + 1] == b" ":
                pos += 1
            if data[pos:pos + 1] == b")":
                return items, pos + 1
            item, pos = parse_value(data, pos)
            items.append(item)
    if ch == b'"':
        out, pos = bytearray(), pos + 1
        while data[pos:pos + 1] != b'"':
            if data[pos:pos + 1] == b"\\":
                pos += 1
            out += data[pos:pos + 1]
            pos += 1
        return bytes(out), pos + 1
    if ch == b"{":
        close = data.index(b"}", pos)
        size = int(data[pos + 1:close])
        start = close + 3  # "}\r\n"
        return data[start:start + size], start + size
    m = re.compile(rb"[^ ()\r\n]+").match(data, pos)
    word = m.group(0)
    return (None if word.upper() == b"NIL" else Atom(word)), m.end()


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, bytes) else value


def _params(value: object) -> object:
    if not isinstance(value, list):
        return value
    return [_lower(v) if i % 2 == 0 else v for i, v in enumerate(value)]


def _disposition(value: object) -> object:
    if not isinstance(value, list) or len(value) != 2:
        return value
    return [_lower(value[0]), _params(value[1])]


def normal_body(node: object) -> object:
    """A BODY/BODYSTRUCTURE tree with the case-insensitive fields in lower case."""
    if not isinstance(node, list) or not node:
        return node
    if isinstance(node[0], list):  # multipart: parts, subtype, extension data
        count = next(i for i, v in enumerate(node) if not isinstance(v, list))
        out = [normal_body(p) for p in node[:count]] + [_lower(node[count])]
        ext = node[count + 1:]
        if ext:
            out.append(_params(ext[0]))
        if len(ext) > 1:
            out.append(_disposition(ext[1]))
        return out + ext[2:]
    out = [_lower(node[0]), _lower(node[1]), _params(node[2]), node[3], node[4], _lower(node[5])]
    rest = node[6:]
    kind = (_lower(node[0]), _lower(node[1]))
    if kind == (b"message", b"rfc822") and len(rest) >= 4:
        out += [rest[0], rest[1], normal_body(rest[2]), rest[3]]
        rest = rest[4:]
    elif kind[0] == b"text" and len(rest) >= 2:
        out += rest[:2]
        rest = rest[2:]
    else:
        out += rest[:1]
        rest = rest[1:]
    if len(rest) >= 2:  # md5, disposition, language, location
        rest = [rest[0], _disposition(rest[1]), *rest[2:]]
    return out + rest


def normal(item: str, value: object) -> object:
    return value if item == "ENVELOPE" else normal_body(value)


def fetch_items(data: bytes) -> dict[str, object]:
    """ENVELOPE, BODY and BODYSTRUCTURE of one FETCH attribute list."""
    values, _ = parse_value(data, 0)
    return {values[i].decode(): values[i + 1] for i in range(0, len(values), 2)}


def ours(raw: bytes) -> dict[str, bytes]:
    """Our rendered answers for a message, built without a network."""
    cols = message_columns(io.BytesIO(raw))
    env, node = json.loads(cols["envelope"]), json.loads(cols["bodystructure"])
    return {"ENVELOPE": writer.envelope(env), "BODY": writer.body_structure(node, extensible=False),
            "BODYSTRUCTURE": writer.body_structure(node)}


# -- Dovecot's answers ------------------------------------------------------------------

class ImapConnection:
    """Just enough of an IMAP client to send commands and read whole responses."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = b""
        self.tag = 0
        self._line()  # greeting

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed"
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line + b"\r\n"

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed"
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _response(self) -> bytes:
        """One response line with its literals."""
        out = self._line()
        while (m := re.search(rb"\{(\d+)\}\r\n\Z", out)):
            out += self._exactly(int(m.group(1))) + self._line()
        return out

    def command(self, text: bytes, literal: bytes | None = None) -> list[bytes]:
        self.tag += 1
        tag = b"t%d" % self.tag
        if literal is None:
            self.sock.sendall(tag + b" " + text + b"\r\n")
        else:
            self.sock.sendall(tag + b" " + text + b" {%d}\r\n" % len(literal))
            assert self._line().startswith(b"+")
            self.sock.sendall(literal + b"\r\n")
        untagged = []
        while True:
            response = self._response()
            if response.startswith(tag + b" "):
                assert response.startswith(tag + b" OK"), response
                return untagged
            untagged.append(response)

    def close(self) -> None:
        self.sock.close()


def dovecot_answers_for(port: int, messages: list[bytes]) -> list[dict[str, object]]:
    """Dovecot's ENVELOPE, BODY and BODYSTRUCTURE of each message, parsed."""
    imap = ImapConnection(port)
    try:
        imap.command(b'LOGIN "%s" "%s"' % (USER.encode(), PASSWORD.encode()))
        for raw in messages:
            imap.command(b"APPEND INBOX", raw)
        imap.command(b"SELECT INBOX")
        untagged = imap.command(b"FETCH 1:* (ENVELOPE BODY BODYSTRUCTURE)")
        imap.command(b"LOGOUT")
    finally:
        imap.close()
    out = []
    for response in untagged:
        m = re.match(rb"\* (\d+) FETCH ", response)
        assert m, response
        assert int(m.group(1)) == len(out) + 1
        out.append(fetch_items(response[m.end():]))
    assert len(out) == len(messages)
    return out


@pytest.fixture(scope="module")
def dovecot_answers() -> Iterator[tuple[list[tuple[str, bytes]], list[dict[str, object]]]]:
    PrivateDovecot.install("imap")
    messages = corpus()
    base = tempfile.mkdtemp(prefix="gw-mime-dovecot-")
    dovecot = PrivateDovecot(os.path.join(base, "dovecot"), "imap", USER, "{PLAIN}" + PASSWORD)
    try:
        dovecot.start()
        yield messages, dovecot_answers_for(dovecot.port, [raw for _, raw in messages])
    finally:
        dovecot.stop()
        shutil.rmtree(base, ignore_errors=True)


def differences(messages: list[tuple[str, bytes]],
                answers: list[dict[str, object]]) -> dict[tuple[str, str], tuple]:
    out = {}
    for (name, raw), theirs in zip(messages, answers):
        mine = ours(raw)
        for item in ITEMS:
            a = normal(item, parse_value(mine[item], 0)[0])
            b = normal(item, theirs[item])
            if a != b:
                out[(name, item)] = (a, b)
    return out


def test_answers_match_dovecot(dovecot_answers):
    messages, answers = dovecot_answers
    assert len(messages) == 49 + len(EDGE_CASES)
    found = differences(messages, answers)
    unexpected = {k: v for k, v in found.items() if k not in EXCEPTIONS}
    assert not unexpected, "\n".join(f"{k}:\n ours    {a!r}\n dovecot {b!r}" for k, (a, b) in unexpected.items())
    # An exception that no longer differs is stale.
    assert set(EXCEPTIONS) <= set(found), set(EXCEPTIONS) - set(found)
