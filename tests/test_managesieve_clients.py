"""Debian's `sieve-connect` against the ManageSieve gateway of `groupware serve`: STARTTLS,
then uploading, listing, activating, downloading and deleting a script."""
from __future__ import annotations

import os
import subprocess

import pytest

from certificates import self_signed_certificate
from debian import command, ensure_packages
from harness import ServerProcess

PASSWORD = "connect-secret"
SCRIPT = 'require ["fileinto"];\r\nif header :contains "subject" "[list]" {\r\n  fileinto "Lists";\r\n}\r\n'


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    ensure_packages({"sieve-connect": command("sieve-connect")})
    directory = tmp_path_factory.mktemp("sieveconnect")
    cert, key = self_signed_certificate(directory)
    options = {"ssl_certificate_file": cert, "ssl_private_key_file": key}
    with ServerProcess(os.path.join(str(directory), "var"), options) as proc:
        proc.cli("user", "add", "carol", "--password-stdin", stdin=PASSWORD + "\n")
        yield proc


def sieve_connect(server: ServerProcess, *args: str) -> subprocess.CompletedProcess:
    read, write = os.pipe()
    os.write(write, PASSWORD.encode() + b"\n")
    os.close(write)
    try:
        return subprocess.run(
            ["sieve-connect", "--server", "127.0.0.1", "--port", str(server.port("managesieve")),
             "--user", "carol", "--passwordfd", str(read), "--notlsverify", *args],
            pass_fds=(read,), capture_output=True, text=True, timeout=60)
    finally:
        os.close(read)


def test_upload_list_activate_download_delete(server, tmp_path):
    local = tmp_path / "lists.sieve"
    local.write_text(SCRIPT, newline="")
    done = sieve_connect(server, "--upload", "--localsieve", str(local), "--remotesieve", "lists")
    assert done.returncode == 0, done.stderr
    done = sieve_connect(server, "--activate", "--remotesieve", "lists")
    assert done.returncode == 0, done.stderr
    done = sieve_connect(server, "--list")
    assert done.returncode == 0, done.stderr
    assert "lists" in done.stdout and "ACTIVE" in done.stdout.upper()
    fetched = tmp_path / "fetched.sieve"
    done = sieve_connect(server, "--download", "--remotesieve", "lists", "--localsieve", str(fetched))
    assert done.returncode == 0, done.stderr
    assert fetched.read_bytes() == SCRIPT.encode()
    done = sieve_connect(server, "--deactivate")
    assert done.returncode == 0, done.stderr
    done = sieve_connect(server, "--delete", "--remotesieve", "lists")
    assert done.returncode == 0, done.stderr
    assert "lists" not in sieve_connect(server, "--list").stdout


def test_a_broken_script_is_refused_with_its_line(server, tmp_path):
    local = tmp_path / "broken.sieve"
    local.write_text("keep;\r\nif true {\r\n", newline="")
    done = sieve_connect(server, "--upload", "--localsieve", str(local), "--remotesieve", "broken")
    assert done.returncode != 0
    assert "line" in (done.stdout + done.stderr)
    assert "broken" not in sieve_connect(server, "--list").stdout
