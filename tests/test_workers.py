"""`groupware serve` as worker processes: store_workers store servers and gateway_workers
gateway processes on the supervisor's sockets, restarted when they die, stopped together."""
from __future__ import annotations

import os
import signal
import threading

import psutil
import pytest
import requests

from harness import ServerProcess
from raw_clients import RawIMAP
from waiting import scaled, wait_until

WORKERS = {"store_workers": "2", "gateway_workers": "2"}
CLIENTS = 6
MESSAGES_EACH = 4


def workers(server: ServerProcess, role: str) -> list[int]:
    """The live worker processes of a role (a killed one not yet reaped is not)."""
    pids = []
    for child in psutil.Process(server.pid()).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and child.cmdline()[-2:] == ["--worker", role]:
                pids.append(child.pid)
        except psutil.Error:
            pass
    return sorted(pids)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    # Sources come through stream tokens (not inline, not read from the blob files), so
    # a token one store worker gave out is read through another one too.
    options = {**WORKERS, "inline_source_limit": "1k", "server_blob_files": "no", "log_level": "debug"}
    server = ServerProcess(str(tmp_path_factory.mktemp("workers") / "var"), options, demo=True).start()
    yield server
    server.stop()


def login(server: ServerProcess) -> RawIMAP:
    raw = RawIMAP(server.port("imap"))
    answer = raw.cmd(f"LOGIN demo {server.demo_password()}")
    assert answer[-1].startswith(b"r1 OK"), answer
    return raw


def ok(raw: RawIMAP, command: str | bytes) -> list[bytes]:
    answer = raw.cmd(command)
    assert answer[-1].startswith(b"r%d OK" % raw.n), (command, answer)
    return answer


def client_round(server: ServerProcess, n: int, failures: list) -> None:
    """One client's full round on a folder of its own; every answer checked."""
    try:
        raw = login(server)
        ok(raw, f'CREATE "Worker {n}"')
        bodies = []
        for i in range(MESSAGES_EACH):
            body = b"From: w@example.org\r\nSubject: worker %d message %d\r\n\r\n%s\r\n" % (n, i, b"x" * (i * 1000))
            bodies.append(body)
            ok(raw, b'APPEND "Worker %d" {%d+}\r\n%s' % (n, len(body), body))
        assert b"* %d EXISTS\r\n" % MESSAGES_EACH in ok(raw, f'SELECT "Worker {n}"')
        fetched = b"".join(ok(raw, "FETCH 1:* BODY.PEEK[]"))
        for body in bodies:
            assert body in fetched
        ok(raw, "STORE 1 +FLAGS (\\Deleted)")
        assert b"* 1 EXPUNGE\r\n" in ok(raw, "EXPUNGE")
        assert b"MESSAGES %d" % (MESSAGES_EACH - 1) in b"".join(ok(raw, f'STATUS "Worker {n}" (MESSAGES)'))
        ok(raw, "LOGOUT")
    except Exception as err:  # reported by the test's thread
        failures.append(err)


def test_workers_share_the_listeners_and_each_others_sessions(served):
    assert len(workers(served, "store")) == 2 and len(workers(served, "gateways")) == 2
    failures: list = []
    threads = [threading.Thread(target=client_round, args=(served, n, failures)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(scaled(120))
    assert not failures, failures
    with open(os.path.join(served.data_dir, "server.log")) as fp:
        log = fp.read()
    assert "took up a session of demo made by another store process" in log


def test_idle_hears_mail_appended_through_another_connection(served):
    idler, writer = login(served), login(served)
    ok(writer, 'CREATE "Pushed"')
    ok(idler, 'SELECT "Pushed"')
    idler.send(b"i IDLE\r\n")
    assert idler.readline().startswith(b"+ ")
    for n in range(1, 6):
        body = b"Subject: push %d\r\n\r\nhi\r\n" % n
        ok(writer, b'APPEND "Pushed" {%d+}\r\n%s' % (len(body), body))
        line = idler.readline()
        while line.endswith(b" RECENT\r\n"):
            line = idler.readline()
        assert line == b"* %d EXISTS\r\n" % n
    idler.send(b"DONE\r\n")
    assert idler.until(b"i")[-1] == b"i OK IDLE completed\r\n"


def test_a_worker_that_dies_is_restarted_and_clients_go_on(served):
    for role in ("store", "gateways"):
        before = workers(served, role)
        os.kill(before[0], signal.SIGKILL)
        restarted = wait_until(lambda: (lambda now: len(now) == 2 and before[0] not in now and now)(workers(served, role)),
                               timeout=30, message=f"the {role} worker was not restarted")
        assert before[1] in restarted
    # The supervisor itself is fine, and a client gets a full round again (a request that
    # was in flight in the killed worker may have failed; none is here).
    assert served.alive()
    failures: list = []
    client_round(served, 100, failures)
    assert not failures, failures


def test_sigterm_stops_every_worker_and_removes_the_sockets(tmp_path):
    server = ServerProcess(str(tmp_path / "var"), WORKERS).start()
    children = [psutil.Process(pid) for role in ("store", "gateways") for pid in workers(server, role)]
    assert len(children) == 4
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(scaled(60)) == 0
    gone, alive = psutil.wait_procs(children, timeout=scaled(10))
    assert not alive
    assert not os.path.exists(server.socket_path)
    assert not os.path.exists(os.path.join(server.data_dir, "lmtp.sock"))
    server.stop()


def test_a_calendar_put_larger_than_one_store_call_is_stored_whole(served):
    """The CalDAV gateway stages such a PUT over several store calls, which the store
    workers share between them; the last stores all of it."""
    events = 2100  # above the 2000 objects of one call
    feed = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n" + "".join(
        f"BEGIN:VEVENT\r\nUID:w{i}@example.org\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART:20261201T{i % 24:02d}0000Z\r\nDURATION:PT30M\r\nSUMMARY:{i}\r\nEND:VEVENT\r\n"
        for i in range(events)) + "END:VCALENDAR\r\n"
    url = f"http://127.0.0.1:{served.port('ical')}/ical/demo/Workers"
    auth = ("demo", served.demo_password())
    for n in range(2):  # created, then every object replaced
        body = feed.replace("\r\nSUMMARY:", f"\r\nSUMMARY:v{n}-")
        r = requests.put(url, data=body.encode(), auth=auth, headers={"Content-Type": "text/calendar"},
                         timeout=scaled(300))
        assert r.status_code in (201, 204), (r.status_code, r.text)
        got = requests.get(url, auth=auth, timeout=scaled(120))
        assert got.status_code == 200
        assert got.text.count("BEGIN:VEVENT") == events
        assert got.text.count(f"SUMMARY:v{n}-") == events
