"""Push across store instances: an IDLE client on a gateway of one store server hears
of mail appended through another store server on the same database, by UNIX
datagrams between the processes of one host or by Redis pub/sub (`redis_url`)."""
from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator

import pytest

from harness import USERS, ServerProcess, StoreProcess, mysql_options, throwaway_mariadb_database
from raw_clients import RawIMAP
from waiting import scaled

REDIS_URL = "redis://127.0.0.1:6379/0"
MESSAGES = 30
MESSAGE = b"From: a@example.org\r\nSubject: across %d\r\n\r\nbody\r\n"


@contextlib.contextmanager
def database(engine: str, tmp_path) -> Iterator[dict[str, str]]:
    if engine == "sqlite":
        yield {"database_path": str(tmp_path / "shared.db"), "attachment_path": str(tmp_path / "blobs")}
        return
    with throwaway_mariadb_database() as name:
        yield {**mysql_options(name), "attachment_storage": "database"}


@pytest.fixture(params=[("sqlite", "datagrams"), ("mariadb", "redis")], ids=lambda p: "-".join(p))
def two_instances(request, tmp_path):
    engine, relay = request.param
    with database(engine, tmp_path) as options, contextlib.ExitStack() as stack:
        if relay == "redis":
            # A channel of this test's own: other tests and servers on this Redis stay apart.
            options = {**options, "redis_url": REDIS_URL,
                       "redis_channel_prefix": f"gwtest-{secrets.token_hex(4)}:"}
        gateways = []
        for name in ("a", "b"):
            store = stack.enter_context(StoreProcess(tmp_path / name, dict(options)))
            gateway = ServerProcess(str(tmp_path / f"{name}-imap"),
                                    {"server_socket": store.socket_path, "log_file": "-"}, command="imap")
            stack.enter_context(gateway)
            gateways.append(gateway.port("imap"))
        yield gateways


def login(port: int) -> RawIMAP:
    raw = RawIMAP(port)
    assert raw.cmd(f"LOGIN alice {USERS['alice']}")[-1].startswith(b"r1 OK")
    return raw


def test_idle_on_one_instance_hears_appends_through_the_other(two_instances):
    port_a, port_b = two_instances
    idler, writer = login(port_a), login(port_b)
    assert writer.cmd('CREATE "Across"')[-1].startswith(b"r2 OK")
    assert idler.cmd('SELECT "Across"')[-1].startswith(b"r2 OK")
    idler.send(b"i IDLE\r\n")
    assert idler.readline().startswith(b"+ ")
    delays = []
    for n in range(1, MESSAGES + 1):
        message = MESSAGE % n
        answer = writer.cmd(b'APPEND "Across" {%d+}\r\n%s' % (len(message), message))
        assert answer[-1].startswith(b"r%d OK" % writer.n), answer
        committed = time.monotonic()
        line = idler.readline()
        while line.endswith(b" RECENT\r\n"):  # the previous push's \Recent count
            line = idler.readline()
        assert line == b"* %d EXISTS\r\n" % n
        delays.append(time.monotonic() - committed)
    idler.send(b"DONE\r\n")
    tail = idler.until(b"i")
    assert tail[-1] == b"i OK IDLE completed\r\n", tail
    delays.sort()
    p99 = delays[max(0, int(len(delays) * 0.99) - 1)]
    print(f"push across instances: p50 {delays[len(delays) // 2] * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
    assert p99 < scaled(0.1), f"push across instances took {p99 * 1000:.0f} ms at p99: {delays}"
    writer.cmd("LOGOUT")
    idler.cmd("LOGOUT")
