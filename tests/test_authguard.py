"""The brute-force guard: delays, bans, exemptions and bounded memory on a fake clock;
then the real POP3 gateway with loopback made untrusted, and the fail2ban filter on its log."""
from __future__ import annotations

import base64
import logging
import os
import poplib
import re
import shutil
import socket
import subprocess
import threading
import time

import psutil
import pytest
from twisted.internet.task import Clock

from debian import command, ensure_packages
from harness import ROOT, ServerProcess, free_port
from shared.authguard import MAX_PAIRS, Attempt, AuthGuard, Banned, log_safe
from shared.config import Config
from waiting import wait_until

FILTER = os.path.join(ROOT, "conf", "fail2ban", "filter.d", "groupware.conf")


def guard(clock: Clock, **options: str) -> AuthGuard:
    values = {"auth_failure_delay": "2", "auth_max_delay": "15", "auth_ban_threshold": "5",
              "auth_ban_time": "60", "auth_failure_window": "600", "auth_exempt_loopback": "yes"}
    values.update(options)
    return AuthGuard(Config(values, "/nonexistent"), clock)


def outcome(d):
    """('ok', None) / ('failed', exception) / ('pending', None) for a Deferred of
    `before_attempt`; an attempt that got its turn is done at once."""
    result = []

    def ok(attempt):
        if attempt is not None:  # None: asked before, and done then
            attempt.done()
        result.append(("ok", None))

    def failed(failure):
        result.append(("failed", failure.value))
        return failure
    d.addCallbacks(ok, failed)
    d.addErrback(lambda f: None)  # keep the failure for the next look, quietly
    return result[0] if result else ("pending", None)


def fires_after(clock: Clock, g: AuthGuard, ip: str, login: str) -> float:
    """Seconds of fake time until before_attempt fires."""
    d = g.before_attempt("imap", ip, login)
    done = []
    d.addCallback(lambda attempt: done.append(attempt.done()))
    waited = 0.0
    while not done:
        assert waited < 1000
        clock.advance(0.5)
        waited += 0.5
    return waited


def test_delay_grows_per_ip_and_per_login_and_is_capped():
    clock = Clock()
    g = guard(clock)
    assert outcome(g.before_attempt("pop3", "192.0.2.1", "alice"))[0] == "ok"
    g.failed("pop3", "192.0.2.1", "alice")
    assert g.delay_for("192.0.2.1", "bob") == 2  # counted per IP
    assert g.delay_for("198.51.100.9", "ALICE") == 2  # and per login name, case-insensitively
    assert g.delay_for("198.51.100.9", "bob") == 0
    g.failed("imap", "192.0.2.1", "alice")
    assert g.delay_for("192.0.2.1", "x") == 4
    g.failed("caldav", "192.0.2.1", "alice")
    assert g.delay_for("192.0.2.1", "x") == 8
    g.failed("pop3", "192.0.2.1", "alice")
    assert g.delay_for("192.0.2.1", "x") == 15  # auth_max_delay
    assert fires_after(clock, g, "192.0.2.1", "x") == 15


def test_the_delay_is_a_timer_not_a_wait():
    clock = Clock()
    g = guard(clock)
    g.failed("pop3", "192.0.2.1", "alice")
    held = g.before_attempt("pop3", "192.0.2.1", "alice")
    assert outcome(held) == ("pending", None)
    assert len(clock.getDelayedCalls()) == 1
    # Another client is answered at once while the first one waits.
    assert outcome(g.before_attempt("pop3", "198.51.100.1", "carol")) == ("ok", None)
    clock.advance(2)
    assert outcome(held) == ("ok", None)


def test_ban_past_the_threshold_then_expires():
    clock = Clock()
    g = guard(clock)
    for _ in range(5):
        g.failed("imap", "192.0.2.1", f"user{_}")
    kind, error = outcome(g.before_attempt("imap", "192.0.2.1", "someone"))
    assert kind == "failed" and isinstance(error, Banned) and error.retry_after == 60
    assert g.ban_remaining("::ffff:192.0.2.1") == 60  # mapped IPv4 is the same address
    g.succeeded("192.0.2.1", "someone")  # a good password does not lift a ban
    clock.advance(59)
    assert outcome(g.before_attempt("imap", "192.0.2.1", "x"))[0] == "failed"
    clock.advance(2)
    assert g.ban_remaining("192.0.2.1") == 0
    assert outcome(g.before_attempt("imap", "192.0.2.1", "x"))[0] == "pending"  # still slowed down
    # Login names are slowed down but never banned: a stranger cannot lock a user out.
    assert g.ban_remaining("198.51.100.5") == 0
    assert outcome(g.before_attempt("imap", "198.51.100.5", "user0"))[0] == "pending"


def test_success_and_quiet_time_forget_failures():
    clock = Clock()
    g = guard(clock)
    g.failed("pop3", "192.0.2.1", "alice")
    g.failed("pop3", "192.0.2.2", "bob")
    g.succeeded("192.0.2.1", "alice")
    assert g.delay_for("192.0.2.1", "alice") == 0
    clock.advance(601)
    assert g.delay_for("192.0.2.2", "bob") == 0
    assert not g.by_ip and not g.by_login


def test_a_success_forgives_only_its_own_name_from_its_own_address():
    clock = Clock()
    g = guard(clock, auth_ban_threshold="0")
    for name in ("alice", "alice", "bob", "carol"):
        g.failed("imap", "192.0.2.1", name)
    g.failed("imap", "198.51.100.7", "alice")
    g.succeeded("192.0.2.1", "alice")  # the attacker's own account, or alice's typos
    assert g.by_ip["192.0.2.1"].failures == 2  # bob and carol still count for the address
    assert g.delay_for("192.0.2.1", "dave") == 4
    assert g.by_login["alice"].failures == 1  # and alice's failure from elsewhere for the name
    assert g.delay_for("203.0.113.1", "alice") == 2
    g.succeeded("192.0.2.1", "bob")
    g.succeeded("192.0.2.1", "carol")
    assert "192.0.2.1" not in g.by_ip


def test_failures_beyond_the_named_pairs_are_never_forgiven():
    clock = Clock()
    g = guard(clock, auth_ban_threshold="0")
    for i in range(MAX_PAIRS + 10):
        g.failed("imap", "192.0.2.1", f"user{i}")
    for i in range(MAX_PAIRS + 10):
        g.succeeded("192.0.2.1", f"user{i}")
    assert g.by_ip["192.0.2.1"].failures == 10


def taken(g: AuthGuard, ip: str, login: str, started: list) -> None:
    """Start an attempt; its Attempt (or failure) lands in `started` when it gets its turn."""
    g.before_attempt("imap", ip, login).addCallbacks(started.append, lambda f: started.append(f.value))


def test_attempts_in_flight_wait_their_turn_and_meet_the_delays_of_those_before():
    clock = Clock()
    g = guard(clock, auth_max_waiting="3", auth_ban_threshold="3")
    started: list = []
    for i in range(10):
        taken(g, "192.0.2.1", f"name{i}", started)
    # One is checked, three wait; the other six are refused at once without reaching the check.
    assert len(started) == 7 and isinstance(started[0], Attempt)
    assert all(isinstance(s, Banned) for s in started[1:])
    g.failed("imap", "192.0.2.1", "name0")
    started.pop(0).done()
    assert len(started) == 6  # the next one has its turn, but waits out the delay owed
    clock.advance(2)
    assert isinstance(started[6], Attempt)
    g.failed("imap", "192.0.2.1", "name1")
    started.pop(6).done()
    clock.advance(4)
    g.failed("imap", "192.0.2.1", "name2")  # the third failure bans the address
    started.pop(6).done()
    assert isinstance(started[6], Banned) and started[6].retry_after == 60
    assert not g.ip_lines and not g.in_flight
    # Another address is not held up by any of this.
    taken(g, "198.51.100.1", "other", started)
    assert isinstance(started[-1], Attempt)


def test_attempts_in_flight_for_one_name_count_towards_its_delay_but_are_never_refused():
    clock = Clock()
    g = guard(clock, auth_max_waiting="1")
    started: list = []
    for i in range(20):  # one name, from twenty addresses at once
        taken(g, f"192.0.2.{i + 1}", "Alice" if i % 2 else "alice", started)
    # The first goes at once; each further one waits as if those in flight had failed.
    assert len(started) == 1 and g.in_flight == {"alice": 20}
    clock.advance(2)
    assert len(started) == 2
    clock.advance(2)
    assert len(started) == 3
    clock.advance(15)
    assert len(started) == 20 and all(isinstance(s, Attempt) for s in started)
    for attempt in started:
        attempt.done()
    assert not g.in_flight and not g.ip_lines
    # Nothing failed: the next attempt for the name goes at once.
    taken(g, "198.51.100.1", "alice", started)
    assert isinstance(started[-1], Attempt) and g.delay_for("198.51.100.2", "alice") == 2


def test_loopback_and_trusted_networks_are_exempt_but_logged(caplog):
    clock = Clock()
    g = guard(clock, trusted_networks="10.0.0.0/8, 2001:db8::/32")
    with caplog.at_level(logging.WARNING, "shared.authguard"):
        for ip in ("127.0.0.1", "::1", "10.1.2.3", "2001:db8::7"):
            for _ in range(10):
                g.failed("imap", ip, "alice")
            assert outcome(g.before_attempt("imap", ip, "bob")) == ("ok", None)
    assert len(caplog.records) == 40
    assert not g.by_ip
    strict = guard(clock, auth_exempt_loopback="no")
    strict.failed("imap", "127.0.0.1", "alice")
    assert strict.delay_for("127.0.0.1", "x") == 2


def test_memory_is_bounded():
    clock = Clock()
    g = guard(clock, auth_guard_max_entries="1000")
    for i in range(20_000):
        g.failed("imap", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", f"name{i}" * 100)
    assert len(g.by_ip) == 1000 and len(g.by_login) == 1000
    assert max(len(k) for k in g.by_login) <= 256
    # The most recent offenders are the ones remembered.
    assert g.delay_for("10.0.78.31", "x") == 2


def test_one_log_line_per_failure_that_a_name_cannot_forge(caplog):
    g = guard(Clock())
    with caplog.at_level(logging.WARNING, "shared.authguard"):
        g.failed("pop3", "192.0.2.1", "evil rip=203.0.113.9\nforged line")
    (record,) = caplog.records
    line = record.getMessage()
    assert line == "pop3 login failed: user=evil\\x20rip=203.0.113.9\\x0aforged\\x20line rip=192.0.2.1"
    assert log_safe("a\\b\u2028") == "a\\\\b\\u2028"


def test_one_guard_per_process():
    clock = Clock()
    cfg = Config({}, "/nonexistent")
    assert AuthGuard.for_process(cfg, clock) is AuthGuard.for_process(cfg, clock)


# -- the real POP3 gateway, loopback untrusted


def ensure_fail2ban() -> str:
    ensure_packages({"fail2ban": command("fail2ban-regex")})
    path = shutil.which("fail2ban-regex")
    assert path
    return path


class Pop:
    """A poplib client whose socket comes from a chosen loopback source address."""

    def __init__(self, port: int, source: str) -> None:
        self.port, self.source = port, source

    def connect(self) -> poplib.POP3:
        source = self.source

        class SourcedPOP3(poplib.POP3):
            def _create_socket(self, timeout):
                return socket.create_connection((self.host, self.port), timeout,
                                                source_address=(source, 0))
        return SourcedPOP3("127.0.0.1", self.port, timeout=20)

    def login(self, user: str, password: str) -> tuple[bytes, float]:
        """The answer to AUTH PLAIN (a name may hold spaces) and how long it took."""
        p = self.connect()
        try:
            plain = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
            started = time.monotonic()
            try:
                answer = p._shortcmd("AUTH PLAIN " + plain)
            except poplib.error_proto as exc:
                answer = exc.args[0]
            return answer, time.monotonic() - started
        finally:
            p.close()


@pytest.fixture(scope="module")
def pop3(tmp_path_factory):
    data = tmp_path_factory.mktemp("authguard")
    port = free_port()
    server = ServerProcess(str(data / "var"), {
        "pop3_listen": f"127.0.0.1:{port}", "auth_exempt_loopback": "no",
        "auth_failure_delay": "1.5", "auth_max_delay": "3",
        "auth_ban_threshold": "4", "auth_ban_time": "3"}, demo=True)
    with server:
        yield server, port, server.demo_password()


def test_pop3_gateway_delays_bans_and_logs_for_fail2ban(pop3):
    server, port, password = pop3
    attacker, bystander = Pop(port, "127.0.0.2"), Pop(port, "127.0.0.3")
    answer, took = attacker.login("mallory", "wrong")
    assert answer.startswith(b"-ERR [AUTH] Authentication failed") and took < 1.5
    # The next attempt from that address waits; meanwhile another address logs in at once.
    result = {}
    worker = threading.Thread(target=lambda: result.update(a=attacker.login("nobody", "x")))
    worker.start()
    gateway = psutil.Process(server.pid())
    wait_until(lambda: any(c.raddr and c.raddr.ip == "127.0.0.2" and c.status == psutil.CONN_ESTABLISHED
                           for c in gateway.net_connections("tcp")),
               message="the attacker's second attempt never reached the gateway")
    answer, took = bystander.login("demo", password)
    assert answer.startswith(b"+OK Logged in") and worker.is_alive()
    worker.join()
    answer, took = result["a"]
    assert answer.startswith(b"-ERR [AUTH] Authentication failed") and took >= 1.5
    attacker.login("evil rip=203.0.113.9", "x")
    answer, _ = attacker.login("mallory", "wrong")  # the fourth failure: banned from now on
    answer, took = attacker.login("demo", password)
    assert answer == b"-ERR [AUTH] Too many failed logins from your address, try again later."
    assert took < 1.0
    assert bystander.login("demo", password)[0].startswith(b"+OK")
    time.sleep(3.2)  # the 3 s ban runs out: its length is what is tested
    answer, took = attacker.login("demo", password)
    assert answer.startswith(b"+OK Logged in")

    log = open(server.options["log_file"], encoding="utf-8").read()
    failures = [line for line in log.splitlines() if "login failed" in line]
    assert len(failures) == 4
    assert failures[2].endswith("pop3 login failed: user=evil\\x20rip=203.0.113.9 rip=127.0.0.2")

    fail2ban = ensure_fail2ban()
    out = subprocess.run([fail2ban, "--out", "ip", server.options["log_file"], FILTER],
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == ["127.0.0.2"] * 4
    summary = subprocess.run([fail2ban, server.options["log_file"], FILTER],
                             capture_output=True, text=True, check=True).stdout
    assert re.search(r"Lines: \d+ lines, 0 ignored, 4 matched", summary), summary
