"""The files an admin installs: the systemd units pass `systemd-analyze verify` and keep
a low exposure in `systemd-analyze security`, their command line and environment
really start the suite, and the logrotate snippet rotates a live server's log, which
the server then writes anew after its SIGHUP."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys

import pytest

from debian import ensure_packages
from harness import CONFIG_DIR, ServerProcess
from waiting import scaled, wait_until

UNITS = os.path.join(CONFIG_DIR, "systemd")
GROUPWARE = os.path.join(sys.prefix, "bin", "groupware")


@pytest.fixture(scope="module")
def systemd_analyze():
    """Debian's systemd package for systemd-analyze, installed when missing."""
    ensure_packages({"systemd": lambda: shutil.which("systemd-analyze") is not None})


needs_systemd_analyze = pytest.mark.usefixtures("systemd_analyze")


@pytest.fixture(scope="module")
def logrotate():
    """Debian's logrotate, installed when missing."""
    ensure_packages({"logrotate": lambda: shutil.which("logrotate") is not None})


def installed_units(directory) -> dict[str, str]:
    """The units as installed here: ExecStart naming this checkout's groupware."""
    paths = {}
    for name in sorted(os.listdir(UNITS)):
        with open(os.path.join(UNITS, name), encoding="utf-8") as fp:
            text = fp.read().replace("/usr/local/bin/groupware", GROUPWARE)
        if name == "groupware@.service":
            name = "groupware@imap.service"  # an instance, as systemctl enable makes it
        path = os.path.join(directory, name)
        with open(path, "w", encoding="utf-8") as fp:
            fp.write(text)
        paths[name] = path
    return paths


def unit_values(path: str, key: str) -> list[str]:
    with open(path, encoding="utf-8") as fp:
        return [line.split("=", 1)[1] for line in fp.read().splitlines() if line.startswith(key + "=")]


@needs_systemd_analyze
def test_units_verify_and_are_sandboxed(tmp_path):
    units = installed_units(tmp_path)
    assert sorted(units) == ["groupware-server.service", "groupware.service", "groupware@imap.service"]
    checked = subprocess.run(["systemd-analyze", "verify", *units.values()], capture_output=True, text=True)
    assert checked.returncode == 0 and checked.stderr == "", checked.stderr
    for name, path in units.items():
        for key in ("NoNewPrivileges", "ProtectSystem", "PrivateTmp", "ProtectHome", "ExecReload", "User"):
            assert unit_values(path, key), f"{name} lacks {key}"
        assert unit_values(path, "ExecReload") == ["/bin/kill -HUP $MAINPID"]
        security = subprocess.run(["systemd-analyze", "security", "--offline=yes", path],
                                  capture_output=True, text=True)
        level = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security.stdout)
        assert level and float(level.group(1)) <= 3.0, security.stdout[-500:]
        # Longer than shutdown_timeout's default, so the server ends itself first.
        assert int(unit_values(path, "TimeoutStopSec")[0]) > 20


def test_the_units_command_and_environment_start_the_suite(tmp_path):
    units = installed_units(tmp_path)
    environment = dict(item.split("=", 1) for value in unit_values(units["groupware.service"], "Environment")
                       for item in shlex.split(value))
    assert environment == {"GROUPWARE_CONFIG_DIR": "/etc/groupware", "GROUPWARE_DATA_DIR": "/var/lib/groupware"}
    # The same, with this test's directories for /etc/groupware and /var/lib/groupware.
    etc, state = tmp_path / "etc", tmp_path / "state"
    shutil.copytree(CONFIG_DIR, etc)
    with open(etc / "gateway.cfg", "a", encoding="utf-8") as fp:
        fp.write("imap_listen = 127.0.0.1:0\npop3_listen = 127.0.0.1:0\n")
    with open(etc / "ical.cfg", "a", encoding="utf-8") as fp:
        fp.write("ical_listen = 127.0.0.1:0\n")
    with open(etc / "managesieve.cfg", "a", encoding="utf-8") as fp:
        fp.write("managesieve_listen = 127.0.0.1:0\n")
    argv = shlex.split(unit_values(units["groupware.service"], "ExecStart")[0])
    proc = subprocess.Popen(argv, env={**os.environ, "GROUPWARE_CONFIG_DIR": str(etc), "GROUPWARE_DATA_DIR": str(state)},
                            cwd="/", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "groupware is running" in line:
                break
        assert any("groupware is running" in line for line in lines), lines
        assert os.path.exists(state / "server.sock") and os.path.exists(state / "store.db")
        proc.send_signal(signal.SIGHUP)  # ExecReload
        proc.send_signal(signal.SIGTERM)  # KillSignal
        assert proc.wait(scaled(60)) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        proc.stdout.close()


@pytest.mark.usefixtures("logrotate")
def test_logrotate_snippet_rotates_a_live_log(tmp_path):
    server = ServerProcess(str(tmp_path / "var"), {"log_level": "debug"}, demo=True)
    with server:
        log = os.path.join(server.data_dir, "server.log")
        with open(os.path.join(CONFIG_DIR, "logrotate.d", "groupware"), encoding="utf-8") as fp:
            snippet = fp.read()
        assert "systemctl reload 'groupware*.service'" in snippet
        # Here: this server's log, owned by whoever runs the test, and its pid for the reload.
        snippet = snippet.replace("/var/log/groupware/*.log", log).replace("groupware adm", "root root")
        snippet = snippet.replace("systemctl reload 'groupware*.service'", f"kill -HUP {server.pid()}")
        config = tmp_path / "logrotate.conf"
        config.write_text(snippet)
        rotated = subprocess.run(["logrotate", "-f", "-s", str(tmp_path / "state"), str(config)],
                                 capture_output=True, text=True)
        assert rotated.returncode == 0, rotated.stderr
        assert os.path.exists(log + ".1")
        wait_until(lambda: "configuration reloaded" in open(log, encoding="utf-8").read(),
                   message="the server did not write to the new log after the rotation")
        assert "configuration reloaded" not in open(log + ".1", encoding="utf-8").read()
        assert os.stat(log).st_mode & 0o777 == 0o640
