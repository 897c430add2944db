"""IMAP4rev2 (RFC 9051) by `ENABLE IMAP4rev2`, against a real `groupware serve`: the
answers RFC 9051 changed, and RFC 3501's until the client enables it."""
from __future__ import annotations

import pytest

from waiting import scaled

pytestmark = pytest.mark.gateway_env("imap")


def session(env):
    raw = env.raw(login=True)
    raw.sock.settimeout(scaled(10))
    return raw


def test_advertised_beside_imap4rev1_and_enabled(env):
    raw = session(env)
    capabilities = raw.cmd("CAPABILITY")[0].split()
    assert b"IMAP4rev1" in capabilities and b"IMAP4rev2" in capabilities
    assert raw.cmd("ENABLE IMAP4rev2") == [b"* ENABLED IMAP4rev2\r\n", b"r3 OK ENABLE completed\r\n"]
    assert raw.cmd("ENABLE IMAP4rev2") == [b"* ENABLED\r\n", b"r4 OK ENABLE completed\r\n"]
    raw.close()


def test_imap4rev1_answers_until_enabled(env):
    env.fresh("rev1box", 3)
    raw = session(env)
    lines = raw.cmd("SELECT rev1box")
    assert any(line.startswith(b"* ") and line.endswith(b" RECENT\r\n") for line in lines), lines
    assert any(b"[UNSEEN 1]" in line for line in lines)
    assert raw.cmd("SEARCH ALL")[0] == b"* SEARCH 1 2 3\r\n"
    raw.close()


def test_select_fetch_and_search_after_enable(env):
    env.fresh("rev2box", 3)
    env.fresh("rev2other", 0)
    raw = session(env)
    raw.cmd("ENABLE IMAP4rev2")
    lines = raw.cmd("SELECT rev2box")
    assert b"* 3 EXISTS\r\n" in lines
    assert b'* LIST (\\HasNoChildren) "/" rev2box\r\n' in lines  # RFC 9051 §6.3.2
    assert not any(b"RECENT" in line or b"[UNSEEN" in line for line in lines), lines
    assert lines[-1].startswith(b"r3 OK [READ-WRITE]")
    # No \Recent in FLAGS (the messages are recent to this session all the same).
    assert raw.cmd("FETCH 1 FLAGS")[0] == b"* 1 FETCH (FLAGS ())\r\n"
    # SEARCH answers with ESEARCH, RFC 9051 §6.4.4's example form.
    raw.cmd("STORE 2 +FLAGS.SILENT (\\Seen)")
    assert raw.cmd("SEARCH UNSEEN")[0] == b'* ESEARCH (TAG "r6") ALL 1,3\r\n'
    assert raw.cmd("UID SEARCH ALL")[0] == b'* ESEARCH (TAG "r7") UID ALL 1:3\r\n'
    assert raw.cmd("SEARCH DELETED") == [b'* ESEARCH (TAG "r8")\r\n', b"r8 OK SEARCH completed\r\n"]
    # New mail: EXISTS, no RECENT.
    env.rt.call(env.folder("rev2box").append, b"Subject: new\r\n\r\nnew\r\n")
    lines = raw.cmd("NOOP")
    assert lines == [b"* 4 EXISTS\r\n", b"r9 OK NOOP completed\r\n"], lines
    # Selecting another mailbox closes this one with [CLOSED] (RFC 9051 §7.1).
    lines = raw.cmd("EXAMINE rev2other")
    assert lines[0].startswith(b"* OK [CLOSED]"), lines
    raw.close()


def test_status_deleted_and_haschildren(env):
    env.fresh("rev2status", 3)
    raw = session(env)
    raw.cmd("SELECT rev2status")
    raw.cmd("STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    assert raw.cmd("STATUS rev2status (MESSAGES DELETED)")[0] == b"* STATUS rev2status (MESSAGES 3 DELETED 2)\r\n"
    lines = raw.cmd('LIST "" rev2status RETURN (STATUS (DELETED))')
    assert b"* STATUS rev2status (DELETED 2)\r\n" in lines, lines
    raw.cmd("DELETE rev2parent/kid")
    raw.cmd("DELETE rev2parent")
    raw.cmd("CREATE rev2parent/kid")
    assert raw.cmd("DELETE rev2parent")[-1].split()[1] == b"OK"  # now \\Noselect above its inferiors
    assert b"[ALREADYEXISTS]" in raw.cmd("DELETE rev2parent")[-1]
    raw.cmd("ENABLE IMAP4rev2")
    assert b"NO [HASCHILDREN]" in raw.cmd("DELETE rev2parent")[-1]
    raw.cmd("DELETE rev2parent/kid")
    raw.cmd("DELETE rev2parent")
    raw.close()


def test_mailbox_names_are_utf8(env):
    name = "Büro/Grüße".encode()
    raw = session(env)
    raw.cmd("DELETE B&APw-ro/Gr&APwA3w-e")
    raw.cmd("DELETE B&APw-ro")
    # Before ENABLE, modified UTF-7 (RFC 3501 §5.1.3).
    assert raw.cmd("CREATE B&APw-ro/Gr&APwA3w-e")[-1].split()[1] == b"OK"
    assert raw.cmd('LIST "" B&APw-ro/*')[0] == b'* LIST (\\HasNoChildren) "/" B&APw-ro/Gr&APwA3w-e\r\n'
    raw.cmd("ENABLE IMAP4rev2")
    # (8-bit names go as literals, as after ENABLE UTF8=ACCEPT.)
    listed = b"".join(raw.cmd(b'LIST "" "B' + "ü".encode() + b'ro/*"'))
    assert listed.startswith(b'* LIST (\\HasNoChildren) "/" {%d}\r\n' % len(name) + name + b"\r\n"), listed
    selected = b"".join(raw.cmd(b'SELECT "' + name + b'"'))
    assert b'* LIST (\\HasNoChildren) "/" {%d}\r\n' % len(name) + name + b"\r\n" in selected, selected
    raw.cmd("CLOSE")
    raw.cmd(b'DELETE "' + name + b'"')
    raw.cmd(b'DELETE "' + "Büro".encode() + b'"')
    raw.close()
