"""CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4) against a real `groupware serve`: a
search kept up to date while another session changes the mailbox."""
from __future__ import annotations

import pytest

from imap_lines import said
from waiting import scaled

pytestmark = pytest.mark.gateway_env("imap", imap_max_search_contexts="2")

MESSAGE = b"From: a@example.com\r\nSubject: context %d\r\n\r\nbody %d\r\n"


def session(env):
    raw = env.raw(login=True)
    raw.sock.settimeout(scaled(10))
    return raw


def append(raw, mailbox: str, n: int, flags: str = "") -> None:
    data = MESSAGE % (n, n)
    reply = raw.cmd(b"APPEND %s (%s) {%d+}\r\n%s" % (mailbox.encode(), flags.encode(), len(data), data))
    assert reply[-1].split()[1] == b"OK", reply


def noop(raw) -> list[bytes]:
    """NOOP's answer and the updates that follow it."""
    return raw.cmd("NOOP") + said(raw)


def test_advertised(env):
    raw = session(env)
    capabilities = raw.cmd("CAPABILITY")[0].split()
    assert b"CONTEXT=SEARCH" in capabilities and b"CONTEXT=SORT" in capabilities
    raw.close()


def test_search_update_adds_and_removes(env):
    env.fresh("ctxsearch", 3)
    watcher, other = session(env), session(env)
    watcher.cmd("SELECT ctxsearch")
    assert watcher.cmd("UID SEARCH RETURN (ALL UPDATE) UNSEEN") == [
        b'* ESEARCH (TAG "r3") UID ALL 1:3\r\n', b"r3 OK UID SEARCH completed\r\n"]
    other.cmd("SELECT ctxsearch")
    other.cmd("STORE 2 +FLAGS.SILENT (\\Seen)")
    lines = noop(watcher)
    assert b'* ESEARCH (TAG "r3") UID REMOVEFROM (0 2)\r\n' in lines, lines
    append(other, "ctxsearch", 4)
    append(other, "ctxsearch", 5, "\\Seen")
    lines = noop(watcher)
    assert b'* ESEARCH (TAG "r3") UID ADDTO (0 4)\r\n' in lines, lines
    assert lines.index(b"* 5 EXISTS\r\n") < lines.index(b'* ESEARCH (TAG "r3") UID ADDTO (0 4)\r\n')
    other.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    other.cmd("EXPUNGE")
    lines = noop(watcher)
    assert b'* ESEARCH (TAG "r3") UID REMOVEFROM (0 1)\r\n' in lines, lines
    # Own changes count as well.
    watcher.cmd("UID STORE 3 +FLAGS.SILENT (\\Seen)")
    lines = noop(watcher)
    assert b'* ESEARCH (TAG "r3") UID REMOVEFROM (0 3)\r\n' in lines, lines
    # CANCELUPDATE ends it.
    assert watcher.cmd('CANCELUPDATE "r3"')[-1].startswith(b"r%d OK" % watcher.n)
    append(other, "ctxsearch", 6)
    lines = noop(watcher)
    assert not any(b"ESEARCH" in line for line in lines), lines
    other.close()
    watcher.close()


def test_sort_update_says_where(env):
    env.fresh("ctxsort", 0)
    watcher, other = session(env), session(env)
    for n in (1, 2, 3):
        append(other, "ctxsort", n)  # subjects "context 1" to "context 3"
    watcher.cmd("SELECT ctxsort")
    assert watcher.cmd("UID SORT RETURN (ALL UPDATE) (REVERSE SUBJECT) UTF-8 ALL")[0] == \
        b'* ESEARCH (TAG "r3") UID ALL 3,2,1\r\n'
    append(other, "ctxsort", 4)
    lines = noop(watcher)
    assert b'* ESEARCH (TAG "r3") UID ADDTO (1 4)\r\n' in lines, lines
    other.cmd("SELECT ctxsort")
    other.cmd("UID STORE 2 +FLAGS.SILENT (\\Deleted)")
    other.cmd("EXPUNGE")
    lines = noop(watcher)
    # 4,3,2,1: uid 2 was third.
    assert b'* ESEARCH (TAG "r3") UID REMOVEFROM (3 2)\r\n' in lines, lines
    other.close()
    watcher.close()


def test_count_only_is_answered_again(env):
    env.fresh("ctxcount", 3)
    watcher, other = session(env), session(env)
    watcher.cmd("SELECT ctxcount")
    assert watcher.cmd("UID SEARCH RETURN (COUNT UPDATE) DELETED")[0] == b'* ESEARCH (TAG "r3") UID COUNT 0\r\n'
    other.cmd("SELECT ctxcount")
    other.cmd("STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    lines = noop(watcher)
    assert b'* ESEARCH (TAG "r3") UID COUNT 2\r\n' in lines, lines
    other.close()
    watcher.close()


def test_updates_under_idle_come_at_once(env):
    env.fresh("ctxidle", 1)
    watcher, other = session(env), session(env)
    watcher.cmd("SELECT ctxidle")
    watcher.cmd("UID SEARCH RETURN (UPDATE) UNSEEN")
    watcher.send(b"i IDLE\r\n")
    assert watcher.readline() == b"+ idling\r\n"
    append(other, "ctxidle", 2)
    assert watcher.readline() == b"* 2 EXISTS\r\n"
    line = watcher.readline()
    if line.endswith(b" RECENT\r\n"):
        line = watcher.readline()
    assert line == b'* ESEARCH (TAG "r3") UID ADDTO (0 2)\r\n'
    watcher.send(b"DONE\r\n")
    assert watcher.readline() == b"i OK IDLE completed\r\n"
    other.close()
    watcher.close()


def test_limits_and_refusals(env):
    env.fresh("ctxlimit", 2)
    raw = session(env)
    raw.cmd("SELECT ctxlimit")
    assert raw.cmd("SEARCH RETURN (ALL UPDATE) ALL")[-1].startswith(b"r3 BAD")
    assert raw.cmd("UID SEARCH RETURN (ALL UPDATE) ALL")[-1].startswith(b"r4 OK")
    assert raw.cmd("UID SEARCH RETURN (ALL UPDATE) SEEN")[-1].startswith(b"r5 OK")
    lines = raw.cmd("UID SEARCH RETURN (ALL UPDATE) UNSEEN")
    assert lines[0] == b'* ESEARCH (TAG "r6") UID ALL 1:2\r\n'
    assert lines[1].startswith(b'* NO [NOUPDATE "r6"]'), lines
    assert raw.cmd('CANCELUPDATE "r6"')[-1].startswith(b"r7 BAD")
    assert raw.cmd('CANCELUPDATE "r4" "r5"')[-1].startswith(b"r8 OK")
    assert raw.cmd("CANCELUPDATE")[-1].startswith(b"r9 BAD")
    raw.close()
