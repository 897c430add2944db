"""A store that answers one user slowly: the gateways keep serving the others.

The IMAP gateway (`groupware imap`) reaches the store server through a TCP proxy that holds
back every request carrying a marker for a few seconds, as a store busy with one user's huge
search would. Alice runs such a search on as many IMAP connections as the gateway keeps to the
store; meanwhile Bob's SELECT, FETCH, APPEND and NOOP are answered at once, and Alice's
searches all finish with their answers.
"""
from __future__ import annotations

import imaplib
import threading

from harness import USERS, ServerProcess, StoreProcess
from outages import LatencyProxy, elapsed
from waiting import scaled, wait_until

MARKER = b"slow-marker-7f3a"
DELAY = 6.0
CONNECTIONS = 4   # server_connections of the gateway under test
ALICE_SEARCHES = CONNECTIONS  # as many as the gateway has connections to the store


def imap(port: int, user: str) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", port, timeout=scaled(120))
    client.login(user, USERS[user])
    assert client.select("INBOX")[0] == "OK"
    return client


def test_one_users_slow_calls_do_not_hold_up_another(tmp_path):
    with StoreProcess(tmp_path / "store", {"log_level": "warning"}) as store, \
            LatencyProxy(("127.0.0.1", store.tcp_port), lambda chunk: DELAY if MARKER in chunk else 0.0) as proxy:
        gateway = ServerProcess(str(tmp_path / "gateway"), {
            "server_socket": proxy.address, "log_file": "-", "server_connections": str(CONNECTIONS),
            "server_connections_per_user": str(CONNECTIONS // 2)}, command="imap").start()
        try:
            port = gateway.port("imap")
            bob = imap(port, "bob")
            bob.append("INBOX", None, None, b"Subject: for bob\r\n\r\nhello bob\r\n")
            alices = [imap(port, "alice") for _ in range(ALICE_SEARCHES)]
            alices[0].append("INBOX", None, None, b"Subject: x\r\n\r\n" + MARKER + b"\r\n")
            for client in alices:
                client.noop()  # every connection has seen the message
            answers: list[tuple[str, list]] = []

            def search(client: imaplib.IMAP4) -> None:
                answers.append(client.search(None, "BODY", MARKER.decode()))
            threads = [threading.Thread(target=search, args=(client,), daemon=True) for client in alices]
            for thread in threads:
                thread.start()
            # Alice's searches are at the store (held back by the proxy) ...
            wait_until(lambda: proxy.delayed >= CONNECTIONS // 2, timeout=30,
                       message="the searches never reached the store")
            # ... and Bob is served meanwhile.
            for name, command in (("SELECT", lambda: bob.select("INBOX")),
                                  ("FETCH", lambda: bob.fetch("1", "(BODY.PEEK[] FLAGS)")),
                                  ("APPEND", lambda: bob.append("INBOX", None, None, b"Subject: more\r\n\r\nmore\r\n")),
                                  ("NOOP", lambda: bob.noop())):
                (typ, data), seconds = elapsed(command)
                assert typ == "OK", (name, data)
                assert seconds < scaled(DELAY / 2), f"bob's {name} waited {seconds:.1f} s behind alice's searches"
            for thread in threads:
                thread.join(scaled(120))
            assert len(answers) == ALICE_SEARCHES
            assert all(typ == "OK" and data == [b"1"] for typ, data in answers), answers
            for client in [bob, *alices]:
                client.logout()
        finally:
            gateway.stop()
