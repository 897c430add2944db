"""Our processes for integration tests: the store server alone (`python -m server`) or
`groupware serve` with its gateways, each in its own data directory on loopback; and the
MariaDB the tests use, with throwaway databases on it.

Every process is started, waited for and stopped the same way: ready when it prints the
line that says so, given `READY_TIMEOUT` seconds (loaded CI machines are slow).
"""
from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from waiting import scaled, wait_until

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
CONFIG_DIR = os.path.join(ROOT, "conf")
# Seconds a process or peer may take to get ready; generous, since it only costs time on
# failure, and stretched by TEST_TIMEOUT_SCALE like every deadline of the tests.
READY_TIMEOUT = 120
# The users every store server test gets, with their passwords.
USERS = {"alice": "alice-secret", "bob": "bob-secret"}

MARIADB = dict(host=os.environ.get("GROUPWARE_TEST_MYSQL_HOST", "127.0.0.1"),
               port=int(os.environ.get("GROUPWARE_TEST_MYSQL_PORT", "3306")),
               user=os.environ.get("GROUPWARE_TEST_MYSQL_USER", "root"),
               password=os.environ.get("GROUPWARE_TEST_MYSQL_PASSWORD", ""))


def mysql_options(database: str) -> dict[str, str]:
    """The server options that put its store into `database` on the test MariaDB."""
    return {"database_engine": "mysql", "mysql_host": MARIADB["host"], "mysql_port": str(MARIADB["port"]),
            "mysql_user": MARIADB["user"], "mysql_password": MARIADB["password"], "mysql_database": database}


def mariadb_url(database: str) -> str:
    """The storage URL of `database` on the test MariaDB, as the server builds it from its options."""
    from server.storage.engine import database_url
    from shared.config import Config

    return database_url(Config(mysql_options(database)), ROOT)


@contextlib.contextmanager
def throwaway_mariadb_database(prefix: str = "gw_test") -> Iterator[str]:
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


def free_port() -> int:
    """A loopback port free right now (for peers that cannot listen on port 0 and say which)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def non_loopback_address() -> str:
    """An IPv4 address of this host other than loopback (the one its default route leaves
    from), for tests of what a client on another host gets."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # picks the route; a datagram socket sends nothing
            address = sock.getsockname()[0]
        except OSError:
            address = ""
    assert address and not address.startswith("127."), "the test needs a non-loopback IPv4 address on this host"
    return address


def wait_for_port(port: int, timeout: float = READY_TIMEOUT, alive: Callable[[], bool] = lambda: True) -> None:
    """Until something accepts on 127.0.0.1:`port`; TimeoutError (an OSError) after `timeout`
    seconds, or RuntimeError as soon as `alive()` says the process that should listen is gone."""
    def accepts() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return True
        except OSError:
            if not alive():
                raise RuntimeError(f"the process that should listen on port {port} exited") from None
            return False
    wait_until(accepts, timeout, interval=0.05, message=f"nothing accepts on 127.0.0.1:{port}")


def stop_process(proc: subprocess.Popen | None, grace: float = 30) -> None:
    """SIGTERM, and SIGKILL if it is still there after `grace` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(grace)


def settings(options: dict[str, str]) -> list[str]:
    """Options as `--set name=value` arguments."""
    return [arg for name, value in options.items() for arg in ("--set", f"{name}={value}")]


def run_command(argv: list[str], data_dir: Any, *args: str, stdin: str | bytes | None = None,
                options: dict[str, str] | None = None, env: dict[str, str] | None = None,
                check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python ARGV ARGS` as an admin runs it, with the sample configuration, `data_dir` and
    `options` as --set; text in and out unless `stdin` is bytes. With `check`, a failure is an
    AssertionError that shows what the command printed."""
    # make's variables would leak into a command that runs make (groupware serve's demo).
    environment = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    proc = subprocess.run([sys.executable, *argv, *args, "--config-dir", CONFIG_DIR, "--data-dir", str(data_dir),
                           *settings(options or {})],
                          input=stdin, capture_output=True, text=not isinstance(stdin, bytes), cwd=ROOT,
                          env={**environment, **(env or {})}, timeout=scaled(timeout))
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join([*argv, *args])} failed: {proc.stderr}")
    return proc


def run_groupware(data_dir: Any, *args: str, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess:
    """`groupware ARGS` (see `run_command`); a failure is an AssertionError unless `check` is off."""
    return run_command(["-m", "groupware.cli"], data_dir, *args, check=check, **kwargs)


def run_deliver(data_dir: Any, stdin: bytes, *args: str,
                options: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`groupware deliver ARGS` with the message `stdin`, spooling under `data_dir`; never raises
    for its exit code (the sysexits code is what tests look at)."""
    return run_groupware(data_dir, "deliver", *args, stdin=stdin, options=options,
                         env={"TMPDIR": str(data_dir)}, check=False, timeout=60)


def memory_kb(pid: int, field: str) -> int:
    """A memory figure of process `pid` from /proc/<pid>/status ("VmRSS", "VmHWM"), in kB."""
    with open(f"/proc/{pid}/status") as fp:
        for line in fp:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for process {pid}")


def log_times(log: str, text: str) -> list[float]:
    """When the lines of a log of ours that hold `text` were written, in seconds by the
    process's own clock (free of how late a busy test thread read the answers)."""
    from datetime import datetime
    return [datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            for line in log.splitlines() if text in line]


def rss_kb(pid: int) -> int:
    """The resident memory of process `pid` now, in kB."""
    return memory_kb(pid, "VmRSS")


def peak_rss_kb(pid: int) -> int:
    """The most resident memory process `pid` has had, in kB."""
    return memory_kb(pid, "VmHWM")


class OurProcess:
    """One of our processes in its own data directory, started by `command()` and ready when
    it prints a line for which `is_ready_line` is true; the lines up to it are in `output`."""

    name = "process"
    stderr_name = ""  # a file in the data dir for stderr; empty: stderr goes with stdout

    def __init__(self, data_dir: str, options: dict[str, str]) -> None:
        self.data_dir = str(data_dir)
        self.options = options
        self.environment: dict[str, str] = {}  # set in the process's environment besides ours
        self.proc: subprocess.Popen | None = None
        self.output: list[str] = []

    @property
    def socket_path(self) -> str:
        return self.options["server_socket"]

    def command(self) -> list[str]:
        raise NotImplementedError

    def is_ready_line(self, line: str) -> bool:
        raise NotImplementedError

    def prepare(self) -> None:
        """Work to do in the data dir before each start."""

    def start(self, timeout: float = READY_TIMEOUT) -> "OurProcess":
        os.makedirs(self.data_dir, exist_ok=True)
        self.prepare()
        stderr = open(self.stderr_path, "ab") if self.stderr_name else subprocess.STDOUT
        self.proc = subprocess.Popen(self.command(), cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                     env={**os.environ, **self.environment})
        if self.stderr_name:
            stderr.close()
        self.output = []
        # Reading lines blocks; a process that hangs before it is ready is killed, which ends the read.
        timeout = scaled(timeout)
        watchdog = threading.Timer(timeout, self.kill)
        watchdog.start()
        try:
            while True:
                line = self.proc.stdout.readline()
                if not line:
                    self.proc.wait()
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before it was "
                                       f"ready (within {timeout:.0f} s): {self.log()}")
                self.output.append(line)
                if self.is_ready_line(line):
                    return self
        finally:
            watchdog.cancel()

    @property
    def stderr_path(self) -> str:
        return os.path.join(self.data_dir, self.stderr_name)

    def log(self) -> str:
        """What the process wrote to stderr (or stdout, when they are one)."""
        if not self.stderr_name:
            return "".join(self.output)
        with open(self.stderr_path, encoding="utf-8", errors="replace") as fp:
            return fp.read()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> "OurProcess":
        """Started (if it is not running yet) for the `with` block, stopped at its end."""
        return self if self.alive() else self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL to the process and its worker processes: no cleanup, as in a crash."""
        if self.alive():
            import psutil
            workers = psutil.Process(self.proc.pid).children()
            self.proc.send_signal(signal.SIGKILL)
            for worker in workers:
                try:
                    worker.kill()
                except psutil.NoSuchProcess:
                    pass
            self.proc.wait(30)
            psutil.wait_procs(workers, timeout=30)

    def stop(self) -> None:
        stop_process(self.proc)
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()


class StoreProcess(OurProcess):
    """The store server alone (`python -m server`) on a UNIX socket and a loopback TCP port,
    with `users` ({name: password}) created before it starts; `features` switch protocols off
    per user ({name: {"pop3": False, ...}})."""

    name = "store server"
    stderr_name = "server.err"

    def __init__(self, data_dir: str, options: dict[str, str] | None = None,
                 users: dict[str, str] | None = None,
                 features: dict[str, dict[str, bool]] | None = None, command: str = "python -m server") -> None:
        data_dir = str(data_dir)
        self.how = command  # or "groupware server", the same server through the groupware command
        super().__init__(data_dir, {"server_socket": os.path.join(data_dir, "server.sock"),
                                    "server_listen": "127.0.0.1:0", "log_level": "info", **(options or {})})
        self.users = USERS if users is None else users
        self.features = features or {}
        self.ports: list[int] = []

    @property
    def tcp_port(self) -> int:
        return self.ports[0] if self.ports else 0

    def config(self):
        from shared.config import Config
        return Config(self.options, self.data_dir)

    def prepare(self) -> None:
        from server.service import open_storage
        from server.users import hash_password
        storage = open_storage(self.config())
        try:
            for name, password in self.users.items():
                if storage.get_user(name) is None:
                    storage.create_user(name, hash_password(password), fullname=name.title(),
                                        email=f"{name}@example.org")
            for name, switches in self.features.items():
                storage.set_features(name, {"imap": True, "pop3": True, "caldav": True, **switches})
        finally:
            storage.close()

    def command(self) -> list[str]:
        start = ([sys.executable, "-m", "server"] if self.how == "python -m server"
                 else [sys.executable, "-m", "groupware.cli", "server", "--config-dir", CONFIG_DIR])
        return [*start, "--data-dir", self.data_dir, *settings(self.options)]

    def is_ready_line(self, line: str) -> bool:
        if line.startswith("listening tcp:"):
            self.ports.append(int(line.rsplit(":", 1)[1]))
        return line.strip() == "ready"

    def start(self, timeout: float = READY_TIMEOUT) -> "StoreProcess":
        self.ports = []
        super().start(timeout)
        return self

    def connect(self, transport: str = "unix"):
        """A raw HTTP connection to the server's socket ("unix") or TCP port ("tcp")."""
        from soap_client import RawHTTP
        if transport == "unix":
            return RawHTTP(("unix", self.socket_path))
        return RawHTTP(("tcp", ("127.0.0.1", self.tcp_port)))


def store_workers(data_dir: str, options: dict[str, str] | None = None, count: int = 2) -> list[StoreProcess]:
    """`count` store servers on one data directory and database that share a session key,
    each on a UNIX socket and a loopback port of its own: what the store workers of
    `groupware serve` are, except that a test chooses which one each call reaches.
    Not started."""
    from server.sessions import SESSION_KEY_ENV

    key = secrets.token_hex(32)
    processes = []
    for index in range(count):
        process = StoreProcess(data_dir, {"server_socket": os.path.join(str(data_dir), f"server-{index}.sock"),
                                          **(options or {})})
        process.environment[SESSION_KEY_ENV] = key
        process.stderr_name = f"server-{index}.err"
        process.name = f"store worker {index}"
        processes.append(process)
    return processes


class ServerProcess(OurProcess):
    """`groupware serve`: the store and every gateway, listening on loopback ports of its choice
    (see `port()`); with `demo`, the demo user and its password in `demo-password`. With another
    `command` ("imap", "pop3", "ical"), that gateway alone against `server_socket`."""

    name = "groupware server"

    def __init__(self, data_dir: str, options: dict[str, str] | None = None, demo: bool = False,
                 command: str = "serve") -> None:
        data_dir = str(data_dir)
        super().__init__(data_dir, {"server_socket": os.path.join(data_dir, "server.sock"),
                                    "log_file": os.path.join(data_dir, "server.log"),
                                    # Never the privileged default ports: tests run side by side.
                                    "pop3_listen": "127.0.0.1:0", "pop3s_listen": "127.0.0.1:0",
                                    "ical_listen": "127.0.0.1:0", "icals_listen": "127.0.0.1:0",
                                    "imap_listen": "127.0.0.1:0", "imaps_listen": "127.0.0.1:0",
                                    "managesieve_listen": "127.0.0.1:0",
                                    "lmtp_listen": "127.0.0.1:0",
                                    # One process unless a test asks for workers.
                                    "store_workers": "1", "gateway_workers": "1",
                                    **(options or {})})
        self.demo = demo
        self.subcommand = command
        self.config_dir = CONFIG_DIR  # a test that edits the files (SIGHUP) gives its copy
        if command != "serve":
            # A gateway alone often logs to stderr (log_file=-): to a file, so no pipe fills up.
            self.stderr_name = f"{command}.err"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "groupware.cli", self.subcommand, "--config-dir", self.config_dir,
                "--data-dir", self.data_dir, *settings(self.options), *(["--demo"] if self.demo else [])]

    def is_ready_line(self, line: str) -> bool:
        # The banner ("groupware is running", "groupware imap is running") comes after every listener
        # is up; with --demo the demo login is its last line.
        if self.demo and self.subcommand == "serve":
            return line.startswith("Demo login:")
        return " is running" in line

    def start(self, timeout: float = READY_TIMEOUT) -> "ServerProcess":
        super().start(timeout)
        return self

    def port(self, listener: str) -> int:
        """The port a listener got (e.g. "imap" for imap_listen=127.0.0.1:0), from the banner;
        UNIX socket lines (`lmtp listening on /path`) are passed over."""
        prefix = f"{listener} listening on "
        for line in self.output:
            if line.startswith(prefix) and not line.startswith(prefix + "/"):
                return int(line.strip().rpartition(":")[2])
        raise KeyError(f"no {listener} listener in the server's banner")

    def demo_password(self) -> str:
        with open(os.path.join(self.data_dir, "demo-password")) as fp:
            return fp.read().strip()

    def cli(self, *args: str, stdin: str | None = None) -> str:
        """`groupware <args>` against this server's store (user management and the like); its output."""
        # The admin commands open the store and the user backend themselves, as the server does.
        shared = {name: value for name, value in self.options.items()
                  if not name.endswith("_listen") and name != "log_file"}
        return run_groupware(self.data_dir, *args, stdin=stdin, options=shared).stdout
