"""Dependencies the tests take away and give back: a MariaDB of the test's own (so it can be
stopped and killed without touching the shared one), a small tmpfs to fill up, and a TCP proxy
that delays what passes through it.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

from harness import free_port, stop_process, wait_for_port
from waiting import scaled


class OwnMariaDB:
    """A `mariadbd` in its own data directory, on a loopback port and socket of its own, that
    the test may stop (SIGTERM), kill (SIGKILL) and start again on the same data and port."""

    def __init__(self, directory: str) -> None:
        self.dir = os.path.abspath(str(directory))
        self.datadir = os.path.join(self.dir, "data")
        self.socket = os.path.join(self.dir, "mysqld.sock")
        self.log_path = os.path.join(self.dir, "mariadbd.err")
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.installed = False

    def install(self) -> None:
        os.makedirs(self.dir, exist_ok=True)
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={self.datadir}", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True, timeout=scaled(300))
        self.installed = True

    def start(self) -> "OwnMariaDB":
        if not self.installed:
            self.install()
        log = open(os.path.join(self.dir, "mariadbd.out"), "ab")
        self.proc = subprocess.Popen(
            ["mariadbd", "--no-defaults", f"--datadir={self.datadir}", "--user=root", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={self.socket}", f"--pid-file={self.dir}/mariadbd.pid",
             f"--log-error={self.log_path}", "--skip-log-bin", "--innodb-buffer-pool-size=32M",
             "--max-connections=300"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        try:
            wait_for_port(self.port, timeout=300, alive=lambda: self.proc.poll() is None)
        except (OSError, RuntimeError):
            self.kill()
            raise RuntimeError("mariadbd did not start: " + self.log_text()[-3000:]) from None
        return self

    def stop(self) -> None:
        """SIGTERM: a clean shutdown, connections cut."""
        stop_process(self.proc, grace=scaled(60))
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: a crash; the next start recovers InnoDB from its log."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(scaled(30))
        self.proc = None

    def connect(self, **kwargs):
        import pymysql
        return pymysql.connect(host="127.0.0.1", port=self.port, user="root", password="", **kwargs)

    def create_database(self, prefix: str = "gw") -> str:
        name = f"{prefix}_{secrets.token_hex(4)}"
        conn = self.connect(autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        finally:
            conn.close()
        return name

    def options(self, database: str) -> dict[str, str]:
        """Server options that put the store into `database` here."""
        return {"database_engine": "mysql", "mysql_host": "127.0.0.1", "mysql_port": str(self.port),
                "mysql_user": "root", "mysql_password": "", "mysql_database": database}

    def log_text(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fp:
                return fp.read()
        except FileNotFoundError:
            return ""

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def own_mariadb(directory: str) -> Iterator[OwnMariaDB]:
    """A started OwnMariaDB, killed and removed afterwards."""
    db = OwnMariaDB(directory)
    try:
        yield db.start()
    finally:
        db.remove()


@contextlib.contextmanager
def tmpfs(path: str, size: str = "2m") -> Iterator[str]:
    """A tmpfs of `size` mounted at `path` (made if missing) for the block, readable by root
    alone; unmounted afterwards. Needs root, as the tests run in CI."""
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", path],
                   check=True, capture_output=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], capture_output=True)


def fill(path: str, leave: int = 0) -> str:
    """Fill the file system of `path` with one file until at most `leave` bytes are free; its path."""
    filler = os.path.join(path, "filler")
    with open(filler, "ab") as fp:
        while True:
            free = shutil.disk_usage(path).free - leave
            if free <= 0:
                break
            try:
                fp.write(b"\0" * min(free, 1 << 20))
                fp.flush()
            except OSError:
                break
    return filler


class LatencyProxy:
    """A TCP proxy on a loopback port to `target` (host, port) that holds data back.

    Each chunk from the client waits `delay(chunk)` seconds (0 by default) before it goes on,
    and the chunks after it on that connection wait behind it, as on a slow link; the other
    connections are not held up. A chunk for which `cut(chunk)` is true goes on, and then the
    client's side of that connection is closed before any answer comes back (a request that
    reached the server, whose answer was lost). Both may be replaced while the proxy runs.
    """

    def __init__(self, target: tuple[str, int], delay: Callable[[bytes], float] = lambda chunk: 0.0) -> None:
        self.target = target
        self.delay = delay
        self.cut: Callable[[bytes], bool] = lambda chunk: False
        self.cuts = 0  # connections cut so far
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.delayed = 0  # chunks held back so far
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    @property
    def address(self) -> str:
        """The proxy as a `server_socket` value."""
        return f"tcp:127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self._sockets += [client, upstream]
            for args in ((client, upstream, True), (upstream, client, False)):
                thread = threading.Thread(target=self._pump, args=args, daemon=True)
                thread.start()
                self._threads.append(thread)

    def _pump(self, src: socket.socket, dst: socket.socket, delaying: bool) -> None:
        try:
            while not self._closing.is_set():
                ready, _, _ = select.select([src], [], [], 0.2)
                if not ready:
                    continue
                chunk = src.recv(65536)
                if not chunk:
                    break
                if delaying:
                    wait = self.delay(chunk)
                    if wait > 0:
                        self.delayed += 1
                        if self._closing.wait(wait):
                            break
                    if self.cut(chunk):
                        dst.sendall(chunk)
                        self.cuts += 1
                        src.shutdown(socket.SHUT_RDWR)
                        break
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closing.set()
        self.listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()
        for thread in self._threads:
            thread.join(5)
        self._accepting.join(5)

    def __enter__(self) -> "LatencyProxy":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def elapsed(fn: Callable[[], object]) -> tuple[object, float]:
    """fn()'s result and the seconds it took."""
    start = time.monotonic()
    result = fn()
    return result, time.monotonic() - start
