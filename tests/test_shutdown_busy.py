"""SIGTERM stops `groupware serve` and `python -m server` promptly even while their worker
threads are busy with long requests (body searches, recurrence walks): the work in the
threads is cancelled, and a server stops within its `shutdown_timeout` whatever it does."""
from __future__ import annotations

import signal
import socket
import time

import requests

import pymysql

from harness import MARIADB, USERS, ServerProcess, StoreProcess, mysql_options, throwaway_mariadb_database
from heavy_work import calendar_query, fill_heavy_folder, imap_login, send_report, start_heavy_search, wait_for_cpu
from shared import codec
from soap_client import SoapClient
from waiting import scaled, wait_until

# Budgets far beyond the test: only the stop may end the work, once the commands in
# flight have had their second of grace (shutdown_grace).
LONG = {"worker_time_limit": "600", "ical_time_limit": "600", "ical_max_instances": "0",
        "ical_max_object_instances": "0", "shutdown_grace": "1"}
COPIES = 16


def stops_within(proc, seconds: float) -> float:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(scaled(seconds) + 30)  # a hang fails below rather than here
    took = time.monotonic() - started
    assert took < scaled(seconds), f"SIGTERM took {took:.1f} s"
    return code


def test_groupware_serve_stops_with_busy_workers(tmp_path):
    server = ServerProcess(str(tmp_path / "var"), {**LONG, "shutdown_timeout": "60"}, demo=True).start()
    try:
        port, password = server.port("imap"), server.demo_password()
        r = imap_login(port, "demo", password)
        fill_heavy_folder(r, "Heavy", COPIES)
        searches = [imap_login(port, "demo", password) for _ in range(3)]
        for s in searches:
            start_heavy_search(s, "Heavy")
        ical = _start_slow_report(server, password)
        wait_for_cpu(server.pid())
        assert stops_within(server.proc, 10) == 0
        ical.close()
    finally:
        server.stop()


def test_store_server_alone_stops_with_busy_workers(tmp_path):
    store = StoreProcess(tmp_path / "store", LONG).start()
    gateway = None
    try:
        gateway = ServerProcess(str(tmp_path / "imap"), {"server_socket": store.socket_path, "log_file": "-",
                                                          "imaps_listen": ""}, command="imap").start()
        port = gateway.port("imap")
        r = imap_login(port, "alice", USERS["alice"])
        fill_heavy_folder(r, "Heavy", COPIES)
        searches = [imap_login(port, "alice", USERS["alice"]) for _ in range(3)]
        for s in searches:
            start_heavy_search(s, "Heavy")
        wait_for_cpu(store.pid())
        assert stops_within(store.proc, 10) == 0
    finally:
        if gateway is not None:
            gateway.stop()
        store.stop()


def _start_slow_report(server: ServerProcess, password: str) -> socket.socket:
    """A calendar-query over a FREQ=SECONDLY series thirty years long, with no instance limit."""

    base = f"http://127.0.0.1:{server.port('ical')}/caldav/demo/Calendar/"
    event = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:sec\r\n"
             "DTSTAMP:20260101T000000Z\r\nDTSTART:20000101T000000Z\r\nDTEND:20000101T000001Z\r\n"
             "RRULE:FREQ=SECONDLY\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    r = requests.put(base + "sec.ics", data=event, auth=("demo", password),
                     headers={"Content-Type": "text/calendar"}, timeout=30)
    assert r.status_code == 201, r.text
    return send_report(server.port("ical"), "/caldav/demo/Calendar/", "demo", password,
                       calendar_query("20300101T000000Z", "20300102T000000Z"))


def test_a_worker_stuck_in_the_database_does_not_keep_the_server(tmp_path):
    """A store call waiting on a table lock cannot be told to stop; the server exits anyway
    once shutdown_timeout has passed, with code 1 and a log line saying why."""
    timeout = 3
    with throwaway_mariadb_database() as database:
        store = StoreProcess(tmp_path / "store", {**mysql_options(database),
                                                  "shutdown_timeout": str(timeout)}).start()
        locker = pymysql.connect(**MARIADB, database=database, autocommit=True)
        try:
            client = SoapClient(store.connect("unix"))
            client.logon("alice", USERS["alice"], "imap")
            inbox = client.inbox_id()
            with locker.cursor() as cur:
                cur.execute("LOCK TABLES items WRITE")
            _, data = codec.request("queryRows", [("sessionId", client.session_id), ("folderId", inbox),
                                                  ("columns", "uid")])
            client.http.send_head("POST", "/soap", {"Content-Type": "text/xml; charset=utf-8",
                                                    "Content-Length": str(len(data))})
            client.http.sock.sendall(data)

            def waiting_for_the_lock() -> bool:
                with locker.cursor() as cur:
                    cur.execute("SHOW PROCESSLIST")
                    return any("lock" in str(row[6] or "").lower() and row[3] == database for row in cur.fetchall())
            wait_until(waiting_for_the_lock, timeout=10, message="the store call did not reach the lock")
            assert stops_within(store.proc, timeout + 5) == 1
            assert "still stopping after 3 s (shutdown_timeout)" in store.log()
        finally:
            locker.close()
            store.stop()
