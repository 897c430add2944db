"""Start the real `groupware serve` as a subprocess on loopback, and throwaway MariaDB databases."""
from __future__ import annotations

import base64
import contextlib
import os
import poplib
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

from waiting import wait_until

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
MARIADB = dict(host="127.0.0.1", port=3306, user="root", password="")


def free_port() -> int:
    """A loopback port free right now (for peers that cannot listen on port 0 and say which)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30) -> None:
    """Until something accepts on 127.0.0.1:`port`; TimeoutError (an OSError) after `timeout` seconds."""
    def accepts() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return True
        except OSError:
            return False
    wait_until(accepts, timeout, interval=0.05, message=f"nothing accepts on 127.0.0.1:{port}")


def read_until_quiet(sock: socket.socket) -> bytes:
    """Everything the peer sends until it closes or stays quiet for the socket's timeout."""
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except socket.timeout:
        pass
    return out


def pop3_auth_plain(port: int, user: str, password: str) -> bytes:
    """The POP3 gateway's answer to AUTH PLAIN (any bytes in the name), closed with QUIT."""
    p = poplib.POP3("127.0.0.1", port, timeout=30)
    try:
        plain = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
        try:
            return p._shortcmd("AUTH PLAIN " + plain)
        except poplib.error_proto as exc:
            return exc.args[0]
    finally:
        try:
            p.quit()
        except (poplib.error_proto, OSError):
            pass


class ServerProcess:
    """One `groupware serve` process with its own data dir and socket."""

    def __init__(self, data_dir: str, options: dict[str, str] | None = None, demo: bool = False) -> None:
        self.data_dir = str(data_dir)
        self.options = {"server_socket": os.path.join(self.data_dir, "server.sock"),
                        "log_file": os.path.join(self.data_dir, "server.log"),
                        # Never the privileged default port: tests run side by side.
                        "pop3_listen": "127.0.0.1:0", "pop3s_listen": "127.0.0.1:0", "ical_listen": "127.0.0.1:0",
                        "icals_listen": "127.0.0.1:0", "imap_listen": "127.0.0.1:0",
                        "imaps_listen": "127.0.0.1:0", **(options or {})}
        self.demo = demo
        self.proc: subprocess.Popen | None = None
        self.output: list[str] = []

    @property
    def socket_path(self) -> str:
        return self.options["server_socket"]

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "groupware.cli", "serve", "--config-dir", os.path.join(ROOT, "conf"),
               "--data-dir", self.data_dir]
        for name, value in self.options.items():
            cmd += ["--set", f"{name}={value}"]
        if self.demo:
            cmd.append("--demo")
        return cmd

    def start(self, timeout: float = 60) -> "ServerProcess":
        os.makedirs(self.data_dir, exist_ok=True)
        self.proc = subprocess.Popen(self.command(), cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        def listening() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.proc.stdout.read()}")
            return self._accepts()
        try:
            wait_until(listening, timeout, interval=0.05, message="server did not start listening in time")
        except TimeoutError:
            self.kill()
            raise
        line = ""
        # The banner comes after the listeners are up.
        while "groupware is running" not in line:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("server closed its output: " + "".join(self.output))
            self.output.append(line)
        return self

    def port(self, listener: str) -> int:
        """The port a listener got (e.g. "imap" for imap_listen=127.0.0.1:0), from the banner."""
        prefix = f"{listener} listening on "
        for line in self.output:
            if line.startswith(prefix):
                return int(line.strip().rpartition(":")[2])
        raise KeyError(f"no {listener} listener in the server's banner")

    def _accepts(self) -> bool:
        if not os.path.exists(self.socket_path):
            return False
        with socket.socket(socket.AF_UNIX) as sock:
            try:
                sock.connect(self.socket_path)
                return True
            except OSError:
                return False

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL: no cleanup, as in a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()


def mysql_options(database: str) -> dict[str, str]:
    return {"database_engine": "mysql", "mysql_host": MARIADB["host"], "mysql_port": str(MARIADB["port"]),
            "mysql_user": MARIADB["user"], "mysql_password": MARIADB["password"], "mysql_database": database}


@contextlib.contextmanager
def mariadb_database(prefix: str = "gw_test") -> Iterator[str]:
    """A fresh, empty MariaDB database, dropped afterwards."""
    import pymysql

    name = f"{prefix}_{secrets.token_hex(4)}"
    conn = pymysql.connect(**MARIADB, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        yield name
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


async def fresh_folder(session, name: str):
    """An empty top-level folder `name` in the session's store (an older one is deleted)."""
    store = session.store()
    for folder in await store.folders():
        if folder.name == name:
            await folder.delete()
    return await store.create_folder(name)
