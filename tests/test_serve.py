"""`make run`, i.e. `groupware serve --demo`, as a user meets it: a fresh data dir, the
printed demo login, a working store behind it, a clean Ctrl-C, and a second start
that finds everything where it was. Plus the README's two commands themselves."""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time

import psutil
import pytest

from harness import READY_TIMEOUT, ROOT, ServerProcess, StoreProcess
from waiting import scaled
from shared.config import Config
from shared.errors import AuthFailed
from shared.model import Adapter

DEMO_LINE = re.compile(r"^Demo login: user (\S+), password (\S+)$")
DEFAULT_FOLDERS = ["Inbox", "Drafts", "Sent", "Trash", "Junk", "Archive", "Calendar", "Tasks", "Contacts"]
NOTE = (b"From: demo@localhost\r\nTo: demo@localhost\r\nSubject: kept across restarts\r\n"
        b"Message-ID: <kept@localhost>\r\n\r\nStill here after a restart.\r\n")


def demo_login(output: list[str]) -> tuple[str, str]:
    found = [m.groups() for m in (DEMO_LINE.match(line.rstrip("\n")) for line in output) if m]
    assert len(found) == 1, output
    return found[0]


def stop_cleanly(server: ServerProcess) -> None:
    """SIGTERM, as Ctrl-C or a service manager would; the process must exit 0 by itself."""
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(30) == 0
    server.stop()  # closes the pipe


class Client:
    """An adapter logged on to one server as one user."""

    def __init__(self, rt, socket_path: str, data_dir: str, user: str, password: str) -> None:
        self.rt = rt
        cfg = Config({"server_socket": socket_path, "server_connections": "2"}, data_dir)
        self.adapter = rt.call(Adapter, cfg, rt.reactor)
        self.session = rt.call(self.adapter.logon, user, password, "imap", "127.0.0.1")

    def folders(self) -> dict[str, object]:
        return {f.name: f for f in self.rt.call(self.session.store().folders)}

    def inbox_sources(self) -> list[bytes]:
        async def read():
            inbox = await self.session.store().inbox()
            _, messages = await inbox.messages(("uid", "size"), sort=[("uid", False)])
            return [await m.source() for m in messages]
        return self.rt.coro(read)

    def close(self) -> None:
        self.rt.call(self.session.logoff)
        self.rt.call(self.adapter.close)


def test_demo_first_run_restart_keeps_login_and_data(reactor_thread, tmp_path):
    data_dir = str(tmp_path / "var")
    first = ServerProcess(data_dir, demo=True).start()
    try:
        user, password = demo_login(first.output)
        assert user == "demo" and len(password) >= 12
        assert any("groupware is running" in line for line in first.output)
        client = Client(reactor_thread, first.socket_path, data_dir, user, password)
        try:
            folders = client.folders()
            assert sorted(folders) == sorted(DEFAULT_FOLDERS)
            assert folders["Inbox"].role == "inbox" and folders["Calendar"].container_class == "calendar"
            assert folders["Tasks"].container_class == "tasks"
            assert folders["Contacts"].container_class == "contacts"
            reactor_thread.call(lambda: client.session.store().inbox().addCallback(lambda f: f.append(NOTE)))
        finally:
            client.close()
        stop_cleanly(first)
    finally:
        first.stop()
    # SQLite file and blob directory where the README says.
    assert os.path.isfile(os.path.join(data_dir, "store.db"))
    blobs = [f for _, _, files in os.walk(os.path.join(data_dir, "attachments")) for f in files]
    assert blobs, "the message body was not written under attachments/"
    # The socket does not outlive the server.
    assert not os.path.exists(first.socket_path)

    second = ServerProcess(data_dir, demo=True).start()
    try:
        assert demo_login(second.output) == (user, password)
        client = Client(reactor_thread, second.socket_path, data_dir, user, password)
        try:
            assert client.inbox_sources() == [NOTE]
            assert sorted(client.folders()) == sorted(DEFAULT_FOLDERS)  # not created a second time
        finally:
            client.close()
        stop_cleanly(second)
    finally:
        second.stop()


def test_socket_goes_where_asked_and_two_instances_run_side_by_side(reactor_thread, tmp_path):
    sockets = tmp_path / "sockets"
    a = ServerProcess(str(tmp_path / "a"), {"server_socket": str(sockets / "a.sock")}, demo=True)
    b = ServerProcess(str(tmp_path / "b"), {"server_socket": str(sockets / "b.sock")}, demo=True)
    try:
        a.start()
        b.start()
        assert a.proc.poll() is None and b.proc.poll() is None
        assert sorted(os.listdir(sockets)) == ["a.sock", "b.sock"]
        # Only where asked: not also in the data dirs.
        assert not os.path.exists(os.path.join(a.data_dir, "server.sock"))
        assert not os.path.exists(os.path.join(b.data_dir, "server.sock"))
        login_a, login_b = demo_login(a.output), demo_login(b.output)
        assert login_a[1] != login_b[1]  # two separate stores, two separate demo users
        ca = Client(reactor_thread, a.socket_path, a.data_dir, *login_a)
        cb = Client(reactor_thread, b.socket_path, b.data_dir, *login_b)
        try:
            reactor_thread.call(lambda: ca.session.store().inbox().addCallback(lambda f: f.append(NOTE)))
            assert ca.inbox_sources() == [NOTE]
            assert cb.inbox_sources() == []
            # Each password only opens its own instance.
            with pytest.raises(AuthFailed):
                reactor_thread.call(cb.adapter.logon, "demo", login_a[1], "imap", "127.0.0.1")
        finally:
            ca.close()
            cb.close()
        stop_cleanly(a)
        assert b.proc.poll() is None  # stopping one leaves the other running
        stop_cleanly(b)
    finally:
        a.stop()
        b.stop()


def test_make_run_command_starts_the_demo(tmp_path):
    """The command `make run` executes, with only the data dir changed (and its ports made
    free ones), really runs: every listener on loopback, nothing but the banner at the
    default log level, and the demo login its last line."""
    data_dir = str(tmp_path / "var")
    # Under `make test` the outer make's variables would make this one chatty.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    dry = subprocess.run(["make", "--no-print-directory", "-n", "run", f"DATA_DIR={data_dir}"], cwd=ROOT,
                         capture_output=True, text=True, check=True, env=env)
    command = [line for line in dry.stdout.splitlines() if " serve " in line][-1]
    argv = shlex.split(command)
    assert argv[0].endswith("groupware") and argv[1:3] == ["serve", "--demo"], command
    assert argv[argv.index("--data-dir") + 1] == data_dir
    # Every TCP listener whose default is all interfaces is moved to loopback.
    sets = dict(argv[i + 1].split("=", 1) for i, arg in enumerate(argv) if arg == "--set")
    assert sorted(sets) == ["ical_listen", "imap_listen", "managesieve_listen", "pop3_listen"], sets
    assert all(value.startswith("127.0.0.1:") for value in sets.values()), sets
    free = [arg for name in sets for arg in ("--set", f"{name}=127.0.0.1:0")]
    with open(os.path.join(str(tmp_path), "stderr"), "w") as err:
        proc = subprocess.Popen(argv + free, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        lines = []
        deadline = time.monotonic() + scaled(READY_TIMEOUT)
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Demo login:"):
                break
        assert any("groupware is running" in line for line in lines), lines
        user, password = demo_login(lines)
        assert user == "demo" and DEMO_LINE.match(lines[-1].rstrip("\n"))
        listening = [line.split(" listening on ")[1].strip() for line in lines if " listening on " in line]
        assert all(where.startswith(("127.0.0.1:", "/")) for where in listening), lines
        assert len(listening) >= 5, lines
        # Quiet start at the default log level: no INFO lines, no warnings.
        with open(os.path.join(str(tmp_path), "stderr")) as fp:
            assert fp.read() == ""
        # The default socket is the data dir's server.sock, as the README says.
        assert os.path.exists(os.path.join(data_dir, "server.sock"))
        # By default one store and one gateway process per core (one process on one core).
        cores = len(os.sched_getaffinity(0))
        roles = [child.cmdline()[-1] for child in psutil.Process(proc.pid).children()
                 if "--worker" in child.cmdline()]
        expected = [] if cores == 1 else ["gateways"] * cores + ["store"] * cores
        assert sorted(roles) == expected, roles
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()


def _recipe(makefile: str, target: str) -> list[str]:
    lines = makefile.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"^{target}\s*:", line))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_readme_makefile_and_ci_agree():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fp:
        readme = fp.read()
    with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as fp:
        makefile = fp.read()
    ci_path = os.path.join(ROOT, ".ci", "run")
    with open(ci_path, encoding="utf-8") as fp:
        ci = fp.read()

    # The README opens with the two commands, in its first code block.
    first_block = re.search(r"```\w*\n(.*?)```", readme, re.S)
    assert first_block and readme.index(first_block.group(0)) < readme.index("\n## ")
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines() if line.strip()]
    assert commands == ["make run", "make test"]

    run, test = _recipe(makefile, "run"), _recipe(makefile, "test")
    assert len(run) == 1 and re.search(r"\bgroupware serve --demo\b", run[0]), run
    assert "--data-dir $(DATA_DIR)" in run[0] and re.search(r"^DATA_DIR \?= var$", makefile, re.M)
    assert len(test) == 1 and re.search(r"-m pytest\b", test[0]), test
    # What `make run` prints is what the README promises.
    assert "Demo login: user demo, password" in readme
    assert "./var" in readme

    assert os.access(ci_path, os.X_OK)
    assert ci.startswith("#!")
    ci_commands = [line.strip() for line in ci.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert ci_commands[-1] == "exec make test", ci_commands


def test_groupware_server_runs_the_store_alone_like_python_m_server(tmp_path):
    store = StoreProcess(tmp_path / "var", command="groupware server").start()
    try:
        assert store.tcp_port and os.path.exists(store.socket_path)
        http = store.connect("tcp")
        answer = http.request("GET", "/soap?wsdl")
        http.close()
        assert answer.status == 200 and b"definitions" in answer.body
        store.proc.send_signal(signal.SIGTERM)
        assert store.proc.wait(scaled(30)) == 0
        assert not os.path.exists(store.socket_path)
    finally:
        store.stop()
