"""One lock per machine for setup steps that must not run twice at once: parallel test
processes (pytest-xdist workers, other checkouts) each call them, and apt/dpkg or the
account tools fail rather than wait when another process holds their own lock."""
from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def machine_lock(name: str) -> Iterator[None]:
    """Held by one process of this machine at a time; the others block until it is released."""
    path = os.path.join(tempfile.gettempdir(), f"groupware-tests-{name}.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
