"""changePassword and the web page's logon, against the real store server; every request and
answer validated against the WSDL's schema."""
from __future__ import annotations

import pytest

from harness import USERS
from shared.errors import AuthFailed, BadRequest
from soap_scenario import client


def test_a_user_changes_their_own_password(server):
    alice = client(server, "unix")
    alice.logon("alice", USERS["alice"], "web")  # the page: not a per-user switch
    with pytest.raises(AuthFailed):
        alice.call("changePassword", ("oldPassword", "wrong"), ("newPassword", "next-secret"))
    with pytest.raises(BadRequest):
        alice.call("changePassword", ("oldPassword", USERS["alice"]), ("newPassword", ""))
    with pytest.raises(BadRequest):
        alice.call("changePassword", ("oldPassword", USERS["alice"]), ("newPassword", "x" * 1025))
    alice.call("changePassword", ("oldPassword", USERS["alice"]), ("newPassword", "next-secret"))
    assert "user 'alice' changed their password" in server.log()
    fresh = client(server, "tcp")
    with pytest.raises(AuthFailed):
        fresh.logon("alice", USERS["alice"], "imap")
    fresh.logon("alice", "next-secret", "imap")
    # Back, so that the module's other users of alice are not surprised.
    fresh.call("changePassword", ("oldPassword", "next-secret"), ("newPassword", USERS["alice"]))
    fresh.http.close()
    alice.http.close()
