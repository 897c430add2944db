"""The parent of `groupware serve`'s worker processes.

It has a short-lived process bring the schema up to date, clear the spool and make
the demo user (so that the parent never holds the storage code's memory), then
starts `store_workers` store server processes, then `gateway_workers` processes
that each run every enabled gateway, hands them the listening sockets they ask
for (shared.socketshare), prints the banner once all are ready, restarts a worker
that dies (waiting longer after each quick death, up to a limit), passes SIGHUP on
to every worker (each reloads, shared.reload) and, on SIGTERM or SIGINT, stops them
all and waits for them: the gateway workers first, so that their commands in flight
still reach the store, then the store workers. Store workers share one session key
(passed in their environment), so a gateway's request may land on any of them.
"""
from __future__ import annotations

import ctypes
import json
import logging
import os
import secrets
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from gateways.web.sessions import WEB_KEY_ENV
from server.sessions import SESSION_KEY_ENV
from shared.config import Config
from shared.socketshare import BROKER_ENV, SocketBroker

log = logging.getLogger("groupware.supervisor")

# Roles start in this order: gateways look up the store as they start.
ROLES = ("store", "gateways")
# A worker that lived this long before it died is restarted at once.
STABLE_AFTER = 10.0
FIRST_DELAY = 0.5
MAX_DELAY = 30.0
# Seconds past shutdown_timeout (within which a worker ends itself) before a worker
# that is still there is killed.
STOP_MARGIN = 10.0
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the supervisor dies, even by SIGKILL."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class Worker:
    def __init__(self, role: str, index: int) -> None:
        self.role = role
        self.index = index
        self.proc: subprocess.Popen | None = None
        self.channel: socket.socket | None = None
        self.ready = False
        self.started = 0.0
        self.quick_deaths = 0
        self.restart_at: float | None = None
        self.lines: list[str] = []

    @property
    def name(self) -> str:
        return f"{self.role} worker {self.index}"


class Supervisor:
    def __init__(self, cfg: Config, argv: list[str], counts: dict[str, int]) -> None:
        self.cfg = cfg
        self.argv = argv
        self.workers = [Worker(role, i) for role in ROLES for i in range(counts.get(role, 0))]
        self.broker = SocketBroker()
        self.selector = selectors.DefaultSelector()
        self.session_key = secrets.token_hex(32)
        # The web page's logins and one-time links are sealed with this key in every gateway worker.
        self.web_key = secrets.token_hex(32)
        self.stopping = False
        self.hangup = False
        self._wakeup_r, self._wakeup_w = os.pipe()
        os.set_blocking(self._wakeup_r, False)
        os.set_blocking(self._wakeup_w, False)
        self.selector.register(self._wakeup_r, selectors.EVENT_READ, None)

    # -- processes --------------------------------------------------------------

    def spawn(self, worker: Worker) -> None:
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {**os.environ, BROKER_ENV: str(child_end.fileno())}
        if worker.role == "store":
            env[SESSION_KEY_ENV] = self.session_key
        else:
            env[WEB_KEY_ENV] = self.web_key
        try:
            worker.proc = subprocess.Popen(
                [sys.executable, "-m", "groupware.cli", *self.argv, "--worker", worker.role],
                pass_fds=[child_end.fileno()], env=env, preexec_fn=_die_with_parent)
        finally:
            child_end.close()
        worker.channel = parent_end
        worker.ready = False
        worker.started = time.monotonic()
        worker.restart_at = None
        self.selector.register(parent_end, selectors.EVENT_READ, worker)
        log.debug("started %s (pid %d)", worker.name, worker.proc.pid)

    def _close_channel(self, worker: Worker) -> None:
        if worker.channel is not None:
            self.selector.unregister(worker.channel)
            worker.channel.close()
            worker.channel = None

    def _on_signal(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGHUP:
            self.hangup = True
        else:
            self.stopping = True
        try:
            os.write(self._wakeup_w, b"s")
        except BlockingIOError:
            pass

    def _poll(self, timeout: float | None) -> None:
        """Wait for messages from workers, a signal or the timeout; answer the messages."""
        for key, _ in self.selector.select(timeout):
            worker = key.data
            if worker is None:
                try:
                    while os.read(self._wakeup_r, 512):
                        pass
                except BlockingIOError:
                    pass
                continue
            try:
                message = self.broker.handle(key.fileobj)
            except (EOFError, ConnectionError):
                self._close_channel(worker)
                continue
            if message is not None and message.get("op") == "ready":
                worker.ready = True
                worker.lines = list(message.get("lines", []))
                log.debug("%s is ready", worker.name)

    def _exited(self) -> list[Worker]:
        gone = []
        for worker in self.workers:
            if worker.proc is not None and worker.proc.poll() is not None:
                self._close_channel(worker)
                gone.append(worker)
        return gone

    # -- phases -----------------------------------------------------------------

    def start(self) -> int:
        """Start every worker, role by role, each role once the one before is ready;
        0, or the exit code of a worker that failed to start."""
        for role in ROLES:
            starting = [w for w in self.workers if w.role == role]
            for worker in starting:
                self.spawn(worker)
            while not all(w.ready for w in starting):
                if self.stopping:
                    return 0
                self._poll(0.2)
                for worker in self._exited():
                    code = worker.proc.returncode
                    log.error("%s exited with %s while starting", worker.name, code)
                    return code if code and code > 0 else 1
        return 0

    def reload(self) -> None:
        """SIGHUP: reopen this process's log, and have every worker reload."""
        from shared.reload import reload

        self.hangup = False
        reload(self.cfg)
        for worker in self.workers:
            if worker.proc is not None and worker.proc.poll() is None:
                try:
                    worker.proc.send_signal(signal.SIGHUP)
                except ProcessLookupError:
                    pass

    def run(self) -> None:
        """Keep every worker running until a stop signal."""
        while not self.stopping:
            if self.hangup:
                self.reload()
            now = time.monotonic()
            for worker in self._exited():
                if self.stopping:
                    break
                lived = now - worker.started
                worker.quick_deaths = worker.quick_deaths + 1 if lived < STABLE_AFTER else 0
                delay = 0.0 if worker.quick_deaths == 0 else min(MAX_DELAY, FIRST_DELAY * 2 ** (worker.quick_deaths - 1))
                log.error("%s (pid %d) died with %s after %.1f s; restarting it in %.1f s", worker.name,
                          worker.proc.pid, worker.proc.returncode, lived, delay)
                from shared.metrics import process_gone
                process_gone(worker.proc.pid)
                worker.proc = None
                worker.restart_at = now + delay
            pending = [w.restart_at for w in self.workers if w.restart_at is not None]
            for worker in self.workers:
                if worker.restart_at is not None and worker.restart_at <= now and not self.stopping:
                    self.spawn(worker)
            timeout = max(0.0, min(pending) - now) if pending else 1.0
            self._poll(min(timeout, 1.0))

    def stop(self) -> None:
        # Each worker ends itself within shutdown_timeout (0: it waits as long as it takes).
        grace = self.cfg.get_int("shutdown_timeout")
        deadline = time.monotonic() + grace + STOP_MARGIN if grace else None
        for role in reversed(ROLES):
            self._stop_role(role, grace, deadline)
        for worker in self.workers:
            self._close_channel(worker)
        self.broker.close()
        self.selector.close()
        os.close(self._wakeup_r)
        os.close(self._wakeup_w)

    def _stop_role(self, role: str, grace: int, deadline: float | None) -> None:
        running = [w for w in self.workers if w.role == role and w.proc is not None and w.proc.poll() is None]
        for worker in running:
            try:
                worker.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        for worker in running:
            try:
                worker.proc.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("%s (pid %d) did not stop within %d s (shutdown_timeout); killing it", worker.name,
                          worker.proc.pid, grace)
                worker.proc.kill()
                worker.proc.wait()


def prepare(argv: list[str], demo: bool) -> tuple[int, tuple[str, str] | None]:
    """Run `groupware.serve.prepare_workers` in a process of its own: its exit code, and the
    demo login to show."""
    done = subprocess.run([sys.executable, "-m", "groupware.cli", *argv, "--worker", "prepare",
                           *(["--demo"] if demo else [])], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        return done.returncode, None
    lines = done.stdout.strip().splitlines()
    login = json.loads(lines[-1]) if lines else None
    return 0, (login[0], login[1]) if login else None


def supervise(cfg: Config, argv: list[str], counts: dict[str, int], demo: bool,
              announce: Callable[[list[str], tuple[str, str] | None], None]) -> int:
    """Run `groupware serve` as worker processes until SIGTERM or SIGINT; the exit code."""
    code, login = prepare(argv, demo)
    if code != 0:
        return code
    supervisor = Supervisor(cfg, argv, counts)
    previous = {signum: signal.signal(signum, supervisor._on_signal)
                for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        code = supervisor.start()
        if code == 0 and not supervisor.stopping:
            # Every socket is bound (the broker keeps them for restarted workers).
            from shared.privileges import drop
            drop(cfg)
            gateways = next((w for w in supervisor.workers if w.role == "gateways"), None)
            processes = ", ".join(f"{counts[role]} {role.rstrip('s')} process{'es' if counts[role] != 1 else ''}"
                                  for role in ROLES if counts.get(role))
            announce([f"store listening on {cfg.get('server_socket')} ({processes})",
                      *(gateways.lines if gateways is not None else [])], login)
            supervisor.run()
        return code
    finally:
        supervisor.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
