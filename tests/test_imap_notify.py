"""NOTIFY (RFC 5465) against a real `groupware serve`: two sessions, one changing, the
other told without asking (no IDLE, no NOOP)."""
from __future__ import annotations

import pytest

from imap_lines import quiet
from waiting import scaled

pytestmark = pytest.mark.gateway_env("imap", imap_notify_max_mailboxes="4")

MESSAGE = b"From: a@example.com\r\nSubject: notify %d\r\n\r\nbody %d\r\n"


def session(env):
    raw = env.raw(login=True)
    raw.sock.settimeout(scaled(10))
    return raw


def append(raw, mailbox: str, n: int) -> None:
    data = MESSAGE % (n, n)
    assert raw.cmd(b"APPEND %s {%d+}\r\n%s" % (mailbox.encode(), len(data), data))[-1].split()[1] == b"OK"


def test_notify_is_advertised(env):
    raw = session(env)
    assert b" NOTIFY" in raw.cmd("CAPABILITY")[0]
    raw.close()


def test_selected_mailbox_changes_arrive_outside_idle(env):
    env.fresh("nsel", 1)
    watcher, other = session(env), session(env)
    watcher.cmd("SELECT nsel")
    reply = watcher.cmd("NOTIFY SET (selected (MessageNew (UID BODY.PEEK[HEADER.FIELDS (Subject)]) "
                        "MessageExpunge FlagChange))")
    assert reply[-1].startswith(b"r3 OK"), reply
    append(other, "nsel", 2)
    assert watcher.readline() == b"* 2 EXISTS\r\n"
    assert watcher.readline() == b"* 1 RECENT\r\n"
    # MessageNew's fetch attributes, for the new message only (RFC 5465 §5.2).
    fetched = watcher.readline()
    assert fetched.startswith(b"* 2 FETCH (UID 2 BODY[HEADER.FIELDS (SUBJECT)] {"), fetched
    size = int(fetched.rsplit(b"{", 1)[1].split(b"}")[0])
    assert watcher.file.read(size) == b"Subject: notify 2\r\n\r\n"
    assert watcher.readline() == b")\r\n"
    other.cmd("SELECT nsel")
    other.cmd("STORE 1 +FLAGS.SILENT (\\Flagged)")
    assert watcher.readline() == b"* 1 FETCH (UID 1 FLAGS (\\Flagged))\r\n"
    other.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert watcher.readline() == b"* 1 FETCH (UID 1 FLAGS (\\Flagged \\Deleted))\r\n"
    other.cmd("EXPUNGE")
    assert watcher.readline() == b"* 1 EXPUNGE\r\n"
    # The connection is in step: a command right after is answered as ever.
    assert watcher.cmd("UID FETCH 2 FLAGS") == [b"* 1 FETCH (UID 2 FLAGS (\\Recent))\r\n",
                                                 b"r4 OK UID FETCH completed\r\n"]
    other.close()
    watcher.close()


def test_selected_delayed_keeps_expunges_for_a_command(env):
    env.fresh("ndelay", 2)
    watcher, other = session(env), session(env)
    watcher.cmd("SELECT ndelay")
    assert watcher.cmd("NOTIFY SET (selected-delayed (MessageNew MessageExpunge))")[-1].startswith(b"r3 OK")
    other.cmd("SELECT ndelay")
    other.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert watcher.readline() == b"* 1 FETCH (UID 1 FLAGS (\\Deleted))\r\n"
    other.cmd("EXPUNGE")
    assert quiet(watcher)
    assert watcher.cmd("NOOP") == [b"* 1 EXPUNGE\r\n", b"r4 OK NOOP completed\r\n"]
    other.close()
    watcher.close()


def test_other_mailboxes_are_told_as_status(env):
    env.fresh("nsel2", 1)
    env.fresh("nother", 1)
    watcher, other = session(env), session(env)
    watcher.cmd("SELECT nsel2")
    reply = watcher.cmd("NOTIFY SET STATUS (selected (MessageNew MessageExpunge)) "
                        "(mailboxes nother (MessageNew MessageExpunge FlagChange))")
    assert reply[0].startswith(b"* STATUS nother (MESSAGES 1 UIDNEXT 2 UIDVALIDITY "), reply
    assert reply[0].endswith(b" UNSEEN 1)\r\n")
    assert reply[-1].startswith(b"r3 OK")
    append(other, "nother", 2)
    assert watcher.readline() == b"* STATUS nother (MESSAGES 2 UIDNEXT 3 UNSEEN 2)\r\n"
    other.cmd("SELECT nother")
    other.cmd("STORE 1:2 +FLAGS.SILENT (\\Seen)")
    assert watcher.readline() == b"* STATUS nother (UNSEEN 0)\r\n"
    other.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    other.cmd("EXPUNGE")
    assert watcher.readline() == b"* STATUS nother (MESSAGES 1)\r\n"
    # A mailbox no group covers is not told.
    env.fresh("nunwatched", 0)
    append(other, "nunwatched", 1)
    assert quiet(watcher)
    # NOTIFY NONE ends it all.
    assert watcher.cmd("NOTIFY NONE")[-1].startswith(b"r4 OK")
    append(other, "nother", 3)
    assert quiet(watcher)
    other.close()
    watcher.close()


def test_notifications_wait_for_a_running_command(env):
    """A STATUS never lands inside another command's answer: only before or after it."""
    env.fresh("nbusy", 30)
    env.fresh("nbusy2", 0)
    watcher, other = session(env), session(env)
    watcher.cmd("SELECT nbusy")
    watcher.cmd("NOTIFY SET (mailboxes nbusy2 (MessageNew MessageExpunge))")
    for n in range(3):
        watcher.send(b"f%d FETCH 1:* (BODY.PEEK[] FLAGS)\r\n" % n)
        append(other, "nbusy2", n)
        lines = watcher.until(b"f%d" % n)
        status = [i for i, line in enumerate(lines) if line.startswith(b"* STATUS")]
        fetches = [i for i, line in enumerate(lines) if b" FETCH (" in line]
        assert len(fetches) == 30
        assert all(i < fetches[0] or i > fetches[-1] for i in status), lines
    other.close()
    watcher.close()


def test_mailbox_names_and_subscriptions_of_another_session(env):
    watcher, other = session(env), session(env)
    for name in ("nfam/kid", "nfam/renamed", "nfam"):
        other.cmd(f"DELETE {name}")
    assert watcher.cmd("NOTIFY SET (subtree nfam (MailboxName SubscriptionChange))")[-1].startswith(b"r2 OK")
    other.cmd("CREATE nfam")
    assert watcher.readline() == b'* LIST () "/" nfam\r\n'
    other.cmd("CREATE nfam/kid")
    assert watcher.readline() == b'* LIST () "/" nfam/kid\r\n'
    other.cmd("RENAME nfam/kid nfam/renamed")
    assert watcher.readline() == b'* LIST () "/" nfam/renamed ("OLDNAME" (nfam/kid))\r\n'
    other.cmd("SUBSCRIBE nfam/renamed")
    assert watcher.readline() == b'* LIST (\\Subscribed) "/" nfam/renamed\r\n'
    other.cmd("UNSUBSCRIBE nfam/renamed")
    assert watcher.readline() == b'* LIST () "/" nfam/renamed\r\n'
    other.cmd("DELETE nfam/renamed")
    assert watcher.readline() == b'* LIST (\\NonExistent) "/" nfam/renamed\r\n'
    other.cmd("CREATE nelsewhere")  # outside the subtree
    assert quiet(watcher)
    other.cmd("DELETE nelsewhere")
    # A group with NONE ends the search for a mailbox's events; earlier groups still count.
    assert watcher.cmd("NOTIFY SET (mailboxes nfam/quiet NONE) (subtree nfam (MailboxName)) "
                       "(mailboxes nfam/quiet2 (MailboxName))")[-1].startswith(b"r%d OK" % watcher.n)
    other.cmd("CREATE nfam/quiet")
    other.cmd("CREATE nfam/loud")
    assert watcher.readline() == b'* LIST () "/" nfam/loud\r\n'
    other.cmd("DELETE nfam/quiet")
    other.cmd("DELETE nfam/loud")
    assert watcher.readline() == b'* LIST (\\NonExistent) "/" nfam/loud\r\n'
    assert watcher.cmd("NOTIFY SET (subtree nfam (MailboxName SubscriptionChange))")[-1].startswith(
        b"r%d OK" % watcher.n)
    # The session's own changes are not told back to it.
    watcher.cmd("CREATE nfam/mine")
    assert quiet(watcher)
    watcher.cmd("DELETE nfam/mine")
    other.close()
    watcher.close()


@pytest.mark.parametrize("command, answer", [
    ("NOTIFY SET (selected (MessageNew MessageExpunge AnnotationChange))",
     b"NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)]"),
    ("NOTIFY SET (selected (MessageNew))", b"BAD"),
    ("NOTIFY SET (selected (FlagChange))", b"BAD"),
    ("NOTIFY SET (inboxes (MessageNew (FLAGS) MessageExpunge))", b"BAD"),
    ("NOTIFY SET (selected (MessageNew MessageExpunge)) (selected-delayed (MessageNew MessageExpunge))", b"BAD"),
    ("NOTIFY SET (everything (MessageNew MessageExpunge))", b"BAD"),
    ("NOTIFY SET (selected (MessageNew MessageExpunge MailboxName))", b"BAD"),
    ("NOTIFY SET", b"BAD"),
    ("NOTIFY SET (personal (MessageNew MessageExpunge))", b"NO [LIMIT]"),
])
def test_refused(env, command, answer):
    raw = session(env)
    for n in range(5):
        raw.cmd(f"CREATE nlimit{n}")
    assert raw.cmd("NOTIFY SET (mailboxes nlimit0 (MessageNew MessageExpunge))")[-1].startswith(b"r%d OK" % raw.n)
    reply = raw.cmd(command)[-1]
    assert reply.startswith(b"r%d " % raw.n + answer), reply
    # What was set before stays in force.
    other = session(env)
    append(other, "nlimit0", 1)
    assert raw.readline().startswith(b"* STATUS nlimit0 (MESSAGES ")
    other.close()
    assert raw.cmd("NOOP")[-1].startswith(b"r%d OK" % raw.n)  # the connection stays healthy
    raw.close()


def test_notify_goes_on_after_idle(env):
    env.fresh("nidle", 1)
    watcher, other = session(env), session(env)
    watcher.cmd("SELECT nidle")
    watcher.cmd("NOTIFY SET (selected (MessageNew MessageExpunge))")
    watcher.send(b"i IDLE\r\n")
    assert watcher.readline() == b"+ idling\r\n"
    append(other, "nidle", 2)
    assert watcher.readline() == b"* 2 EXISTS\r\n"
    watcher.send(b"DONE\r\n")
    lines = [watcher.readline()]
    if lines[0].endswith(b" RECENT\r\n"):
        lines.append(watcher.readline())
    assert lines[-1] == b"i OK IDLE completed\r\n"
    append(other, "nidle", 3)  # after IDLE: still told without asking
    assert watcher.readline() == b"* 3 EXISTS\r\n"
    other.close()
    watcher.close()
