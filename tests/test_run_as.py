"""`run_as_user` as an admin uses it: `groupware serve` started as root binds a port
below 1024, then runs as `nobody` (every process, real, effective and saved ids), with
its files that account's, and still serves, reloads and stops."""
from __future__ import annotations

import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import tempfile

import psutil
import pytest

from harness import CONFIG_DIR, ROOT, READY_TIMEOUT, settings
from postfix import groupware_for
from waiting import scaled, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="binding a port below 1024 and switching users needs root")


def free_privileged_port() -> int:
    # In random order: test processes running side by side would otherwise all try the same one.
    for port in random.sample(range(601, 1024), 1024 - 601):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port below 1024")


@pytest.fixture
def reachable_dir():
    """A directory `nobody` can reach (pytest's own tmp dirs are root's alone)."""
    path = tempfile.mkdtemp(prefix="gw-run-as-", dir="/tmp")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("workers", [{"store_workers": "1", "gateway_workers": "1"},
                                     {"store_workers": "1", "gateway_workers": "2"}], ids=["one-process", "workers"])
def test_serve_binds_as_root_then_runs_as_nobody(reachable_dir, workers):
    nobody = pwd.getpwnam("nobody")
    data_dir = os.path.join(reachable_dir, "var")
    os.mkdir(data_dir, 0o700)
    os.chown(data_dir, nobody.pw_uid, nobody.pw_gid)  # as the README says: the account's own
    port = free_privileged_port()
    options = {"run_as_user": "nobody", "imap_listen": f"127.0.0.1:{port}", "imaps_listen": "",
               "pop3_listen": "127.0.0.1:0", "ical_listen": "127.0.0.1:0", "managesieve_listen": "127.0.0.1:0",
               "lmtp_listen": "127.0.0.1:0", "log_file": os.path.join(data_dir, "server.log"), **workers}
    command = groupware_for("nobody", reachable_dir) + [
        "serve", "--demo", "--config-dir", CONFIG_DIR, "--data-dir", data_dir, *settings(options)]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        watchdog = wait_for_banner(proc, lines)
        assert watchdog, lines
        assert f"imap listening on 127.0.0.1:{port}\n" in lines
        password = lines[-1].split("password ")[1].strip()
        processes = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children()]
        assert len(processes) == (1 if workers["gateway_workers"] == "1" else 4)
        for each in processes:
            assert tuple(each.uids()) == (nobody.pw_uid,) * 3, each
            assert tuple(each.gids()) == (nobody.pw_gid,) * 3, each
        for name in ("store.db", "server.sock", "server.log", "demo-password"):
            assert os.stat(os.path.join(data_dir, name)).st_uid == nobody.pw_uid, name

        with socket.create_connection(("127.0.0.1", port), timeout=scaled(20)) as client:
            reader = client.makefile("rb")
            assert reader.readline().startswith(b"* OK")
            client.sendall(f"a LOGIN demo {password}\r\nb SELECT INBOX\r\n".encode())
            assert reader.readline().startswith(b"a OK")
            while not (line := reader.readline()).startswith(b"b "):
                assert line
            assert line.startswith(b"b OK")
            proc.send_signal(signal.SIGHUP)  # a reload as nobody: the port stays
            wait_until(lambda: "configuration reloaded" in read(os.path.join(data_dir, "server.log")),
                       message="no reload as nobody")
            client.sendall(b"c NOOP\r\n")
            assert reader.readline().startswith(b"c OK")
            proc.send_signal(signal.SIGTERM)
            assert reader.read() == b"* BYE Server shutting down\r\n"
        assert proc.wait(scaled(60)) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        proc.stdout.close()


def wait_for_banner(proc: subprocess.Popen, lines: list[str]) -> bool:
    import threading

    timer = threading.Timer(scaled(READY_TIMEOUT), proc.kill)
    timer.start()
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Demo login:"):
                return True
        return False
    finally:
        timer.cancel()


def read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fp:
            return fp.read()
    except FileNotFoundError:
        return ""
