"""Check-then-write across gateway processes: two `groupware ical` front ends (and several
threads in each) PUT into one calendar at once; the store decides, in the transaction that
writes, who gets the UID and whose If-Match / If-None-Match still holds."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
import requests

from harness import ROOT, free_port, wait_for_port
from test_caldav import event, new_calendar, start_env

ROUNDS = 8


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """The demo server (with its own gateway) and a second gateway process on the same store."""
    e = start_env(str(tmp_path_factory.mktemp("caldav-race") / "var"))
    port = free_port()
    cmd = [sys.executable, "-m", "groupware.cli", "ical", "--config-dir", os.path.join(ROOT, "conf"),
           "--data-dir", e.server.data_dir, "--set", f"server_socket={e.server.socket_path}",
           "--set", f"ical_listen=127.0.0.1:{port}", "--set", f"log_file={e.server.data_dir}/ical2.log"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield e, [e.base, f"http://127.0.0.1:{port}"]
    finally:
        proc.terminate()
        proc.wait(30)
        e.server.stop()


def race(e, requests_to_send: list[tuple], method: str = "PUT") -> list[requests.Response]:
    """Send (base, path, body, headers[, method]) all at once, one thread each; the answers
    in order."""
    barrier = threading.Barrier(len(requests_to_send))
    answers: list[requests.Response | None] = [None] * len(requests_to_send)
    sessions = [requests.Session() for _ in requests_to_send]
    for s in sessions:
        s.auth = ("demo", e.password)
        s.request("OPTIONS", requests_to_send[0][0] + "/caldav/", timeout=30)  # log on before the race

    def send(i: int) -> None:
        base, path, body, headers, *how = requests_to_send[i]
        barrier.wait()
        answers[i] = sessions[i].request(how[0] if how else method, base + path, data=body.encode(), timeout=60,
                                         headers={"Content-Type": "text/calendar", **headers})
    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests_to_send))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers  # type: ignore[return-value]


def test_one_uid_under_several_names_at_once_gets_one_object(two):
    e, bases = two
    cal = new_calendar(e, "uidrace")
    for r in range(ROUNDS):
        uid = f"race-{r}"
        answers = race(e, [(bases[i % 2], f"{cal}{uid}-{i}.ics", event(uid), {}) for i in range(4)])
        codes = sorted(a.status_code for a in answers)
        assert codes == [201, 409, 409, 409], [(a.status_code, a.text) for a in answers]
        assert all("no-uid-conflict" in a.text for a in answers if a.status_code == 409)
    r = e.request("REPORT", cal, '<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">'
                  '<d:prop><d:getetag/></d:prop><c:filter><c:comp-filter name="VCALENDAR"/></c:filter>'
                  '</c:calendar-query>', Depth="1", Content_Type="application/xml")
    assert r.text.count("<D:response>") + r.text.count("<response>") == ROUNDS


def test_if_none_match_on_one_name_at_once_creates_once(two):
    e, bases = two
    cal = new_calendar(e, "createrace")
    for r in range(ROUNDS):
        answers = race(e, [(bases[i % 2], f"{cal}new-{r}.ics", event(f"new-{r}", summary=f"writer {i}"),
                            {"If-None-Match": "*"}) for i in range(4)])
        assert sorted(a.status_code for a in answers) == [201, 412, 412, 412]


def test_if_match_on_one_etag_at_once_changes_once(two):
    e, bases = two
    cal = new_calendar(e, "matchrace")
    for r in range(ROUNDS):
        etag = e.request("PUT", f"{cal}m-{r}.ics", event(f"m-{r}")).headers["ETag"]
        answers = race(e, [(bases[i % 2], f"{cal}m-{r}.ics", event(f"m-{r}", summary=f"writer {i}"),
                            {"If-Match": etag}) for i in range(4)])
        assert sorted(a.status_code for a in answers) == [204, 412, 412, 412]
        winner = next(i for i, a in enumerate(answers) if a.status_code == 204)
        assert f"SUMMARY:writer {winner}" in e.request("GET", f"{cal}m-{r}.ics").text


def test_if_match_deletes_and_changes_at_once_let_one_win(two):
    e, bases = two
    cal = new_calendar(e, "deleterace")
    for r in range(ROUNDS):
        path = f"{cal}d-{r}.ics"
        etag = e.request("PUT", path, event(f"d-{r}")).headers["ETag"]
        answers = race(e, [(bases[0], path, "", {"If-Match": etag}, "DELETE"),
                           (bases[1], path, "", {"If-Match": etag}, "DELETE"),
                           (bases[0], path, event(f"d-{r}", summary="kept"), {"If-Match": etag}, "PUT"),
                           (bases[1], path, event(f"d-{r}", summary="kept"), {"If-Match": etag}, "PUT")])
        codes = [a.status_code for a in answers]
        assert sum(c in (200, 204) for c in codes) == 1, codes
        assert all(c in (200, 204, 404, 412) for c in codes), codes
        exists = e.request("GET", path).status_code == 200
        assert exists == (codes[2] == 204 or codes[3] == 204)
