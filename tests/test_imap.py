"""The IMAP gateway inside a real `groupware serve`, driven with imaplib and raw sockets."""
from __future__ import annotations

import base64
import imaplib
import os
import socket
import time

import pytest

from harness import ServerProcess, non_loopback_address
from imap_env import MESSAGE, Env, standalone, stop
from raw_clients import RawIMAP, tls_context
from waiting import wait_until

from gateways.imap.grammar.mutf7 import encode as mutf7

pytestmark = [pytest.mark.gateway_env("imap", tls=True), pytest.mark.database_engines("sqlite", "mariadb")]


def server_log(env: Env) -> str:
    return open(os.path.join(env.server.data_dir, "server.log"), encoding="utf-8").read()


# -- capabilities and login ---------------------------------------------------------------

def test_capabilities_follow_the_state(env):
    raw = env.raw()
    assert raw.greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 ")
    before = raw.cmd("CAPABILITY")[0].split()[2:]
    assert b"STARTTLS" in before and b"AUTH=PLAIN" in before and b"SASL-IR" in before
    assert b"LITERAL-" in before and b"LITERAL+" not in before and b"LOGINDISABLED" not in before
    ok = raw.cmd(f"LOGIN demo {env.password}")[-1]
    assert ok.startswith(b"r2 OK [CAPABILITY IMAP4rev1 ")
    after = raw.cmd("CAPABILITY")[0].split()[2:]
    assert b"LITERAL+" in after and b"STARTTLS" not in after and b"AUTH=PLAIN" not in after
    for name in (b"ID", b"ENABLE", b"NAMESPACE", b"UNSELECT", b"CHILDREN", b"SPECIAL-USE",
                 b"LIST-EXTENDED", b"LIST-STATUS"):
        assert name in after
    raw.close()


def test_login_variants(env):
    m = env.imap(login=False)
    assert m.login("demo", env.password)[0] == "OK"
    assert m.logout()[0] == "BYE"
    token = base64.b64encode(b"\0demo\0" + env.password.encode())
    raw = env.raw()
    assert raw.cmd(b"AUTHENTICATE PLAIN " + token)[-1].startswith(b"r1 OK [CAPABILITY")
    raw.close()
    # Without an initial response: an empty continuation, then the response.
    raw = env.raw()
    raw.send(b"a AUTHENTICATE PLAIN\r\n")
    assert raw.readline() == b"+ \r\n"
    raw.send(token + b"\r\n")
    assert raw.until(b"a")[-1].startswith(b"a OK")
    raw.close()
    raw = env.raw()
    raw.send(b"a AUTHENTICATE PLAIN\r\n")
    assert raw.readline() == b"+ \r\n"
    raw.send(b"*\r\n")
    assert raw.until(b"a")[-1].startswith(b"a BAD")
    assert raw.cmd("AUTHENTICATE CRAM-MD5")[-1].startswith(b"r1 NO")
    # LOGIN with literals, the password with a space in it.
    raw.send(b"b LOGIN {4}\r\n")
    assert raw.readline().startswith(b"+ ")
    raw.send(b"demo {%d+}\r\n" % len(env.password) + env.password.encode() + b"\r\n")
    assert raw.until(b"b")[-1].startswith(b"b OK")
    raw.close()


def test_bad_password_and_unknown_user_answer_the_same(env):
    answers = []
    for user in ("demo", "nosuchuser"):
        m = env.imap(login=False)
        with pytest.raises(imaplib.IMAP4.error) as info:
            m.login(user, "wrong password")
        answers.append(str(info.value))
        m.logout()
    assert answers[0] == answers[1] and "[AUTHENTICATIONFAILED]" in answers[0]
    wait_until(lambda: "imap login failed: user=nosuchuser" in server_log(env),
               message="no log line for the failed logins")
    log = server_log(env)
    assert "imap login failed: user=demo rip=127.0.0.1" in log
    assert "imap login failed: user=nosuchuser rip=127.0.0.1" in log


def test_imap_switched_off_for_a_user(env):
    env.server.cli("user", "add", "erin", "--password-stdin", stdin="erin-secret\n")
    env.server.cli("user", "features", "erin", "--disable-feature", "imap")
    m = env.imap(login=False)
    with pytest.raises(imaplib.IMAP4.error, match=r"AUTHORIZATIONFAILED"):
        m.login("erin", "erin-secret")
    m.logout()


def test_commands_in_the_wrong_state(env):
    raw = env.raw()
    assert raw.cmd("SELECT INBOX")[-1].startswith(b"r1 BAD")
    assert raw.cmd("FOO")[-1].startswith(b"r2 BAD")
    assert raw.cmd("LIST \"\" *")[-1].startswith(b"r3 BAD")
    assert raw.cmd(f"LOGIN demo {env.password}")[-1].startswith(b"r4 OK")
    assert raw.cmd(f"LOGIN demo {env.password}")[-1].startswith(b"r5 BAD")
    assert raw.cmd("EXPUNGE")[-1].startswith(b"r6 BAD")
    assert raw.cmd("CLOSE")[-1].startswith(b"r7 BAD")
    assert raw.cmd("NOOP")[-1].startswith(b"r8 OK")
    raw.close()


def test_id_enable_namespace(env):
    raw = env.raw(login=True)
    lines = raw.cmd('ID ("name" "pytest" "version" "1")')
    assert lines[0].startswith(b'* ID ("name" "groupware"') and lines[-1].startswith(b"r2 OK")
    assert raw.cmd("NAMESPACE")[0] == \
        b'* NAMESPACE (("" "/")) (("Other Users/" "/")) (("Public Folders/" "/"))\r\n'
    # Nothing is enabled that is not advertised.
    lines = raw.cmd("ENABLE FOO")
    assert lines[0] == b"* ENABLED\r\n" and lines[-1].startswith(b"r4 OK")
    raw.close()


# -- TLS -----------------------------------------------------------------------------------

def test_starttls_and_implicit_tls(env):
    m = env.imap(login=False)
    m.starttls(tls_context())
    assert "STARTTLS" not in m.capabilities
    m.login("demo", env.password)
    assert m.select("INBOX")[0] == "OK"
    m.logout()
    m = imaplib.IMAP4_SSL("127.0.0.1", env.imaps_port, ssl_context=tls_context(), timeout=20)
    assert "STARTTLS" not in m.capabilities and "AUTH=PLAIN" in m.capabilities
    m.login("demo", env.password)
    m.logout()


def test_starttls_discards_pipelined_plaintext(env):
    raw = env.raw()
    # One segment: the LOGIN must not run after the handshake as if it came over TLS.
    raw.send(b"a STARTTLS\r\nb LOGIN demo " + env.password.encode() + b"\r\n")
    assert raw.readline().startswith(b"a OK")
    tls = tls_context().wrap_socket(raw.sock, server_hostname="localhost")
    tls.settimeout(10)
    tls.sendall(b"c NOOP\r\n")
    reply = b""
    while not reply.endswith(b"\r\n"):
        reply += tls.recv(1000)
    assert reply.startswith(b"c OK"), reply  # no answer to b: it never ran
    tls.sendall(b"d SELECT INBOX\r\n")
    reply = tls.recv(1000)
    assert reply.startswith(b"d BAD"), reply  # still not logged in
    tls.close()


def test_plaintext_login_refused_off_loopback(env, tmp_path):
    """A listener on the machine's own non-loopback address: the peer is not 127.x."""
    address = non_loopback_address()
    proc, port = standalone(env, tmp_path, f"imap_listen={address}:0")
    try:
        raw = RawIMAP(port, host=address)
        caps = raw.cmd("CAPABILITY")[0]
        assert b"LOGINDISABLED" in caps and b"AUTH=PLAIN" not in caps and b"STARTTLS" in caps
        lines = raw.cmd(f"LOGIN demo {env.password}")
        assert lines[-1].startswith(b"r2 NO [PRIVACYREQUIRED]")
        assert raw.cmd("AUTHENTICATE PLAIN AGRlbW8AeA==")[-1].startswith(b"r3 NO [PRIVACYREQUIRED]")
        raw.send(b"r4 STARTTLS\r\n")
        assert raw.readline().startswith(b"r4 OK")
        tls = tls_context().wrap_socket(raw.sock, server_hostname="localhost")
        tls.sendall(b"t1 LOGIN demo " + env.password.encode() + b"\r\n")
        reply = tls.recv(4000)
        assert reply.startswith(b"t1 OK"), reply
        tls.close()
    finally:
        stop(proc)


@pytest.mark.database_engines("sqlite")  # timing of the login delay: nothing of the store
def test_failed_logins_off_loopback_are_slowed_down(env, tmp_path):
    address = non_loopback_address()
    proc, port = standalone(env, tmp_path, f"imap_listen={address}:0", "disable_plaintext_auth=no",
                            "auth_failure_delay=1", "auth_max_delay=5")
    try:
        raw = RawIMAP(port, host=address)
        times = []
        for _ in range(3):
            start = time.monotonic()
            assert b"[AUTHENTICATIONFAILED]" in raw.cmd("LOGIN demo wrong")[-1]
            times.append(time.monotonic() - start)
        # Delays of 0, 1 and 2 s on top of a password check that a busy machine slows down:
        # a delay long against the check keeps them apart.
        assert times[0] < 0.9 and times[1] > times[0] + 0.6 and times[2] > times[1] + 0.6, times
        assert times[2] < 6, times
        start = time.monotonic()
        assert raw.cmd(f"LOGIN demo {env.password}")[-1].startswith(b"r4 OK")
        assert time.monotonic() - start > 3.5  # the delay comes before the password is checked
        raw.close()
    finally:
        stop(proc)


# -- mailboxes -----------------------------------------------------------------------------

def list_lines(raw: RawIMAP, command: str) -> list[bytes]:
    lines = raw.cmd(command)
    assert lines[-1].split()[1] == b"OK", lines
    return [line.rstrip(b"\r\n") for line in lines[:-1]]


def test_list_status_select_on_folders_with_messages(env):
    env.fresh("Projects", 3)
    box = env.fresh("Reports", 5, flags=["\\Seen"])
    raw = env.raw(login=True)
    lines = list_lines(raw, 'LIST "" *')
    assert lines[0] == b'* LIST (\\HasNoChildren) "/" INBOX'
    assert b'* LIST (\\HasNoChildren \\Sent) "/" Sent' in lines
    assert b'* LIST (\\HasNoChildren \\Trash) "/" Trash' in lines
    assert b'* LIST (\\HasNoChildren) "/" Reports' in lines
    assert not any(b"Calendar" in line or b"Contacts" in line for line in lines)  # mail folders only
    assert list_lines(raw, 'LIST "" ""') == [b'* LIST (\\Noselect) "/" ""']
    assert list_lines(raw, 'LIST "" inbox') == [b'* LIST (\\HasNoChildren) "/" INBOX']
    lines = list_lines(raw, 'LIST "" Rep* RETURN (STATUS (MESSAGES UNSEEN UIDNEXT))')
    assert lines == [b'* LIST (\\HasNoChildren) "/" Reports',
                     b'* STATUS Reports (MESSAGES 5 UNSEEN 0 UIDNEXT %d)' % box.uid_next]
    assert list_lines(raw, 'LIST (SPECIAL-USE) "" *') == [
        b'* LIST (\\HasNoChildren \\Archive) "/" Archive', b'* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
        b'* LIST (\\HasNoChildren \\Junk) "/" Junk', b'* LIST (\\HasNoChildren \\Sent) "/" Sent',
        b'* LIST (\\HasNoChildren \\Trash) "/" Trash']
    lines = list_lines(raw, "STATUS Projects (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ)")
    projects = env.folder("Projects")
    assert lines == [b"* STATUS Projects (MESSAGES 3 RECENT 0 UIDNEXT %d UIDVALIDITY %d UNSEEN 3 HIGHESTMODSEQ %d)"
                     % (projects.uid_next, projects.uid_validity, projects.highest_modseq)]
    assert raw.cmd("STATUS Nowhere (MESSAGES)")[-1].startswith(b"r8 NO [NONEXISTENT]")
    lines = raw.cmd("SELECT Projects")
    text = b"".join(lines)
    assert b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded $Junk $NotJunk $MDNSent)" in text
    assert b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded $Junk $NotJunk " \
           b"$MDNSent \\*)]" in text
    assert b"* 3 EXISTS\r\n" in text and b"* 0 RECENT\r\n" in text and b"* OK [UNSEEN 1]" in text
    assert b"* OK [UIDVALIDITY %d]" % projects.uid_validity in text
    assert b"* OK [UIDNEXT %d]" % projects.uid_next in text
    assert b"* OK [HIGHESTMODSEQ %d]" % projects.highest_modseq in text
    assert lines[-1].startswith(b"r9 OK [READ-WRITE]")
    lines = raw.cmd("EXAMINE Reports")
    assert b"* 5 EXISTS\r\n" in lines and not any(b"UNSEEN" in line for line in lines)
    assert b"* OK [PERMANENTFLAGS ()] Flags permitted\r\n" in lines
    assert lines[-1].startswith(b"r10 OK [READ-ONLY]")
    assert raw.cmd("SELECT Nowhere")[-1].startswith(b"r11 NO [NONEXISTENT]")
    assert raw.cmd("NOOP")[-1].startswith(b"r12 OK")
    assert raw.cmd("CLOSE")[-1].startswith(b"r13 BAD")  # the failed SELECT left nothing selected
    raw.close()


def test_create_rename_delete_and_modified_utf7_names(env):
    m = env.imap()
    name = "Entwürfe/Ärger & Co"
    wire = mutf7(name).decode()
    assert wire == "Entw&APw-rfe/&AMQ-rger &- Co"
    assert m.create(f'"{wire}"')[0] == "OK"
    typ, lines = m.list('""', '"Entw&APw-rfe*"')
    assert lines == [b'(\\HasChildren) "/" Entw&APw-rfe', b'(\\HasNoChildren) "/" "Entw&APw-rfe/&AMQ-rger &- Co"']
    parent = env.folder("Entwürfe")
    child = next(f for f in env.rt.call(env.session.store().folders) if f.parent_id == parent.id)
    assert child.name == "Ärger & Co"  # the store keeps the real name
    assert m.create(f'"{wire}"')[1][0].startswith(b"[ALREADYEXISTS]")
    assert m.rename(f'"{wire}"', '"Entw&APw-rfe/Done"')[0] == "OK"
    assert m.list('""', '"Entw&APw-rfe/*"')[1] == [b'(\\HasNoChildren) "/" Entw&APw-rfe/Done']
    assert m.delete("Entw&APw-rfe")[0] == "OK"  # its inferiors stay, under a \\Noselect name
    assert m.list('""', '"Entw&APw-rfe"')[1] == [b'(\\Noselect \\HasChildren) "/" Entw&APw-rfe']
    typ, data = m.delete("Entw&APw-rfe")
    assert typ == "NO" and data[0].startswith(b"[ALREADYEXISTS]")
    assert m.delete("Entw&APw-rfe/Done")[0] == "OK"
    assert m.delete("Entw&APw-rfe")[0] == "OK"
    assert m.delete("INBOX")[0] == "NO"
    assert m.delete("Nowhere")[1][0].startswith(b"[NONEXISTENT]")
    assert m.create("Bad&Name")[0] == "NO"  # not modified UTF-7: well formed, but no name
    assert m.create("a//b")[1][0].startswith(b"[CANNOT]")
    assert m.create('"Star*"')[1][0].startswith(b"[CANNOT]")
    assert m.create("x" * 10_000)[1][0].startswith(b"[LIMIT]")  # longer than max_folder_name_length
    typ, data = m.create("/".join(f"d{i}" for i in range(40)))  # deeper than max_folder_depth
    assert typ == "NO" and data[0].startswith(b"[LIMIT]"), data
    assert m.noop()[0] == "OK"
    m.logout()


def test_rename_inbox_moves_its_messages(env):
    inbox = env.inbox()
    env.rt.call(inbox.empty)
    env.rt.call(inbox.append_many, [MESSAGE % (1, 1), MESSAGE % (2, 2)])
    m = env.imap()
    for folder in env.rt.call(env.session.store().folders):
        if folder.name == "Old mail":
            env.rt.call(folder.delete)
    assert m.rename("INBOX", '"Old mail"')[0] == "OK"
    assert m.status("INBOX", "(MESSAGES)")[1] == [b"INBOX (MESSAGES 0)"]
    assert m.status('"Old mail"', "(MESSAGES)")[1] == [b'"Old mail" (MESSAGES 2)']
    m.logout()


# -- the selected mailbox and changes from elsewhere -------------------------------------------

def test_append_elsewhere_shows_as_exists_on_noop_and_expunge_as_expunge(env):
    folder = env.fresh("Live", 2)
    raw = env.raw(login=True)
    assert b"* 2 EXISTS\r\n" in raw.cmd("SELECT Live")
    env.rt.call(folder.append, MESSAGE % (3, 3))
    lines = raw.cmd("NOOP")
    # The new message is \Recent to this session, the first to hear of it.
    assert lines == [b"* 3 EXISTS\r\n", b"* 1 RECENT\r\n", lines[-1]] and lines[-1].startswith(b"r3 OK")
    uids = env.rt.call(folder.query, ["uid"], sort=[("uid", False)])[1]["uid"]
    env.rt.call(folder.delete_items, [uids[0]])
    lines = raw.cmd("CHECK")
    assert lines[0] == b"* 1 EXPUNGE\r\n" and lines[-1].startswith(b"r4 OK")
    env.rt.call(folder.set_flags, [uids[2]], "add", ["\\Flagged", "$Junk"])
    lines = raw.cmd("NOOP")
    assert lines[0] == b"* 2 FETCH (UID %d FLAGS (\\Flagged \\Recent $Junk))\r\n" % uids[2]
    raw.close()


def test_keywords_beyond_the_limits_are_refused_and_nothing_grows(env):
    env.fresh("Tagged", 2)
    m = env.imap()
    m.select("Tagged")
    many = " ".join(f"$k{i}" for i in range(101))
    typ, data = m.store("1:2", "+FLAGS", f"({many})")
    assert typ == "NO" and data[0].startswith(b"[LIMIT]"), data
    typ, data = m.store("1", "+FLAGS", "(" + "x" * 101 + ")")
    assert typ == "NO" and data[0].startswith(b"[LIMIT]"), data
    half = " ".join(f"$a{i}" for i in range(60))
    assert m.store("1", "+FLAGS", f"({half})")[0] == "OK"
    # Added to what the message has, the total counts.
    typ, data = m.store("1", "+FLAGS", "(" + " ".join(f"$b{i}" for i in range(60)) + ")")
    assert typ == "NO" and data[0].startswith(b"[LIMIT]"), data
    flags = m.fetch("1", "(FLAGS)")[1][0]
    assert flags.count(b"$a") == 60 and b"$b" not in flags
    assert m.noop()[0] == "OK"
    m.logout()


def test_keywords_reach_the_mailbox_view(env):
    folder = env.fresh("Keywords", 3)
    uids = env.rt.call(folder.query, ["uid"], sort=[("uid", False)])[1]["uid"]
    env.rt.call(folder.set_flags, [uids[1]], "add", ["$Work", "\\Answered"])
    raw = env.raw(login=True)
    lines = raw.cmd("SELECT Keywords")
    assert lines[0] == b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded $Junk $NotJunk " \
                       b"$MDNSent $Work)\r\n"
    assert raw.cmd("NOOP") == [b"r3 OK NOOP completed\r\n"]  # nothing changed since
    env.rt.call(folder.set_flags, [uids[1]], "add", ["\\Seen"])
    assert raw.cmd("NOOP")[0] == b"* 2 FETCH (UID %d FLAGS (\\Seen \\Answered $Work))\r\n" % uids[1]
    raw.close()


def test_push_arrives_without_asking(env):
    """The long-poll queues changes as they happen; the next command of any kind carries them."""
    folder = env.fresh("Pushed", 1)
    raw = env.raw(login=True)
    raw.cmd("SELECT Pushed")
    env.rt.call(folder.append, MESSAGE % (2, 2))
    # NAMESPACE has no store look of its own: only the push can bring the news.
    wait_until(lambda: b"* 2 EXISTS\r\n" in raw.cmd("NAMESPACE"), timeout=5, interval=0.05,
               message="the append was never pushed")
    raw.close()


def test_expunge_uid_expunge_close_unselect(env):
    folder = env.fresh("Cleanup", 5)
    uids = env.rt.call(folder.query, ["uid"], sort=[("uid", False)])[1]["uid"]
    env.rt.call(folder.set_flags, uids[:4], "add", ["\\Deleted"])
    raw = env.raw(login=True)
    raw.cmd("SELECT Cleanup")
    lines = raw.cmd(f"UID EXPUNGE {uids[1]}:{uids[2]}")
    assert lines[:2] == [b"* 3 EXPUNGE\r\n", b"* 2 EXPUNGE\r\n"] and lines[-1].startswith(b"r3 OK")
    lines = raw.cmd("EXPUNGE")
    assert lines[:2] == [b"* 2 EXPUNGE\r\n", b"* 1 EXPUNGE\r\n"] and len(lines) == 3
    assert env.rt.call(folder.query, ["uid"])[0] == 1
    env.rt.call(folder.set_flags, [uids[4]], "add", ["\\Deleted"])
    raw.cmd("EXAMINE Cleanup")
    assert raw.cmd("EXPUNGE")[-1].startswith(b"r6 NO [READ-ONLY]")
    assert raw.cmd("CLOSE")[-1].startswith(b"r7 OK")  # read-only: nothing expunged
    assert env.rt.call(folder.query, ["uid"])[0] == 1
    raw.cmd("SELECT Cleanup")
    assert raw.cmd("UNSELECT")[-1].startswith(b"r9 OK")
    assert env.rt.call(folder.query, ["uid"])[0] == 1
    raw.cmd("SELECT Cleanup")
    assert raw.cmd("CLOSE") == [b"r11 OK CLOSE completed\r\n"]  # no EXPUNGE responses
    assert env.rt.call(folder.query, ["uid"])[0] == 0
    raw.close()


def test_subscriptions_live_in_the_store(env):
    env.fresh("Subscribed", 0)
    m = env.imap()
    assert m.unsubscribe("Subscribed")[0] == "OK"
    assert b'"/" Subscribed' not in b" ".join(m.lsub('""', "*")[1])
    m.logout()
    m = env.imap()  # another session sees the same
    assert b'"/" Subscribed' not in b" ".join(m.lsub('""', "*")[1])
    assert m.subscribe("Subscribed")[0] == "OK"
    assert b'() "/" Subscribed' in m.lsub('""', "*")[1]
    typ, lines = m._simple_command("LIST", "(SUBSCRIBED)", '""', "Sub*")
    assert m._untagged_response(typ, lines, "LIST")[1] == [b'(\\HasNoChildren \\Subscribed) "/" Subscribed']
    assert m.subscribe("Nowhere")[1][0].startswith(b"[NONEXISTENT]")
    m.logout()


# -- outages -------------------------------------------------------------------------------------

def test_store_outage_is_unavailable_never_a_bad_password(env, tmp_path):
    proc, port = standalone(env, tmp_path, "imap_listen=127.0.0.1:0",
                            server_socket=str(tmp_path / "nowhere.sock"))
    try:
        raw = RawIMAP(port)
        assert raw.cmd(f"LOGIN demo {env.password}")[-1].startswith(b"r1 NO [UNAVAILABLE]")
        raw.close()
    finally:
        stop(proc)


def test_serve_stops_when_the_imap_port_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = ServerProcess(str(tmp_path / "var"), {"imap_listen": "127.0.0.1:%d" % taken.getsockname()[1]})
        with pytest.raises(RuntimeError, match="server (exited|closed its output)"):
            server.start(timeout=60)
        assert server.proc.wait(30) == 1  # not left hanging
        server.stop()
    log = open(os.path.join(server.data_dir, "server.log"), encoding="utf-8").read()
    assert "could not start" in log


def test_session_survives_a_store_restart(reactor_thread, tmp_path):
    server = ServerProcess(str(tmp_path / "var"), demo=True).start()
    password = server.demo_password()
    env = Env(reactor_thread, server, 0)
    env.fresh("Kept", 2)
    reactor_thread.call(env.session.logoff)
    reactor_thread.call(env.adapter.close)
    proc, port = standalone(env, tmp_path / "gw", "imap_listen=127.0.0.1:0")
    try:
        raw = RawIMAP(port)
        raw.cmd(f"LOGIN demo {password}")
        assert b"* 2 EXISTS\r\n" in raw.cmd("SELECT Kept")
        server.kill()
        assert raw.cmd('LIST "" Kept')[-1].startswith(b"r3 NO [UNAVAILABLE]")
        assert raw.cmd("NOOP")[-1].startswith(b"r4 NO [UNAVAILABLE]")
        server.start()
        lines = raw.cmd('LIST "" Kept')
        assert lines[0] == b'* LIST (\\HasNoChildren) "/" Kept\r\n' and lines[-1].startswith(b"r5 OK")
        assert raw.cmd("NOOP")[-1].startswith(b"r6 OK")
        raw.close()
    finally:
        stop(proc)
        server.stop()
