"""BINARY (RFC 3516) against a real `groupware serve`: BINARY[], BINARY.PEEK[] and BINARY.SIZE[]
decoding base64 and quoted-printable exactly (soft line breaks, trailing white space), literal8
for content with NUL octets, `NO [UNKNOWN-CTE]`, APPEND of a `~{n}` literal8, BODY[] of
content with NUL octets, big parts streamed; and the same answers as a live Dovecot."""
from __future__ import annotations

import base64
import os
import re

import pytest

from dovecot import PrivateDovecot
from raw_clients import RawIMAP

pytestmark = pytest.mark.gateway_env("imap")

NUL_BYTES = b"ab\x00cd\xff\x00"
QP_BODY = b"soft=\r\nbreak trailing   \r\nx=3D=00y\tz \t\r\nend  =  \r\nnext=C3=A9\r\n"
QP_DECODED = b"softbreak trailing\r\nx=\x00y\tz\r\nend  next\xc3\xa9\r\n"


def mime(*parts: tuple[bytes, bytes, bytes]) -> bytes:
    """A multipart/mixed message of (content type, transfer encoding, body) parts."""
    out = [b"From: a@example.com\r\nSubject: binary\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n"]
    for kind, encoding, body in parts:
        out.append(b"--XX\r\nContent-Type: %s\r\nContent-Transfer-Encoding: %s\r\n\r\n%s\r\n" % (kind, encoding, body))
    out.append(b"--XX--\r\n")
    return b"".join(out)


ENCODED = mime((b"application/octet-stream", b"base64", base64.encodebytes(NUL_BYTES).replace(b"\n", b"\r\n").strip()),
               (b"text/plain; charset=utf-8", b"quoted-printable", QP_BODY),
               (b"text/plain", b"7bit", b"plain text"))


def answer(raw: RawIMAP, command: bytes) -> tuple[bytes, bytes]:
    """(everything of the FETCH answer, the tagged line)."""
    raw.n += 1
    tag = b"r%d" % raw.n
    raw.send(tag + b" " + command + b"\r\n")
    out = b""
    while True:
        line = raw.readline()
        if line.startswith(tag + b" "):
            return out, line
        out += line
        literal = re.search(rb"~?\{(\d+)\}\r\n$", line)
        if literal:
            out += raw.file.read(int(literal.group(1)))


def login(port: int, user: str, password: str) -> RawIMAP:
    raw = RawIMAP(port)
    assert raw.cmd(f"LOGIN {user} {password}")[-1].split()[1] == b"OK"
    return raw


def append(raw: RawIMAP, mailbox: bytes, message: bytes, literal8: bool = False) -> None:
    raw.send(b"a APPEND %s %s{%d+}\r\n" % (mailbox, b"~" if literal8 else b"", len(message)) + message + b"\r\n")
    assert raw.until(b"a")[-1].startswith(b"a OK"), message[:60]


# What each FETCH answers for ENCODED, the same from us and from Dovecot.
CASES = [
    (b"FETCH 1 BINARY.PEEK[1]", b"* 1 FETCH (BINARY[1] ~{7}\r\n" + NUL_BYTES + b")\r\n"),
    (b"FETCH 1 BINARY.SIZE[1]", b"* 1 FETCH (BINARY.SIZE[1] 7)\r\n"),
    (b"FETCH 1 BINARY.PEEK[1]<1.3>", b"* 1 FETCH (BINARY[1]<1> ~{3}\r\nb\x00c)\r\n"),
    (b"FETCH 1 BINARY.PEEK[2]", b"* 1 FETCH (BINARY[2] ~{%d}\r\n" % len(QP_DECODED) + QP_DECODED + b")\r\n"),
    (b"FETCH 1 BINARY.SIZE[2]", b"* 1 FETCH (BINARY.SIZE[2] %d)\r\n" % len(QP_DECODED)),
    (b"FETCH 1 BINARY.PEEK[3]", b"* 1 FETCH (BINARY[3] {10}\r\nplain text)\r\n"),
    (b"FETCH 1 BINARY.SIZE[3]", b"* 1 FETCH (BINARY.SIZE[3] 10)\r\n"),
]


def test_binary_decodes_exactly(env):
    folder = env.fresh("Binary")
    raw = env.raw(login=True)
    assert b"BINARY" in raw.cmd("CAPABILITY")[0].split()
    append(raw, b"Binary", ENCODED)
    raw.cmd("SELECT Binary")
    for command, expected in CASES:
        got, tagged = answer(raw, command)
        assert tagged.split()[1] == b"OK" and got == expected, (command, got)
    # A part that is not there is NIL, as BODY[4] is (Dovecot answers an empty string).
    assert answer(raw, b"FETCH 1 BINARY.PEEK[4]")[0] == b"* 1 FETCH (BINARY[4] NIL)\r\n"
    # BINARY[] of the whole message: the message as stored; BINARY sets \Seen, PEEK does not.
    got, _ = answer(raw, b"FETCH 1 BINARY.PEEK[]")
    assert got == b"* 1 FETCH (BINARY[] {%d}\r\n" % len(ENCODED) + ENCODED + b")\r\n"
    got, _ = answer(raw, b"FETCH 1 (BINARY[3] FLAGS)")
    assert b"\\Seen" in got
    assert env.rt.call(folder.message, 1, ["flags"]).flags == ["\\Seen"]
    raw.close()


def test_unknown_encoding_is_unknown_cte(env):
    env.fresh("Uu")
    raw = env.raw(login=True)
    append(raw, b"Uu", mime((b"text/plain", b"x-uuencode", b"begin 644 x\r\n`\r\nend"),
                            (b"text/plain", b"base64", b"aGVsbG8=")))
    raw.cmd("SELECT Uu")
    for command in (b"FETCH 1 BINARY.PEEK[1]", b"FETCH 1 BINARY.SIZE[1]", b"UID FETCH 1 BINARY[1]"):
        _, tagged = answer(raw, command)
        assert tagged.split()[1:3] == [b"NO", b"[UNKNOWN-CTE]"], (command, tagged)
    assert answer(raw, b"FETCH 1 BINARY.PEEK[2]")[0] == b"* 1 FETCH (BINARY[2] {5}\r\nhello)\r\n"
    assert answer(raw, b"FETCH 1 BODY.PEEK[1]")[1].split()[1] == b"OK"  # undecoded is fine
    raw.close()


def test_literal8_append_and_nul_octets(env):
    folder = env.fresh("Nul")
    raw = env.raw(login=True)
    message = mime((b"application/octet-stream", b"binary", NUL_BYTES))
    append(raw, b"Nul", message, literal8=True)
    # A literal (not literal8) cannot carry NUL: refused as the grammar says.
    raw.send(b"b APPEND Nul {%d+}\r\n" % len(message) + message + b"\r\n")
    assert raw.until(b"b")[-1].startswith(b"b BAD")
    raw.cmd("SELECT Nul")
    # Stored as sent.
    href, _ = env.rt.call(folder.open_stream, 1)
    parts: list[bytes] = []
    env.rt.call(folder.stream, href, parts.append)
    assert b"".join(parts) == message
    # BINARY: exactly, in a literal8.
    assert answer(raw, b"FETCH 1 BINARY.PEEK[1]")[0] == b"* 1 FETCH (BINARY[1] ~{7}\r\n" + NUL_BYTES + b")\r\n"
    assert answer(raw, b"FETCH 1 BINARY.PEEK[]")[0] == b"* 1 FETCH (BINARY[] ~{%d}\r\n" % len(message) + message + b")\r\n"
    # BODY: a literal, NUL as 0x80, the octet count unchanged (RFC822.SIZE holds).
    shown = message.replace(b"\x00", b"\x80")
    got, _ = answer(raw, b"FETCH 1 (RFC822.SIZE BODY.PEEK[])")
    assert got == b"* 1 FETCH (RFC822.SIZE %d BODY[] {%d}\r\n" % (len(message), len(message)) + shown + b")\r\n"
    got, _ = answer(raw, b"FETCH 1 BODY.PEEK[1]<1.4>")
    assert got == b"* 1 FETCH (BODY[1]<1> {4}\r\nb\x80cd)\r\n"
    raw.close()


def test_big_parts_are_decoded_while_streamed(env):
    env.fresh("BigBinary")
    payload = os.urandom(3 * 1024 * 1024) + b"\x00"
    qp_lines = b"".join(b"line %06d trailing \t\r\nsoft=\r\nbreak=3D\r\n" % i for i in range(40000))
    qp_expected = b"".join(b"line %06d trailing\r\nsoftbreak=\r\n" % i for i in range(40000))
    message = mime((b"application/octet-stream", b"base64", base64.encodebytes(payload).replace(b"\n", b"\r\n").strip()),
                   (b"text/plain", b"quoted-printable", qp_lines))
    assert len(message) > 2 * 1024 * 1024
    raw = env.raw(login=True)
    append(raw, b"BigBinary", message)
    raw.cmd("SELECT BigBinary")
    assert answer(raw, b"FETCH 1 BINARY.SIZE[1]")[0] == b"* 1 FETCH (BINARY.SIZE[1] %d)\r\n" % len(payload)
    got, _ = answer(raw, b"FETCH 1 BINARY.PEEK[1]")
    assert got == b"* 1 FETCH (BINARY[1] ~{%d}\r\n" % len(payload) + payload + b")\r\n"
    got, _ = answer(raw, b"FETCH 1 BINARY.PEEK[1]<1000.5000>")
    assert got == b"* 1 FETCH (BINARY[1]<1000> ~{5000}\r\n" + payload[1000:6000] + b")\r\n"
    got, _ = answer(raw, b"FETCH 1 BINARY.PEEK[2]")
    assert got == b"* 1 FETCH (BINARY[2] {%d}\r\n" % len(qp_expected) + qp_expected + b")\r\n"
    raw.close()


def test_imaplib_reads_a_literal8(env):
    env.fresh("Lib8")
    client = env.imap()
    raw = env.raw(login=True)
    append(raw, b"Lib8", ENCODED)
    raw.close()
    client.select("Lib8")
    typ, data = client.fetch("1", "(BINARY.PEEK[1] BINARY.SIZE[2])")
    assert typ == "OK" and data[0][1] == NUL_BYTES
    assert b"BINARY.SIZE[2] %d" % len(QP_DECODED) in data[1]
    client.logout()


def test_the_same_answers_as_dovecot(env, open_dir):
    PrivateDovecot.install("imap")
    dovecot = PrivateDovecot(os.path.join(open_dir, "dovecot"), "imap", "peer", "{PLAIN}peersecret").start()
    try:
        theirs = RawIMAP(dovecot.port)
        assert theirs.cmd("LOGIN peer peersecret")[-1].split()[1] == b"OK"
        append(theirs, b"INBOX", ENCODED)
        theirs.cmd("SELECT INBOX")
        env.fresh("Compared")
        ours = env.raw(login=True)
        append(ours, b"Compared", ENCODED)
        ours.cmd("SELECT Compared")
        for command, expected in CASES:
            assert answer(theirs, command)[0] == answer(ours, command)[0] == expected, command
        theirs.close()
        ours.close()
    finally:
        dovecot.stop()
