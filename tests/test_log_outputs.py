"""`log_method = syslog` and `log_format = json` on a real `groupware serve`: a failed
login (the line fail2ban reads) reaches a syslog socket with the mail facility and the
warning priority, and a JSON log file holds one object per line."""
from __future__ import annotations

import json
import os
import re
import socket

from harness import ServerProcess
from waiting import scaled, wait_until


def fail_a_login(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=scaled(30)) as client:
        reader = client.makefile("rb")
        reader.readline()
        client.sendall(b"a LOGIN demo wrong-password\r\n")
        assert reader.readline().startswith(b"a NO")


def test_syslog_with_json_lines(tmp_path):
    path = str(tmp_path / "log.sock")
    syslog = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    syslog.bind(path)
    syslog.settimeout(scaled(30))
    server = ServerProcess(str(tmp_path / "var"), {"log_method": "syslog", "log_syslog_address": path,
                                                   "log_format": "json", "auth_exempt_loopback": "yes"}, demo=True)
    try:
        with server:
            fail_a_login(server.port("imap"))
            found = None
            while found is None:
                datagram = syslog.recv(65536).decode("utf-8").rstrip("\x00")
                match = re.fullmatch(r"<(\d+)>groupware\[(\d+)\]: (\{.*\})\n?", datagram)
                assert match, datagram
                entry = json.loads(match.group(3))
                if "login failed" in entry["message"]:
                    found = (int(match.group(1)), int(match.group(2)), entry)
            priority, pid, entry = found
            assert priority == 2 * 8 + 4  # facility mail, severity warning (RFC 5424 §6.2.1)
            assert pid == server.pid() and entry["process"] == pid
            assert entry["level"] == "warning" and entry["logger"].startswith("shared")
            assert "user=demo rip=127.0.0.1" in entry["message"]
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
    finally:
        syslog.close()


def test_json_log_file_has_one_object_per_line(tmp_path):
    server = ServerProcess(str(tmp_path / "var"), {"log_format": "json", "log_level": "debug"}, demo=True)
    with server:
        fail_a_login(server.port("imap"))
        log = os.path.join(server.data_dir, "server.log")
        wait_until(lambda: "login failed" in open(log, encoding="utf-8").read(), message="no failure line")
    with open(log, encoding="utf-8") as fp:
        entries = [json.loads(line) for line in fp]
    assert len(entries) > 5
    assert all(set(entry) >= {"time", "level", "logger", "message", "process"} for entry in entries)
    assert any(entry["level"] == "debug" for entry in entries)
