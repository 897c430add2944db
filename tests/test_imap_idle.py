"""IMAP IDLE against a real `groupware serve`: pushes from other sessions and delivered mail."""
from __future__ import annotations

import select
import statistics
import time

import pytest

import imap_env

pytestmark = pytest.mark.gateway_env("imap")



def start_idle(raw) -> None:
    raw.send(b"i IDLE\r\n")
    assert raw.readline() == b"+ idling\r\n"


def readable(raw, timeout: float) -> bool:
    """Whether the server says anything within `timeout` seconds."""
    return bool(select.select([raw.sock], [], [], timeout)[0])


def test_new_mail_reaches_an_idling_client_within_100_ms(env):
    folder = env.fresh("idlepush", 1)
    raw = env.raw(login=True)
    raw.cmd("SELECT idlepush")
    start_idle(raw)
    assert not readable(raw, 0.5)  # nothing happens, nothing is said
    latencies = []
    for n in range(2, 9):
        start = time.perf_counter()
        env.rt.call(folder.append, b"Subject: pushed %d\r\n\r\nnew\r\n" % n)
        assert raw.readline() == b"* %d EXISTS\r\n" % n
        latencies.append(time.perf_counter() - start)
        assert raw.readline() == b"* %d RECENT\r\n" % (n - 1)  # all new mail is recent here
    raw.send(b"DONE\r\n")
    assert raw.readline() == b"i OK IDLE completed\r\n"
    assert statistics.median(latencies) < 0.1, latencies
    assert max(latencies) < 0.5, latencies
    raw.close()


def test_flags_and_expunges_from_another_session_during_idle(env):
    env.fresh("idlechanges", 3)
    raw = env.raw(login=True)
    raw.cmd("SELECT idlechanges")
    start_idle(raw)
    other = env.raw(login=True)
    other.cmd("SELECT idlechanges")
    other.cmd("STORE 2 +FLAGS.SILENT (\\Flagged $Work)")
    assert raw.readline().endswith(b" $Work)\r\n")  # FLAGS: a keyword new to the mailbox
    assert raw.readline().startswith(b"* OK [PERMANENTFLAGS (")
    assert raw.readline() == b"* 2 FETCH (UID 2 FLAGS (\\Flagged $Work))\r\n"
    other.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert raw.readline() == b"* 1 FETCH (UID 1 FLAGS (\\Deleted))\r\n"
    other.cmd("EXPUNGE")
    assert raw.readline() == b"* 1 EXPUNGE\r\n"
    raw.send(b"DONE\r\n")
    assert raw.readline() == b"i OK IDLE completed\r\n"
    assert raw.cmd("FETCH 1:* (UID FLAGS)")[:2] == [b"* 1 FETCH (UID 2 FLAGS (\\Flagged $Work))\r\n",
                                                    b"* 2 FETCH (UID 3 FLAGS ())\r\n"]
    other.close()
    raw.close()


def test_condstore_clients_get_modseq_and_qresync_clients_vanished(env):
    folder = env.fresh("idleqresync", 3)
    raw = env.raw(login=True)
    raw.cmd("ENABLE QRESYNC")
    raw.cmd("SELECT idleqresync")
    start_idle(raw)
    env.rt.call(folder.set_flags, [3], "add", ["\\Seen"])
    line = raw.readline()
    assert line.startswith(b"* 3 FETCH (UID 3 FLAGS (\\Seen) MODSEQ (") and line.endswith(b"))\r\n")
    env.rt.call(folder.delete_items, [2])
    assert raw.readline() == b"* VANISHED 2\r\n"
    raw.send(b"DONE\r\n")
    assert raw.readline() == b"i OK IDLE completed\r\n"
    raw.close()


@pytest.fixture(scope="module")
def strict_env(reactor_thread, tmp_path_factory):
    with imap_env.running(reactor_thread, tmp_path_factory.mktemp("imapidlestrict"),
                          {"imap_ignore_command_idle": "no"}) as e:
        yield e


def test_a_command_sent_during_idle_ends_it_with_bad_when_strict(strict_env):
    """RFC 2177 allows only DONE; like Dovecot, anything else ends IDLE with BAD and
    is not run (imap_ignore_command_idle = no)."""
    env = strict_env
    env.fresh("idlebad", 1)
    raw = env.raw(login=True)
    raw.cmd("SELECT idlebad")
    start_idle(raw)
    raw.send(b"x NOOP\r\n")
    assert raw.readline() == b"i BAD Expected DONE.\r\n"
    assert not readable(raw, 0.3)  # x was dropped, not answered
    assert raw.cmd("NOOP")[-1].startswith(b"r3 OK")
    raw.close()


def test_a_command_sent_during_idle_ends_it_and_is_answered_by_default(env):
    env.fresh("idlecmd", 2)
    raw = env.raw(login=True)
    raw.cmd("SELECT idlecmd")
    start_idle(raw)
    # Apple Mail's way: a new command instead of DONE.
    raw.send(b"x NOOP\r\n")
    assert raw.readline() == b"i OK IDLE completed\r\n"
    assert raw.readline() == b"x OK NOOP completed\r\n"
    start_idle(raw)
    raw.send(b"y UID FETCH 2 FLAGS\r\n")
    assert raw.until(b"y") == [b"i OK IDLE completed\r\n", b"* 2 FETCH (UID 2 FLAGS ())\r\n",
                               b"y OK UID FETCH completed\r\n"]
    # Empty lines are no command; idle goes on.
    start_idle(raw)
    raw.send(b"\r\n")
    assert not readable(raw, 0.3)
    raw.send(b"done\r\n")
    assert raw.readline() == b"i OK IDLE completed\r\n"
    assert raw.cmd("NOOP")[-1].startswith(b"r")
    raw.close()


def test_idle_without_a_selected_mailbox(env):
    raw = env.raw(login=True)
    start_idle(raw)
    raw.send(b"DONE\r\n")
    assert raw.readline() == b"i OK IDLE completed\r\n"
    raw.close()
