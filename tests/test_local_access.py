"""Other local users are kept out of the store: its UNIX socket, database file and blob
directory get their modes whatever umask the server was started with."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

from harness import StoreProcess
from waiting import scaled

CONNECT = "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); print('connected')"


@pytest.fixture
def open_parent():
    """A directory every local account may enter, so that only the modes below keep them out."""
    directory = tempfile.mkdtemp(prefix="gw-local-")
    os.chmod(directory, 0o755)
    yield directory
    shutil.rmtree(directory)


def connect_as_nobody(path: str) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
                           CONNECT, path], capture_output=True, text=True, timeout=scaled(60))


def test_store_files_under_a_permissive_umask(open_parent):
    previous = os.umask(0)  # the server inherits it, as from a careless service manager
    try:
        server = StoreProcess(os.path.join(open_parent, "var")).start()
    finally:
        os.umask(previous)
    try:
        sock = server.socket_path
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660  # server_pipe_mode
        refused = connect_as_nobody(sock)
        assert refused.returncode != 0 and "PermissionError" in refused.stderr, refused
        for name in ("store.db", "attachments"):
            mode = stat.S_IMODE(os.stat(os.path.join(server.data_dir, name)).st_mode)
            assert mode & 0o077 == 0, (name, oct(mode))
        assert server.connect().request("GET", "/soap?wsdl").status == 200  # its own user gets in
    finally:
        server.stop()
    # A mode that lets everybody in is the admin's choice, and is applied as given.
    server = StoreProcess(os.path.join(open_parent, "open"), {"server_pipe_mode": "0666"}).start()
    try:
        assert connect_as_nobody(server.socket_path).stdout.strip() == "connected"
    finally:
        server.stop()
