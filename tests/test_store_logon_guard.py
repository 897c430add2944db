"""The store server's own logon: its brute-force guard (per client address and per user,
one logon checked at a time, delays, bans kept in the database across a restart), and
whose word it takes for the client's address (gateways only), over its UNIX socket and TCP."""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from adapter_client import adapter_on
from harness import USERS, StoreProcess, log_times
from shared import codec
from shared.errors import BANNED, AuthFailed
from soap_client import RawHTTP, SoapClient, post_as, schema

XSD = schema()
SECRET = "gateway-secret-for-tests"
DELAY, MAX_DELAY, THRESHOLD = 0.5, 1.0, 3


@pytest.fixture(scope="module")
def store(open_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("logon-guard")
    secret = data / "gateway.secret"
    secret.write_text(SECRET + "\n")
    options = {"server_socket": os.path.join(open_dir, "server.sock"), "server_pipe_mode": "0666",
               "gateway_secret_file": str(secret), "auth_exempt_loopback": "no",
               "auth_failure_delay": str(DELAY), "auth_max_delay": str(MAX_DELAY),
               "auth_ban_threshold": str(THRESHOLD), "auth_ban_time": "600", "auth_max_waiting": "4"}
    with StoreProcess(data, options) as proc:
        yield proc


def tcp_client(store: StoreProcess, source: str) -> SoapClient:
    return SoapClient(RawHTTP(("tcp", ("127.0.0.1", store.tcp_port)), source=source), XSD)


def logon(client: SoapClient, user: str, password: str, *fields: tuple[str, str]) -> str:
    """"ok", "failed" or "banned", and the session id kept in the client."""
    try:
        answer = client.call("logon", ("user", user), ("password", password), ("protocol", "imap"), *fields)
    except AuthFailed as err:
        return "banned" if err.reason == BANNED else "failed"
    client.session_id = codec.field(answer, "sessionId")
    return "ok"


def log_lines(store: StoreProcess, text: str) -> list[str]:
    return [line for line in store.log().splitlines() if text in line]


def test_a_direct_caller_meets_delays_then_a_ban_that_survives_a_restart(store):
    here = "127.0.0.5"
    took = []
    for n in range(THRESHOLD):
        client = tcp_client(store, here)
        started = time.monotonic()
        assert logon(client, "alice", f"guess{n}") == "failed"
        took.append(time.monotonic() - started)
        client.http.close()
    # The first attempt is checked at once, each further one after the delay owed.
    assert took[0] < DELAY and took[1] >= DELAY * 0.9 and took[2] >= MAX_DELAY * 0.9
    # Banned: the right password is refused without being checked, over TCP and after a restart.
    assert logon(tcp_client(store, here), "alice", USERS["alice"]) == "banned"
    assert len(log_lines(store, "imap login failed: user=alice rip=127.0.0.5")) == THRESHOLD
    store.stop()
    store.start()
    assert logon(tcp_client(store, here), "alice", USERS["alice"]) == "banned"
    assert logon(tcp_client(store, "127.0.0.6"), "alice", USERS["alice"]) == "ok"


def test_concurrent_logons_from_one_address_are_checked_one_at_a_time(store):
    """A burst from one address: one checked at a time, each after the delay its
    predecessors earned; auth_max_waiting (4) wait, the rest are refused unchecked."""
    def attempt(n: int) -> str:
        client = tcp_client(store, "127.0.0.8")
        try:
            return logon(client, f"user{n}", "guess")
        finally:
            client.http.close()
    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(attempt, range(12)))
    assert results.count("failed") == THRESHOLD  # then the address was banned
    assert results.count("banned") == 12 - THRESHOLD
    checked = log_times("\n".join(log_lines(store, "login failed")), "rip=127.0.0.8")
    assert len(checked) == THRESHOLD
    owed = [0.0] + [min(DELAY * 2 ** n, MAX_DELAY) for n in range(THRESHOLD - 1)]
    for n in range(1, THRESHOLD):
        assert checked[n] - checked[n - 1] >= owed[n] - 0.01, checked


def test_concurrent_logons_of_one_user_count_towards_its_delay(store):
    """Logons for one user name from many addresses at once: the first is checked at once,
    every other one only after a delay, as if those in flight had failed; none is refused."""
    def attempt(n: int) -> str:
        client = tcp_client(store, f"127.0.1.{n + 1}")
        try:
            return logon(client, "bob", f"guess{n}")
        finally:
            client.http.close()
    started = time.time()  # the clock of the store's log
    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(attempt, range(12)))
    assert results == ["failed"] * 12
    checked = log_times(store.log(), "login failed: user=bob")
    assert len(checked) == 12
    assert all(at - started >= DELAY - 0.01 for at in checked[1:]), (started, checked)


def test_only_a_gateway_names_the_client_address(store):
    plain = tcp_client(store, "127.0.0.7")
    assert logon(plain, "alice", USERS["alice"], ("clientAddress", "203.0.113.50")) == "ok"
    assert log_lines(store, "clientAddress 203.0.113.50 from 127.0.0.7:")
    assert log_lines(store, "user 'alice' logged on (imap) from 127.0.0.7:")
    assert not log_lines(store, "from 203.0.113.50 via")
    # With the gateway secret over TCP the address is believed.
    gateway = tcp_client(store, "127.0.0.7")
    assert logon(gateway, "alice", USERS["alice"], ("clientAddress", "203.0.113.51"),
                 ("gatewaySecret", SECRET)) == "ok"
    assert log_lines(store, "user 'alice' logged on (imap) from 203.0.113.51 via 127.0.0.7:")
    wrong = tcp_client(store, "127.0.0.7")
    assert logon(wrong, "alice", USERS["alice"], ("clientAddress", "203.0.113.52"),
                 ("gatewaySecret", SECRET + "x")) == "ok"
    assert not log_lines(store, "from 203.0.113.52 via")
    # On the UNIX socket the peer uid decides: this test runs as root (a gateway), nobody is not.
    local = SoapClient(store.connect("unix"), XSD)
    assert logon(local, "alice", USERS["alice"], ("clientAddress", "203.0.113.53")) == "ok"
    assert log_lines(store, "user 'alice' logged on (imap) from 203.0.113.53 via local")
    _, request = codec.request("logon", [("user", "alice"), ("password", USERS["alice"]),
                                         ("protocol", "imap"), ("clientAddress", "203.0.113.54")])
    assert codec.field(codec.response_body(post_as("nobody", store.socket_path, request), "logon"), "sessionId")
    assert log_lines(store, "clientAddress 203.0.113.54 from uid 65534 ignored")
    assert not log_lines(store, "from 203.0.113.54 via")
    # A gateway's failures are its client's: they count against that address, not the gateway's.
    for n in range(THRESHOLD):
        assert logon(SoapClient(store.connect("unix"), XSD), "carol", "guess",
                     ("clientAddress", "198.51.100.20")) == "failed"
    assert logon(SoapClient(store.connect("unix"), XSD), "alice", USERS["alice"],
                 ("clientAddress", "198.51.100.20")) == "banned"
    assert logon(SoapClient(store.connect("unix"), XSD), "alice", USERS["alice"],
                 ("clientAddress", "198.51.100.21")) == "ok"
    # ... and the gateway logged them for fail2ban itself: the store adds no such line.
    assert not log_lines(store, "login failed: user=carol")


def test_a_gateway_on_another_host_presents_the_secret_over_tcp(store, reactor_thread, tmp_path):
    """The adapter of a gateway reaching the store over TCP sends gateway_secret_file's
    content with its logons, and the store takes its client's address."""
    secret = tmp_path / "gateway.secret"
    secret.write_text(SECRET)
    endpoint = f"tcp:127.0.0.1:{store.tcp_port}"
    for options, named in (({"gateway_secret_file": str(secret)}, True), ({}, False)):
        adapter = adapter_on(reactor_thread, endpoint, str(tmp_path), **options)
        try:
            address = "203.0.113.60" if named else "203.0.113.61"
            session = reactor_thread.call(adapter.logon, "bob", USERS["bob"], "imap", address)
            reactor_thread.call(session.logoff)
        finally:
            reactor_thread.call(adapter.close)
        assert bool(log_lines(store, f"user 'bob' logged on (imap) from {address} via 127.0.0.1:")) is named
    assert log_lines(store, "clientAddress 203.0.113.61 from 127.0.0.1:")


def test_bans_kept_in_memory_are_forgotten_at_a_restart(tmp_path):
    options = {"auth_exempt_loopback": "no", "auth_failure_delay": "0", "auth_ban_threshold": "1",
               "auth_ban_time": "600", "logon_bans": "memory"}
    with StoreProcess(tmp_path / "memory-bans", options) as proc:
        assert logon(tcp_client(proc, "127.0.0.9"), "alice", "guess") == "failed"
        assert logon(tcp_client(proc, "127.0.0.9"), "alice", USERS["alice"]) == "banned"
        proc.stop()
        proc.start()
        assert logon(tcp_client(proc, "127.0.0.9"), "alice", USERS["alice"]) == "ok"
