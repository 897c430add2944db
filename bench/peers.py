"""Our gateway and a private Dovecot side by side, with the same user and password hash.

Both get the benchmark user with the very same argon2id hash (so a LOGIN costs both
the same), each on a free loopback port, in one temporary directory removed afterwards.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from dovecot import PrivateDovecot  # noqa: E402
from harness import ServerProcess, free_port, wait_for_port  # noqa: E402
from store import USER, create_bench_user  # noqa: E402


@dataclass
class SideBySide:
    server: ServerProcess  # ours: `groupware serve` with only the gateway measured listening
    data_dir: str
    options: dict[str, str]
    port: int  # our gateway's port
    dovecot: PrivateDovecot  # configured, its folders still to be filled and started


@contextlib.contextmanager
def ours_beside_dovecot(protocol: str, dovecot_tuning: str = "",
                        our_tuning: dict[str, str] | None = None) -> Iterator[SideBySide]:
    """Our server started with its `protocol` gateway (and the options `our_tuning`), and a
    Dovecot for the same protocol."""
    PrivateDovecot.install(protocol)
    with tempfile.TemporaryDirectory(prefix=f"gw-bench-{protocol}-") as base:
        data_dir = os.path.join(base, "groupware")
        port = free_port()
        options = {f"{protocol}_listen": f"127.0.0.1:{port}", "log_level": "warning", **(our_tuning or {})}
        password_hash = create_bench_user(options, data_dir)
        dovecot = PrivateDovecot(os.path.join(base, "dovecot"), protocol, USER,
                                 "{ARGON2ID}" + password_hash, dovecot_tuning)
        server = ServerProcess(data_dir, options).start()
        try:
            wait_for_port(port)
            yield SideBySide(server, data_dir, options, port, dovecot)
        finally:
            dovecot.stop()
            server.stop()
