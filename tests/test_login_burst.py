"""The brute-force guard under concurrency, over real IMAP connections to `groupware serve`:
a burst of logins from one address is checked one at a time (or refused), never in
parallel before any delay applies, and a successful login does not wipe the failures its
address made for other names."""
from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import ServerProcess, log_times
from raw_clients import RawIMAP
from waiting import scaled

BURST = 100
DELAY, MAX_DELAY, THRESHOLD = 0.5, 1.0, 4


@pytest.fixture(scope="module")
def imap(tmp_path_factory):
    data = tmp_path_factory.mktemp("burst")
    server = ServerProcess(str(data / "var"), {
        "auth_exempt_loopback": "no", "auth_failure_delay": str(DELAY), "auth_max_delay": str(MAX_DELAY),
        "auth_ban_threshold": str(THRESHOLD), "auth_ban_time": "600", "auth_max_waiting": "8"}, demo=True)
    with server:
        yield server, server.port("imap"), server.demo_password()


def connect(port: int, source: str) -> RawIMAP:
    sock = socket.create_connection(("127.0.0.1", port), timeout=scaled(60), source_address=(source, 0))
    return RawIMAP(port, sock=sock)


def answer(client: RawIMAP, tag: bytes) -> tuple[bytes, float]:
    """The answer up to the tagged line (b"" if the server hung up first) and when it came."""
    try:
        lines = client.until(tag)
        return b"".join(lines), time.monotonic()
    except (ConnectionError, OSError):
        return b"", time.monotonic()
    finally:
        client.close()


def store_checks(server: ServerProcess, address: str) -> int:
    """Logons the store checked (and refused) for a gateway's client at `address`."""
    with open(server.options["log_file"], encoding="utf-8") as fp:
        return sum(1 for line in fp if "authentication failed for user" in line and f"from {address} via" in line)


def test_a_burst_from_one_address_is_checked_one_at_a_time(imap):
    server, port, _ = imap
    clients = [connect(port, "127.0.0.2") for _ in range(BURST)]
    assert all(c.greeting.startswith(b"* OK") for c in clients)
    for i, client in enumerate(clients):
        client.send(b"b%d LOGIN demo guess%d\r\n" % (i, i))
    with ThreadPoolExecutor(BURST) as pool:
        answers = list(pool.map(lambda ic: answer(ic[1], b"b%d" % ic[0]), enumerate(clients)))
    failed = [text for text, _ in answers if b"[AUTHENTICATIONFAILED]" in text and b"* BYE" not in text]
    # The store saw as many password checks as it takes to ban the address, no more,
    # and each came after the delay its predecessors earned (by the gateway's clock).
    assert store_checks(server, "127.0.0.2") == THRESHOLD
    assert len(failed) == THRESHOLD
    with open(server.options["log_file"], encoding="utf-8") as fp:
        times = log_times(fp.read(), "imap login failed: user=demo rip=127.0.0.2")
    owed = [0.0] + [min(DELAY * 2 ** n, MAX_DELAY) for n in range(THRESHOLD - 1)]
    for n in range(1, THRESHOLD):
        assert times[n] - times[n - 1] >= owed[n] - 0.01, (n, times)
    # The rest were refused without a check: waiting too many at once, or banned.
    assert sum(1 for text, _ in answers if b"* BYE Too many failed logins" in text) == BURST - THRESHOLD
    with open(server.options["log_file"], encoding="utf-8") as fp:
        log = fp.read()
    assert log.count("imap login failed: user=demo rip=127.0.0.2") == THRESHOLD
    assert "imap login refused, too many attempts at once: user=demo rip=127.0.0.2" in log
    # The ban holds for the right password too, and for the store itself.
    refused = connect(port, "127.0.0.2")
    refused.send(b"c LOGIN demo %s\r\n" % imap[2].encode())
    text, _ = answer(refused, b"c")
    assert b"* BYE" in text and b"c OK" not in text


def test_the_ban_survives_a_restart_in_the_store_database(imap):
    """Run after the burst: the gateway forgets its bans when it stops, the store's database not."""
    server, _, password = imap
    server.stop()
    server.start()
    port = server.port("imap")
    text, _ = login(port, "127.0.0.2", "demo", password)
    assert b"* BYE Too many failed logins" in text and b"a OK" not in text
    with open(server.options["log_file"], encoding="utf-8") as fp:
        assert "imap login refused, address banned at the store: user=demo rip=127.0.0.2" in fp.read()
    assert b"a OK" in login(port, "127.0.0.4", "demo", password)[0]


def login(port: int, source: str, user: str, password: str) -> tuple[bytes, float]:
    client = connect(port, source)
    started = time.monotonic()
    client.send(b"a LOGIN %s %s\r\n" % (user.encode(), password.encode()))
    line, at = answer(client, b"a")
    return line, at - started


def test_a_good_login_does_not_wipe_the_address_failures_for_other_names(imap):
    server, _, password = imap
    port = server.port("imap")
    here = "127.0.0.3"
    for name in ("alice", "bob"):
        assert b"AUTHENTICATIONFAILED" in login(port, here, name, "guess")[0]
    line, took = login(port, here, "demo", password)
    assert b"a OK" in line and took >= DELAY * 2 * 0.9  # its own delay was owed
    line, took = login(port, here, "carol", "guess")
    assert b"AUTHENTICATIONFAILED" in line and took >= MAX_DELAY * 0.9  # still slowed down
    line, _ = login(port, here, "dave", "guess")  # the fourth failure of the address
    assert b"AUTHENTICATIONFAILED" in line
    line, took = login(port, here, "demo", password)
    assert b"* BYE" in line and b"a OK" not in line and took < MAX_DELAY  # banned: the success did not reset the count
