"""Session expiry and the change notifier, driven by a fake clock; long-poll hang-up over the wire."""
from __future__ import annotations

import os
import time

import psutil
import pytest
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock

from server.notify import LocalNotifier
from server.sessions import (
    MAX_STREAMS_PER_SESSION, MAX_UPLOAD_BYTES_PER_SESSION, MAX_UPLOADS_PER_SESSION, SESSION_KEY_ENV, SessionManager, Stream, session_key,
)
from shared.config import Config, ConfigError
from shared import codec
from shared.errors import NotFound, Quota, SessionInvalid
from harness import USERS
from soap_client import SoapClient
from waiting import wait_until

USER = {"id": 7, "name": "alice", "store_id": 3}


def manager(clock: Clock, discarded: list) -> SessionManager:
    return SessionManager(60, discarded.append, clock.seconds)


def test_idle_sessions_expire_with_their_tokens_and_uploads():
    clock, discarded = Clock(), []
    sessions = manager(clock, discarded)
    session = sessions.create(USER, "imap")
    assert len(session.id.partition(".")[0]) == 32  # 128 random bits, then what is signed
    token = sessions.add_stream(session, Stream([("key", 10)]), "recipe")
    sessions.add_upload(session, "/tmp/upload-1")
    clock.advance(59)
    assert sessions.get(session.id) is session  # use resets the idle clock
    clock.advance(59)
    assert sessions.stream(token, session.id)[1].segments == [("key", 10)]
    clock.advance(61)
    assert sessions.expire() == 1
    with pytest.raises(SessionInvalid):
        sessions.get(session.id)
    with pytest.raises(NotFound):
        sessions.stream(token, session.id)
    assert discarded == ["/tmp/upload-1"]


def test_tokens_are_random_and_a_stream_serves_only_its_own_session():
    clock, discarded = Clock(), []
    sessions = manager(clock, discarded)
    alice, bob = sessions.create(USER, "imap"), sessions.create(USER, "imap")
    tokens = {sessions.add_stream(alice, Stream([("key", 10)]), "recipe") for _ in range(200)}
    ids = {sessions.create(USER).id for _ in range(200)}
    nonces = {value.partition(".")[0] for value in tokens | ids}
    for nonce in nonces:
        assert len(nonce) == 32 and int(nonce, 16) >= 0  # 128 random bits, hex, before what is signed
    assert len(tokens) == len(ids) == 200 and len(nonces) == 400
    token = next(iter(tokens))
    assert sessions.stream(token, alice.id)[0] is alice
    for who in (bob.id, None, "", alice.id[:-1], token):
        with pytest.raises(NotFound):
            sessions.stream(token, who)


def test_busy_session_outlives_the_idle_timeout():
    clock, discarded = Clock(), []
    sessions = manager(clock, discarded)
    session = sessions.create(USER)
    session.busy += 1
    clock.advance(600)
    assert sessions.expire() == 0
    session.busy -= 1
    assert sessions.expire() == 1


def test_stream_tokens_per_session_are_capped_oldest_first():
    clock, discarded = Clock(), []
    sessions = manager(clock, discarded)
    session = sessions.create(USER)
    tokens = [sessions.add_stream(session, Stream([(f"key{n}", n)]), "recipe") for n in range(MAX_STREAMS_PER_SESSION + 10)]
    assert len(session.streams) == MAX_STREAMS_PER_SESSION
    for token in tokens[:10]:
        with pytest.raises(NotFound):
            sessions.stream(token, session.id)
    assert sessions.stream(tokens[10], session.id)[1].segments[0][0] == "key10"
    assert sessions.stream(tokens[-1], session.id)[1].segments[0][0] == f"key{MAX_STREAMS_PER_SESSION + 9}"


def test_uploads_are_taken_once_and_capped():
    clock, discarded = Clock(), []
    sessions = manager(clock, discarded)
    session = sessions.create(USER)
    upload = sessions.add_upload(session, "/tmp/a")
    assert sessions.take_upload(session, upload) == "/tmp/a"
    with pytest.raises(NotFound):
        sessions.take_upload(session, upload)
    for n in range(MAX_UPLOADS_PER_SESSION):
        sessions.add_upload(session, f"/tmp/u{n}")
    with pytest.raises(Quota):
        sessions.add_upload(session, "/tmp/one-too-many")
    assert discarded == ["/tmp/one-too-many"]
    sessions.remove(session.id)
    assert len(discarded) == 1 + MAX_UPLOADS_PER_SESSION


def test_parked_upload_octets_are_capped(tmp_path):
    sessions = manager(Clock(), discarded := [])
    session = sessions.create(USER)
    big = tmp_path / "big"
    with open(big, "wb") as fp:
        fp.truncate(MAX_UPLOAD_BYTES_PER_SESSION - 10)  # sparse: no disk used
    small = tmp_path / "small"
    small.write_bytes(b"x" * 10)
    sessions.add_upload(session, str(big))
    sessions.add_upload(session, str(small))
    more = tmp_path / "more"
    more.write_bytes(b"y")
    with pytest.raises(Quota):
        sessions.add_upload(session, str(more))
    assert discarded == [str(more)]


def test_processes_sharing_the_key_adopt_each_others_sessions_until_ended_or_stale():
    clock, wall, key = Clock(), Clock(), b"k" * 32
    wall.advance(1_700_000_000)
    here, there = (SessionManager(60, [].append, clock.seconds, key=key, wall_clock=wall.seconds) for _ in range(2))
    stranger = SessionManager(60, [].append, clock.seconds, key=b"x" * 32, wall_clock=wall.seconds)
    session = here.create(USER, "imap", "192.0.2.1")
    assert stranger.claim(session.id) is None  # another key: not ours
    assert here.claim(session.id) is None  # held already
    facts = there.claim(session.id)
    assert facts == {"u": 7, "p": "imap", "c": "192.0.2.1", "d": False, "t": 1_700_000_000}
    adopted = there.adopt(session.id, facts, USER)
    assert there.get(session.id) is adopted and adopted.protocol == "imap"
    # A token with a changed byte is refused.
    assert there.claim(session.id[:40] + ("A" if session.id[40] != "A" else "B") + session.id[41:]) is None
    # Logged off in one process: the others hear of it and refuse it from then on.
    ended: list[str] = []
    here.on_end = ended.append
    here.end(session.id)
    assert ended == [session.id]
    there.end(session.id, here=False)
    with pytest.raises(SessionInvalid):
        there.get(session.id)
    assert there.claim(session.id) is None
    # A session older than the timeout is not taken up by a process that never held it.
    late = here.create(USER, "imap")
    wall.advance(61)
    assert there.claim(late.id) is None
    # Nor one made before the process started (it cannot know whether it was ended).
    restarted = SessionManager(60, [].append, clock.seconds, key=key, wall_clock=wall.seconds)
    wall.advance(1)
    assert restarted.claim(here.create(USER).id) is not None
    early = here.create(USER)
    assert SessionManager(60, [].append, clock.seconds, key=key, wall_clock=wall.seconds).claim(early.id) is not None
    wall.advance(1)
    assert SessionManager(60, [].append, clock.seconds, key=key, wall_clock=wall.seconds).claim(early.id) is None


def test_a_session_with_a_lifetime_lives_that_long_in_every_process_until_ended():
    clock, wall, key = Clock(), Clock(), b"k" * 32
    wall.advance(1_700_000_000)
    here, there, third = (SessionManager(60, [].append, clock.seconds, key=key, wall_clock=wall.seconds,
                                         max_lifetime=3600) for _ in range(3))
    session = here.create(USER, "web", "192.0.2.1", lifetime=1800)
    capped = here.create(USER, "web", lifetime=10**9)
    # Idle far beyond session_timeout, it still lives, and a process that never held it takes it up.
    clock.advance(1000)
    wall.advance(1000)
    assert here.get(session.id) is session
    facts = there.claim(session.id)
    assert facts is not None and facts["l"] == 1800 and there.claim(capped.id)["l"] == 3600
    there.adopt(session.id, facts, USER)
    here.expire()
    there.expire()
    assert there.get(session.id).ends_at == 1_700_000_000 + 1800
    # Until its lifetime is over, everywhere.
    clock.advance(801)
    wall.advance(801)
    with pytest.raises(SessionInvalid):
        here.get(session.id)
    assert there.expire() == 1 and third.claim(session.id) is None
    # One logged off is refused by the others for as long as it could have lived.
    other = here.create(USER, "web", lifetime=1800)
    here.end(other.id)
    third.end(other.id, here=False)
    clock.advance(1000)
    wall.advance(1000)
    third.expire()
    assert third.claim(other.id) is None


def test_instances_with_one_session_key_file_take_up_each_others_sessions(tmp_path, monkeypatch):
    key_file = tmp_path / "session.key"
    key_file.write_text("0123456789abcdef" * 4 + "\n")
    cfg = Config({"session_key_file": str(key_file)}, str(tmp_path))
    monkeypatch.setenv(SESSION_KEY_ENV, "aa" * 32)
    key = session_key(cfg)
    # The file wins over the key `groupware serve` hands its workers, which never stays behind.
    assert key == session_key(cfg) and key != bytes.fromhex("aa" * 32) and SESSION_KEY_ENV not in os.environ
    clock, wall = Clock(), Clock()
    one, other = (SessionManager(60, [].append, clock.seconds, key=session_key(cfg), wall_clock=wall.seconds)
                  for _ in range(2))
    wall.advance(1)
    assert other.claim(one.create(USER, "imap").id) is not None
    key_file.write_text("too short\n")
    with pytest.raises(ConfigError, match="session_key_file: the key is shorter than 32 characters"):
        session_key(cfg)
    assert session_key(Config({}, str(tmp_path))) is None


def test_uploads_and_streams_of_another_process_are_found_by_their_signed_ids(tmp_path):
    clock, wall, key = Clock(), Clock(), b"k" * 32
    wall.advance(1_700_000_000)
    here, there = (SessionManager(60, [].append, clock.seconds, key=key, wall_clock=wall.seconds) for _ in range(2))
    session = here.create(USER, "imap")
    spooled = tmp_path / "upload-abc"
    spooled.write_bytes(b"message")
    upload = here.add_upload(session, str(spooled))
    adopted = there.adopt(session.id, there.claim(session.id), USER)
    assert there.take_upload(adopted, upload) == str(spooled)
    other = there.adopt(*(lambda s: (s.id, there.claim(s.id)))(here.create(USER)), USER)
    with pytest.raises(NotFound):  # bound to the session that uploaded it
        there.take_upload(other, here.add_upload(session, str(spooled)))
    token = here.add_stream(session, Stream([("key", 7)]), "7~12~1:3~7")
    assert there.read_signed(token) == "7~12~1:3~7"
    assert SessionManager(60, [].append, clock.seconds, key=b"x" * 32, wall_clock=wall.seconds).read_signed(token) is None


def test_notifier_wakes_times_out_and_forgets_cancelled_waiters():
    clock = Clock()
    notifier = LocalNotifier(clock, max_timeout=300)
    results: list = []
    notifier.wait({1: 5, 2: 9}, 60).addCallback(results.append)
    notifier.changed(1, 5)  # not newer than what the waiter has seen
    assert results == []
    notifier.changed(2, 10)
    assert results == [[(2, 10)]] and notifier.waiting() == 0

    notifier.wait({1: 5}, 10_000).addCallback(results.append)
    clock.advance(299)
    assert len(results) == 1
    clock.advance(1)  # capped at max_timeout
    assert results[-1] == [] and notifier.waiting() == 0

    failures: list = []
    waiting = notifier.wait({1: 5}, 60)
    waiting.addErrback(failures.append)
    waiting.cancel()
    assert failures[0].check(CancelledError) and notifier.waiting() == 0
    assert not clock.getDelayedCalls()


def test_hanging_up_during_a_long_poll_frees_the_server(server):
    soap = SoapClient(server.connect("unix"))
    soap.logon("alice", USERS["alice"])
    inbox = soap.inbox_id()
    _, data = codec.request("waitForChanges", [
        ("sessionId", soap.session_id),
        ("watch", codec.element("watch", folderId=str(inbox), modseq="1000000")), ("timeout", 300)])
    process = psutil.Process(server.proc.pid)
    sockets_before = len(process.net_connections("tcp"))
    for _ in range(20):
        poller = server.connect("tcp")
        poller.send_head("POST", "/soap", {"Content-Type": "text/xml", "Content-Length": str(len(data))})
        poller.sock.sendall(data)
        # Hanging up a moment after sending, on purpose: some hang-ups come before the
        # server has parked the poll and some after, and neither may leave anything behind.
        time.sleep(0.02)
        poller.close()
    wait_until(lambda: len(process.net_connections("tcp")) <= sockets_before,
               message="the server kept the sockets of hung-up polls")
    # The server answers at once and nothing was logged as a failure.
    started = time.monotonic()
    soap.call("createMessage", ("folderId", inbox), ("source", b"Subject: hi\r\n\r\nhi\r\n"))
    assert time.monotonic() - started < 2
    assert "Traceback" not in server.log() and "Unhandled" not in server.log()
    soap.http.close()


def test_datagram_relay_reaches_live_peers_and_removes_dead_ones(reactor_thread, tmp_path):
    import socket as socketlib

    from server.notify import decode_message, encode_messages
    from server.notify_local import DatagramRelay

    directory = tmp_path / "notify"
    heard: list[bytes] = []
    relay = DatagramRelay(reactor_thread.reactor, str(directory))
    reactor_thread.call(relay.start, heard.append)
    live = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_DGRAM)
    live.bind(str(directory / "1-live.sock"))
    live.settimeout(5)
    dead = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_DGRAM)
    dead.bind(str(directory / "2-dead.sock"))
    dead.close()  # its file stays, as after a SIGKILL
    try:
        [message] = encode_messages([(5, 9), (6, 2)], ["sid.x.y"])
        reactor_thread.call(relay.publish, message)
        assert decode_message(live.recv(65536)) == ([(5, 9), (6, 2)], ["sid.x.y"])
        assert not (directory / "2-dead.sock").exists()
        # What a peer sends reaches the listener; a stray datagram is ignored item by item.
        live.sendto(b"7:3 junk 8:x end=s2", relay.path)
        wait_until(lambda: heard, timeout=5)
        assert decode_message(heard[0]) == ([(7, 3)], ["s2"])
    finally:
        live.close()
        reactor_thread.call(relay.stop)
    assert not os.path.exists(relay.path)


def test_datagram_relays_meet_in_a_directory_too_long_for_a_socket_address(reactor_thread, tmp_path):
    from server.notify_local import MAX_SOCKET_PATH, DatagramRelay

    directory = tmp_path / ("d" * 100) / "notify"
    first, second = (DatagramRelay(reactor_thread.reactor, str(directory)) for _ in range(2))
    assert len(first.path) > MAX_SOCKET_PATH
    heard: list[bytes] = []
    reactor_thread.call(first.start, heard.append)
    reactor_thread.call(second.start, lambda message: None)
    try:
        reactor_thread.call(second.publish, b"3:4")
        wait_until(lambda: heard, timeout=5)
        assert heard == [b"3:4"]
        assert sorted(os.listdir(directory)) == sorted([first.name, second.name])
    finally:
        reactor_thread.call(first.stop)
        reactor_thread.call(second.stop)
    assert os.listdir(directory) == []
