"""user_plugin = unix with a real system account (useradd + chpasswd) and PAM,
through the real POP3 gateway, `groupware user sync`, and the backend itself."""
from __future__ import annotations

import os
import time

import pytest

from harness import ServerProcess, free_port
from raw_clients import pop3_auth_plain
from unix_accounts import MAX_UID, MIN_UID, Account
from shared.config import Config
from shared.errors import AuthFailed
from shared.model import Adapter

MESSAGE = b"From: x@example.net\r\nSubject: kept\r\n\r\nstill here\r\n"


@pytest.fixture(scope="module")
def account():
    acc = Account()
    try:
        yield acc
    finally:
        acc.remove()


class Gateway:
    def __init__(self, data_dir: str) -> None:
        self.port = free_port()
        self.options = {"user_plugin": "unix", "min_user_uid": str(MIN_UID), "max_user_uid": str(MAX_UID),
                        "default_domain": "example.net"}
        self.server = ServerProcess(os.path.join(data_dir, "var"),
                                    {**self.options, "pop3_listen": f"127.0.0.1:{self.port}"})

    def users(self) -> dict[str, list[str]]:
        return {line.split("\t")[0]: line.split("\t")[1:]
                for line in self.server.cli("user", "list").splitlines() if line}

    def pop(self, user: str, password: str) -> bytes:
        return pop3_auth_plain(self.port, user, password)


@pytest.fixture(scope="module")
def gw(account, tmp_path_factory):
    gateway = Gateway(str(tmp_path_factory.mktemp("unixgw")))
    with gateway.server:
        yield gateway


def test_system_account_logs_in_through_pam(gw, account):
    assert account.name not in gw.users()
    assert gw.pop(account.name, account.password).startswith(b"+OK Logged in, 0 messages")
    state, features, fullname, email = gw.users()[account.name]
    assert (state, fullname, email) == ("active", "Test Person", f"{account.name}@example.net")
    assert gw.pop(account.name, "wrong") == b"-ERR [AUTH] Authentication failed."
    assert gw.pop(account.name, "") == b"-ERR [AUTH] Authentication failed."
    # root and other system accounts are outside the uid range.
    assert gw.pop("root", account.password) == b"-ERR [AUTH] Authentication failed."
    assert gw.pop("nosuchaccount", account.password) == b"-ERR [AUTH] Authentication failed."


def test_wrong_password_holds_no_server_thread(gw, account):
    # pam_unix would sleep ~2 s per failure; our PAM_FAIL_DELAY hook returns at once.
    started = time.monotonic()
    assert gw.pop(account.name, "wrong-again") == b"-ERR [AUTH] Authentication failed."
    assert time.monotonic() - started < 1.5


def test_renamed_account_keeps_its_store_and_removed_one_is_orphaned(gw, account, reactor_thread):
    cfg = Config({"server_socket": gw.server.socket_path, "server_connections": "1"}, gw.server.data_dir)
    adapter = reactor_thread.call(Adapter, cfg, reactor_thread.reactor)
    try:
        session = reactor_thread.call(adapter.logon, account.name, account.password, "imap", "127.0.0.1")
        inbox = reactor_thread.call(session.store().inbox)
        reactor_thread.call(inbox.append, MESSAGE)
        reactor_thread.call(session.logoff)
    finally:
        reactor_thread.call(adapter.close)
    old = account.name
    account.rename(old + "x")
    assert gw.pop(old, account.password) == b"-ERR [AUTH] Authentication failed."
    assert gw.pop(account.name, account.password).startswith(b"+OK Logged in, 1 messages")
    assert account.name in gw.users() and old not in gw.users()

    account.remove()
    assert gw.pop(account.name, account.password) == b"-ERR [AUTH] Authentication failed."
    plan = gw.server.cli("user", "sync", "--dry-run")
    assert f"orphan\t{account.name}\tgone from the directory; store kept" in plan
    gw.server.cli("user", "sync")
    assert gw.users()[account.name][0] == "orphaned"


def test_uid_range_and_exceptions(account, tmp_path):
    from server.storage.store import Storage
    from server.users.unix import UnixUserBackend

    acc = Account()
    storage = Storage(f"sqlite:///{tmp_path}/store.db")
    storage.migrate()
    try:
        def backend(**options):
            values = {"min_user_uid": str(MIN_UID), "max_user_uid": str(MAX_UID), **options}
            return UnixUserBackend(Config(values, str(tmp_path)), storage)

        user = backend(default_domain="example.com").authenticate(acc.name, acc.password)
        assert user["email"] == f"{acc.name}@example.com" and user["fullname"] == "Test Person"
        with pytest.raises(AuthFailed):
            backend(max_user_uid=str(acc.uid - 1)).authenticate(acc.name, acc.password)
        with pytest.raises(AuthFailed):
            backend(except_user_uids=f"1 {acc.uid}").authenticate(acc.name, acc.password)
        names = [u.name for u in backend().all_users()]
        assert acc.name in names and "root" not in names
    finally:
        storage.close()
        acc.remove()


def test_delivery_finds_the_account_by_login_at_default_domain(tmp_path):
    from server.recipients import resolve_recipient
    from server.storage.store import Storage
    from server.users.unix import UnixUserBackend

    acc = Account()
    storage = Storage(f"sqlite:///{tmp_path}/store.db")
    storage.migrate()
    try:
        backend = UnixUserBackend(Config({"min_user_uid": str(MIN_UID), "max_user_uid": str(MAX_UID),
                                          "default_domain": "example.com"}, str(tmp_path)), storage)
        user = backend.lookup_address(f"{acc.name.upper()}@Example.COM")
        assert user["name"] == acc.name and user["email"] == f"{acc.name}@example.com"
        assert resolve_recipient(backend, f"{acc.name}+later@example.com", "+") == (user, "later")
        assert backend.lookup_address(f"{acc.name}@example.org") is None
        assert backend.lookup_address("root@example.com") is None  # outside the uid range
        assert backend.lookup_address("no-such-account@example.com") is None
    finally:
        storage.close()
        acc.remove()


def test_system_groups_give_folder_rights(tmp_path):
    import grp
    import pwd

    from server.storage.acl import Grantee
    from server.storage.store import Storage
    from server.users.unix import UnixUserBackend

    account = Account()  # the module's own is renamed and removed by the tests above
    storage = Storage(f"sqlite:///{tmp_path}/store.db")
    storage.migrate()
    try:
        backend = UnixUserBackend(Config({"min_user_uid": str(MIN_UID), "max_user_uid": str(MAX_UID)},
                                         str(tmp_path)), storage)
        primary = grp.getgrgid(pwd.getpwnam(account.name).pw_gid).gr_name
        assert primary in backend.groups_of_login(account.name)
        assert backend.groups_of_login("root") == []  # outside the uid range
        user = backend.lookup(account.name)
        owner = storage.create_user("owner", "h")
        storage.directory_groups = backend.groups_of_login
        folder = storage.create_folder(owner["store_id"], None, "Team")["id"]
        storage.set_acl(folder, Grantee.of_group(primary), "lr")
        assert storage.folder_rights(user["id"], folder) == "lr"
    finally:
        storage.close()
        account.remove()
