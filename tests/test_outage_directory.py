"""The directory (slapd, user_plugin = ldap) slow or gone while people log in.

A stopped slapd (SIGSTOP: connections are accepted by the kernel and never answered) makes
every login wait for `ldap_timeout`; a burst of such logins, more than the store has worker
threads, must neither answer anything but the temporary failure nor hold up the users who are
logged in already. A slapd killed in the middle of a login is the same temporary failure; once
it is back, logins work again without a restart.
"""
from __future__ import annotations

import imaplib
import os
import poplib
import signal
import threading
import time

import pytest
import requests

from harness import ServerProcess
from outages import elapsed
from slapd_harness import READER_DN, READER_PW, SUFFIX
from waiting import scaled

LDAP_TIMEOUT = 5
BURST = 18  # logins hanging at once, over three gateways: more than the store's 8 worker threads
USERS = ("alice", "carol", "dave", "star")


@pytest.fixture(scope="module")
def gateway(slapd, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("dirgw"))
    plugin_config = os.path.join(directory, "ldap-test.cfg")
    with open(plugin_config, "w") as fp:
        fp.write(f"ldap_uri = {slapd.uri}\nldap_bind_user = {READER_DN}\nldap_bind_passwd = {READER_PW}\n"
                 f"ldap_search_base = {SUFFIX}\nldap_network_timeout = 2\nldap_timeout = {LDAP_TIMEOUT}\n")
    with ServerProcess(os.path.join(directory, "var"), {"user_plugin": "ldap", "user_plugin_config": plugin_config,
                                                        "log_level": "warning"}) as server:
        yield server


def login(server: ServerProcess, user: str) -> tuple[str, imaplib.IMAP4 | None]:
    """'OK' and the logged-in client, or the refusal's text and None."""
    client = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=scaled(120))
    try:
        client.login(user, f"{user}-pw")
        return "OK", client
    except imaplib.IMAP4.error as exc:
        client.logout()
        return str(exc), None


def pop3_login(server: ServerProcess, user: str) -> str:
    client = poplib.POP3("127.0.0.1", server.port("pop3"), timeout=scaled(120))
    try:
        client.user(user)
        client.pass_(f"{user}-pw")
        return "OK"
    except poplib.error_proto as exc:
        return exc.args[0].decode()
    finally:
        client.quit()


def caldav_login(server: ServerProcess, user: str) -> str:
    r = requests.request("PROPFIND", f"http://127.0.0.1:{server.port('ical')}/caldav/", auth=(user, f"{user}-pw"),
                         headers={"Depth": "0"}, timeout=scaled(120))
    return "OK" if r.status_code == 207 else f"{r.status_code} retry-after={r.headers.get('Retry-After')}"


def imap_login(server: ServerProcess, user: str) -> str:
    answer, client = login(server, user)
    if client is not None:
        client.logout()
    return answer


# What each protocol answers while the directory cannot: its temporary failure.
TEMPORARY = (("imap", imap_login, lambda a: "[UNAVAILABLE]" in a),
             ("pop3", pop3_login, lambda a: a.startswith("-ERR [SYS/TEMP]")),
             ("caldav", caldav_login, lambda a: a.startswith("503 retry-after=")))


class Burst:
    """`BURST` logins at once on threads, IMAP, POP3 and CalDAV in turn (each gateway has its
    own connections to the store: together more than the store's worker threads); each
    answer with whether it is the protocol's temporary failure, and how long it took."""

    def __init__(self, server: ServerProcess) -> None:
        self.answers: list[tuple[str, bool, float]] = []
        self.threads = [threading.Thread(target=self._one, args=(server, USERS[i % len(USERS)], TEMPORARY[i % 3]),
                                         daemon=True) for i in range(BURST)]
        for thread in self.threads:
            thread.start()

    def _one(self, server: ServerProcess, user: str, protocol) -> None:
        name, attempt, temporary = protocol
        answer, seconds = elapsed(lambda: attempt(server, user))
        self.answers.append((f"{name}: {answer}", temporary(answer), seconds))

    def join(self) -> list[tuple[str, bool, float]]:
        for thread in self.threads:
            thread.join(scaled(180))
        return self.answers


def test_directory_stopped_mid_login_keeps_others_working(slapd, gateway):
    answer, bob = login(gateway, "bob")  # logged in before the directory stalls
    assert answer == "OK"
    bob.append("INBOX", None, None, b"Subject: still readable\r\n\r\nbody\r\n")
    try:
        slapd.proc.send_signal(signal.SIGSTOP)
        try:
            burst = Burst(gateway)
            time.sleep(0.5)  # the logins are in, waiting for the directory
            # Bob's session is served while they wait: no worker thread is held for him.
            for command in (lambda: bob.noop(), lambda: bob.select("INBOX"),
                            lambda: bob.fetch("1", "(BODY.PEEK[])"), lambda: bob.status("INBOX", "(MESSAGES)")):
                (typ, data), seconds = elapsed(command)
                assert typ == "OK", data
                assert seconds < scaled(LDAP_TIMEOUT / 2), f"a logged-in user waited {seconds:.1f} s for the directory"
            answers = burst.join()
        finally:
            slapd.proc.send_signal(signal.SIGCONT)
        assert len(answers) == BURST
        assert all(temporary for _, temporary, _ in answers), answers
        assert max(seconds for _, _, seconds in answers) < scaled(4 * LDAP_TIMEOUT + 10)

        # Killed while a login waits on it: the same temporary failure.
        slapd.proc.send_signal(signal.SIGSTOP)
        burst = Burst(gateway)
        time.sleep(0.5)
        slapd.proc.send_signal(signal.SIGKILL)
        slapd.proc.wait(scaled(30))
        slapd.proc = None
        answers = burst.join()
        assert all(temporary for _, temporary, _ in answers), answers
        assert bob.noop()[0] == "OK"
    finally:
        if slapd.proc is None:
            slapd.start()
    # Back: logins work again, groupware not restarted.
    answer, alice = login(gateway, "alice")
    assert answer == "OK", answer
    alice.logout()
    bob.logout()
    assert gateway.alive()
