"""The brute-force guard across processes: with `redis_url`, two IMAP gateway processes
count one address's failures together (delays and the ban), and a ban made through one
holds at the other; without Redis each process counts its own. Two store instances on one
database count the failures of their own logon together the same way."""
from __future__ import annotations

import contextlib
import secrets
import subprocess
import time
from collections.abc import Iterator

import pytest

from harness import USERS, ServerProcess, StoreProcess, throwaway_mariadb_database
from raw_clients import RawIMAP
from shared.errors import BANNED, AuthFailed
from soap_client import RawHTTP, SoapClient
from store_cluster import cluster_options
from waiting import scaled

REDIS = ("127.0.0.1", "6379")
THRESHOLD = 4


def redis_cli(*args: str) -> str:
    return subprocess.run(["redis-cli", "-h", REDIS[0], "-p", REDIS[1], *args], check=True,
                          capture_output=True, text=True, timeout=scaled(30)).stdout


@contextlib.contextmanager
def key_prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"gwtest-{secrets.token_hex(4)}:"
    try:
        yield prefix
    finally:
        keys = redis_cli("--scan", "--pattern", prefix + "*").split()
        if keys:
            redis_cli("DEL", *keys)


@contextlib.contextmanager
def two_gateways(tmp_path, options: dict[str, str]) -> Iterator[list[int]]:
    with StoreProcess(tmp_path / "store") as store, contextlib.ExitStack() as stack:
        ports = []
        for name in ("a", "b"):
            gateway = ServerProcess(str(tmp_path / f"imap-{name}"), {
                "server_socket": store.socket_path, "log_file": "-",
                # The clients are on loopback: count them like strangers.
                "auth_exempt_loopback": "no", "auth_ban_threshold": str(THRESHOLD), "auth_ban_time": "600",
                "auth_failure_delay": "1", "auth_max_delay": "2", **options}, command="imap")
            ports.append(stack.enter_context(gateway).port("imap"))
        yield ports


def login(port: int, password: str) -> tuple[list[bytes], float]:
    """The answer to one LOGIN of alice on a new connection, and how long it took."""
    raw = RawIMAP(port)
    raw.sock.settimeout(scaled(30))
    started = time.monotonic()
    try:
        return raw.cmd(f"LOGIN alice {password}"), time.monotonic() - started
    finally:
        raw.close()


def fail(port: int) -> float:
    answer, took = login(port, "wrong-password")
    assert answer[-1].startswith(b"r1 NO [AUTHENTICATIONFAILED]"), answer
    return took


@pytest.mark.parametrize("shared", [True, False], ids=["redis", "per-process"])
def test_two_gateway_processes_share_failure_counts_and_bans(tmp_path, shared):
    with contextlib.ExitStack() as stack:
        options = {}
        if shared:
            prefix = stack.enter_context(key_prefix())
            options = {"redis_url": f"redis://{REDIS[0]}:{REDIS[1]}/0", "redis_key_prefix": prefix}
        a, b = stack.enter_context(two_gateways(tmp_path, options))
        fail(a)
        # With Redis, gateway b holds the next attempt back for the failure made at a.
        took = fail(b)
        if shared:
            assert took >= 1, took
        fail(a)
        fail(b)
        # Four failures from this address in all: banned at both gateways with Redis,
        # even for the right password; without it each gateway has seen two.
        for port in (a, b):
            answer, _ = login(port, USERS["alice"])
            if shared:
                assert answer[0].startswith(b"* BYE Too many failed logins"), answer
                assert answer[-1].startswith(b"r1 NO"), answer
            else:
                assert answer[-1].startswith(b"r1 OK"), answer
        if shared:
            keys = set(redis_cli("--scan", "--pattern", prefix + "*").split())
            assert f"{prefix}guard:gateway:ban:127.0.0.1" in keys, keys
            assert f"{prefix}guard:gateway:ip:127.0.0.1" in keys, keys
            ttl = int(redis_cli("TTL", f"{prefix}guard:gateway:ban:127.0.0.1"))
            assert 590 <= ttl <= 600


def soap_logon(store: StoreProcess, source: str, password: str) -> str:
    """"ok", "failed" or "banned": a logon of alice over TCP from the loopback address `source`."""
    client = SoapClient(RawHTTP(("tcp", ("127.0.0.1", store.tcp_port)), source=source))
    try:
        client.call("logon", ("user", "alice"), ("password", password), ("protocol", "imap"))
    except AuthFailed as err:
        return "banned" if err.reason == BANNED else "failed"
    finally:
        client.http.close()
    return "ok"


def test_two_store_instances_share_the_failures_of_their_logon(tmp_path):
    with key_prefix() as prefix, throwaway_mariadb_database() as name, contextlib.ExitStack() as stack:
        # Bans in memory only: what the instances share here is Redis alone.
        options = {**cluster_options(tmp_path, name), "redis_url": f"redis://{REDIS[0]}:{REDIS[1]}/0",
                   "redis_key_prefix": prefix, "logon_bans": "memory", "auth_exempt_loopback": "no",
                   "auth_ban_threshold": str(THRESHOLD), "auth_ban_time": "600",
                   "auth_failure_delay": "0.1", "auth_max_delay": "0.2"}
        stores = [stack.enter_context(StoreProcess(tmp_path / f"store{i}", dict(options))) for i in range(2)]
        for n in range(THRESHOLD):
            assert soap_logon(stores[n % 2], "127.0.0.9", f"guess{n}") == "failed"
        for store in stores:
            assert soap_logon(store, "127.0.0.9", USERS["alice"]) == "banned"
            assert soap_logon(store, "127.0.0.10", USERS["alice"]) == "ok"
        assert int(redis_cli("TTL", f"{prefix}guard:store:ban:127.0.0.9")) > 590
