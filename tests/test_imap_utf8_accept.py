"""UTF8=ACCEPT (RFC 6855) against a real `groupware serve`: ENABLE, mailbox names in UTF-8
both ways once it is on (modified UTF-7 before and on other connections), APPEND with
`UTF8 (~{n})`, and a message with UTF-8 header fields read back as stored."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.gateway_env("imap")

NAME = "Grüße €".encode()
MESSAGE = "From: Jörg <jörg@example.com>\r\nSubject: Grüße\r\n\r\nHallo\r\n".encode()


def test_utf8_accept(env):
    raw = env.raw(login=True)
    raw.cmd(b'DELETE "' + NAME + b'"')
    assert b"UTF8=ACCEPT" in raw.cmd("CAPABILITY")[0].split()
    assert raw.cmd("ENABLE UTF8=ACCEPT")[0] == b"* ENABLED UTF8=ACCEPT\r\n"
    assert raw.cmd(b'CREATE "' + NAME + b'"')[-1].split()[1] == b"OK"
    listed = b"".join(raw.cmd(b'LIST "" "Gr' + "ü".encode() + b'*"'))
    assert b"{%d}\r\n" % len(NAME) + NAME in listed, listed
    raw.send(b'a APPEND "' + NAME + b'" (\\Seen) UTF8 (~{%d}\r\n' % len(MESSAGE))
    assert raw.readline().startswith(b"+ ")
    raw.send(MESSAGE + b")\r\n")
    assert raw.until(b"a")[-1].startswith(b"a OK [APPENDUID")
    status = b"".join(raw.cmd(b'STATUS "' + NAME + b'" (MESSAGES)'))
    assert status == b"* STATUS {%d}\r\n" % len(NAME) + NAME + b" (MESSAGES 1)\r\n" + status.split(b"\r\n")[-2] + b"\r\n"
    assert b"* 1 EXISTS\r\n" in raw.cmd(b'SELECT "' + NAME + b'"')
    assert MESSAGE in b"".join(raw.cmd("FETCH 1 BODY.PEEK[]"))
    raw.close()
    # Another connection without it sees the name in modified UTF-7.
    other = env.raw(login=True)
    listed = b"".join(other.cmd('LIST "" "Gr*"'))
    assert b'"Gr&APwA3w-e &IKw-"' in listed, listed
    raw8 = b'a APPEND "Gr&APwA3w-e &IKw-" UTF8 (~{1}\r\nx)\r\n'
    other.send(raw8)
    assert other.readline().startswith(b"+ ")  # the literal is taken before the command is read
    assert other.until(b"a")[-1].startswith(b"a BAD")
    assert other.cmd('DELETE "Gr&APwA3w-e &IKw-"')[-1].split()[1] == b"OK"
    other.close()
