"""The login service every gateway uses (shared/login.py), against the real store server."""
from __future__ import annotations

import logging
import os

import pytest
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import Anonymous, IAnonymous
from zope.interface import implementer

from shared.authguard import AuthGuard
from shared.config import Config
from shared.features import CALDAV, FEATURES, IMAP, POP3, SIEVE
from shared.login import (ClientLogin, LoginRefused, LoginService, Outcome, is_loopback,
                          plaintext_login_allowed)

# The store server (the `store_server` fixture) and its users: alice, bob, and carol with POP3 switched off.
from adapter_client import PASSWORD, adapter_on, make_adapter, start_store_server
from reactor_thread import ReactorThread

ATTACKER = "192.0.2.66"


def make_guard(rt: ReactorThread, **options: str) -> AuthGuard:
    values = {"auth_failure_delay": "0", "auth_ban_threshold": "3", "auth_ban_time": "600",
              "auth_exempt_loopback": "yes", **options}
    return AuthGuard(Config(values, "/nonexistent"), rt.reactor)


@pytest.fixture
def adapter(reactor_thread, store_server):
    a = make_adapter(reactor_thread, store_server)
    yield a
    reactor_thread.call(a.close)


def log_in(rt: ReactorThread, service: LoginService, user: str, password: str = PASSWORD,
           address: str = "192.0.2.1", connected=lambda: True):
    return rt.call(service.login, ClientLogin(user, password, address), connected)


def refusal(rt: ReactorThread, service: LoginService, user: str, password: str = PASSWORD,
            address: str = "192.0.2.1", connected=lambda: True) -> LoginRefused:
    with pytest.raises(LoginRefused) as info:
        log_in(rt, service, user, password, address, connected)
    return info.value


def failures(guard: AuthGuard, address: str) -> int:
    record = guard.by_ip.get(address)
    return record.failures if record is not None else 0


# -- outcomes --------------------------------------------------------------------------------

def test_good_login_gives_a_session_and_one_log_line(reactor_thread, adapter, caplog):
    caplog.set_level(logging.INFO)
    service = LoginService(adapter, make_guard(reactor_thread), IMAP)
    session = log_in(reactor_thread, service, "alice")
    assert session.user.name == "alice" and session.protocol == IMAP and not session.closed
    lines = [r.getMessage() for r in caplog.records if r.name == "shared.login"]
    assert lines == ["imap login: user=alice rip=192.0.2.1"]
    reactor_thread.call(session.logoff)


def test_bad_password_and_unknown_user_are_one_outcome_counted_by_the_guard(reactor_thread, adapter, caplog):
    caplog.set_level(logging.INFO)
    guard = make_guard(reactor_thread)
    service = LoginService(adapter, guard, POP3)
    wrong = refusal(reactor_thread, service, "alice", "wrong password", ATTACKER)
    unknown = refusal(reactor_thread, service, "nosuchuser", PASSWORD, ATTACKER)
    assert wrong.outcome is unknown.outcome is Outcome.BAD_CREDENTIALS
    assert failures(guard, ATTACKER) == 2
    lines = [r.getMessage() for r in caplog.records if r.name == "shared.authguard"]
    assert lines == [f"pop3 login failed: user=alice rip={ATTACKER}",
                     f"pop3 login failed: user=nosuchuser rip={ATTACKER}"]
    # A good login forgives its own name's failures from its address, not the address's others.
    reactor_thread.call(log_in(reactor_thread, service, "alice", address=ATTACKER).logoff)
    assert failures(guard, ATTACKER) == 1 and "alice" not in guard.by_login


def test_feature_switched_off_for_the_user_is_disabled_not_a_bad_password(reactor_thread, adapter, caplog):
    caplog.set_level(logging.INFO)
    guard = make_guard(reactor_thread)
    refused = refusal(reactor_thread, LoginService(adapter, guard, POP3), "carol")
    assert refused.outcome is Outcome.DISABLED
    assert failures(guard, "192.0.2.1") == 0
    assert "pop3 login refused, pop3 disabled: user=carol rip=192.0.2.1" in caplog.text
    assert "login failed" not in caplog.text
    # The same user, the same password, another protocol.
    reactor_thread.call(log_in(reactor_thread, LoginService(adapter, guard, IMAP), "carol").logoff)


def test_feature_switched_off_on_the_gateway_host(reactor_thread, store_server):
    adapter = make_adapter(reactor_thread, store_server, disabled_features=CALDAV)
    try:
        guard = make_guard(reactor_thread)
        refused = refusal(reactor_thread, LoginService(adapter, guard, CALDAV), "alice")
        assert refused.outcome is Outcome.DISABLED and failures(guard, "192.0.2.1") == 0
        reactor_thread.call(log_in(reactor_thread, LoginService(adapter, guard, IMAP), "alice").logoff)
    finally:
        reactor_thread.call(adapter.close)


def test_feature_switched_off_server_wide(reactor_thread, tmp_path):
    srv = start_store_server(str(tmp_path), {"disabled_features": IMAP})
    adapter = make_adapter(reactor_thread, srv)
    try:
        guard = make_guard(reactor_thread)
        assert refusal(reactor_thread, LoginService(adapter, guard, IMAP), "alice").outcome is Outcome.DISABLED
        assert failures(guard, "192.0.2.1") == 0
        reactor_thread.call(log_in(reactor_thread, LoginService(adapter, guard, POP3), "alice").logoff)
    finally:
        reactor_thread.call(adapter.close)
        srv.stop()


def test_banned_address_is_refused_even_with_the_right_password(reactor_thread, adapter):
    guard = make_guard(reactor_thread, auth_ban_threshold="2")
    service = LoginService(adapter, guard, IMAP)
    for _ in range(2):
        assert refusal(reactor_thread, service, "bob", "guess", ATTACKER).outcome is Outcome.BAD_CREDENTIALS
    banned = refusal(reactor_thread, service, "bob", PASSWORD, ATTACKER)
    assert banned.outcome is Outcome.BANNED and 590 < banned.retry_after <= 600
    # The ban is the address's: bob logs in from elsewhere, and loopback is never banned.
    reactor_thread.call(log_in(reactor_thread, service, "bob", address="192.0.2.2").logoff)
    for _ in range(3):
        refusal(reactor_thread, service, "bob", "guess", "127.0.0.1")
    reactor_thread.call(log_in(reactor_thread, service, "bob", address="127.0.0.1").logoff)


def test_store_outage_is_unavailable_and_never_counted(reactor_thread, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    adapter = adapter_on(reactor_thread, os.path.join(tmp_path, "absent.sock"), str(tmp_path))
    try:
        guard = make_guard(reactor_thread)
        service = LoginService(adapter, guard, CALDAV)
        for password in (PASSWORD, "wrong password"):
            assert refusal(reactor_thread, service, "alice", password, ATTACKER).outcome is Outcome.UNAVAILABLE
        assert failures(guard, ATTACKER) == 0 and not guard.by_login
        assert "login failed" not in caplog.text
        assert "caldav login of alice: store unavailable" in caplog.text
    finally:
        reactor_thread.call(adapter.close)


def test_a_client_gone_meanwhile_gets_no_session(reactor_thread, adapter):
    service = LoginService(adapter, make_guard(reactor_thread), IMAP)
    # Gone during the guard's delay: the store is not asked.
    assert refusal(reactor_thread, service, "alice", connected=lambda: False).outcome is Outcome.GONE
    # Gone while the store checked the password: the session it opened is logged off.
    answers = iter([True, False])
    sessions = []
    real_logon = adapter.logon

    def logon(*args, **kwargs):
        return real_logon(*args, **kwargs).addCallback(lambda s: sessions.append(s) or s)
    adapter.logon = logon
    try:
        assert refusal(reactor_thread, service, "alice", connected=lambda: next(answers)).outcome is Outcome.GONE
    finally:
        del adapter.logon
    assert len(sessions) == 1 and sessions[0].closed


def test_kept_caldav_sessions_are_bounded(reactor_thread, adapter):
    """`ical_session_cache`: beyond it the session that would expire first is logged off,
    even when none has expired yet."""
    from gateways.caldav.sessions import SessionCache

    cache = SessionCache(LoginService(adapter, make_guard(reactor_thread), CALDAV), expiry=300, max_entries=1)
    alice = reactor_thread.call(cache.logon, "alice", PASSWORD, "127.0.0.1")
    assert cache.cached("alice", PASSWORD) is alice
    bob = reactor_thread.call(cache.logon, "bob", PASSWORD, "127.0.0.1")
    assert alice.closed and not bob.closed
    assert cache.cached("alice", PASSWORD) is None and cache.cached("bob", PASSWORD) is bob
    reactor_thread.call(cache.close)


def test_a_new_way_in_registers_a_checker_not_a_login_flow(reactor_thread, adapter):
    """A checker for another kind of credentials; the guard, realm and outcomes stay the service's."""
    @implementer(ICredentialsChecker)
    class TrustedLocalCaller:
        credentialInterfaces = (IAnonymous,)

        def requestAvatarId(self, credentials):
            return adapter.logon("bob", PASSWORD, IMAP, credentials.client_address)

    @implementer(IAnonymous)
    class Local(Anonymous):
        username, client_address = "bob", "127.0.0.1"

    service = LoginService(adapter, make_guard(reactor_thread), IMAP, checkers=[TrustedLocalCaller()])
    session = reactor_thread.call(service.login, Local())
    assert session.user.name == "bob"
    reactor_thread.call(session.logoff)


# -- where passwords may travel in the clear ---------------------------------------------------

def test_loopback_and_the_plaintext_rule():
    for host in ("127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"):
        assert is_loopback(host), host
    for host in ("192.0.2.1", "::ffff:192.0.2.1", "2001:db8::1", "", "not an address", "/run/x.sock"):
        assert not is_loopback(host), host
    assert plaintext_login_allowed(True, False, "192.0.2.1")
    assert plaintext_login_allowed(False, True, "192.0.2.1")
    assert plaintext_login_allowed(False, False, "::1")
    assert not plaintext_login_allowed(False, False, "192.0.2.1")


def test_the_feature_names_are_one_list_everywhere():
    from groupware import cli
    from server.soap import session
    from server.storage import users
    from shared.model import user
    assert FEATURES == (IMAP, POP3, CALDAV, SIEVE)
    assert cli.FEATURES is session.FEATURES is users.FEATURES is user.FEATURES is FEATURES
