"""user_plugin = ldap against a real slapd: through the real POP3 gateway (poplib), the adapter,
`groupware user sync`, and the backend itself for TLS."""
from __future__ import annotations

import imaplib
import os
import re
import subprocess
import sys

import pytest
import requests

from harness import ROOT, ServerProcess, free_port
from raw_clients import pop3_auth_plain
from shared.config import OPTIONS, Config, parse_config_text
from shared.errors import AuthFailed, Unavailable
from shared.model import Adapter
from slapd_harness import AD_READER_DN, AD_SUFFIX, READER_DN, READER_PW, SUFFIX, Slapd

PEOPLE = f"ou=people,{SUFFIX}"
MESSAGE = b"From: x@example.org\r\nSubject: kept\r\n\r\nstill here\r\n"


def openldap_options(slapd: Slapd, dead_port: int) -> dict[str, str]:
    # The first server never answers: every logon below also exercises failover.
    return {"ldap_uri": f"ldap://127.0.0.1:{dead_port} {slapd.uri}",
            "ldap_bind_user": READER_DN, "ldap_bind_passwd": READER_PW,
            "ldap_search_base": SUFFIX, "ldap_network_timeout": "3", "ldap_timeout": "5",
            "ldap_enabled_features_attribute": "groupwareEnabledFeatures",
            "ldap_disabled_features_attribute": "groupwareDisabledFeatures"}


def ad_options(slapd: Slapd) -> dict[str, str]:
    return {"ldap_uri": slapd.ldaps_uri, "ldap_tls_cacert_file": slapd.ca,
            "ldap_bind_user": AD_READER_DN, "ldap_bind_passwd": READER_PW,
            "ldap_search_base": AD_SUFFIX, "ldap_user_search_filter": "(objectClass=user)",
            "ldap_loginname_attribute": "sAMAccountName", "ldap_fullname_attribute": "displayName",
            "ldap_user_unique_attribute": "objectGUID", "ldap_user_unique_attribute_type": "binary",
            "ldap_group_search_filter": "(objectClass=group)", "ldap_user_memberof_attribute": "memberOf",
            "ldap_login_group": "Mail Users"}


class Gateway:
    """`groupware serve` with user_plugin = ldap, the ldap options in a user_plugin_config file."""

    def __init__(self, data_dir, options: dict[str, str]) -> None:
        os.makedirs(data_dir, exist_ok=True)
        self.plugin_config = os.path.join(data_dir, "ldap-test.cfg")
        with open(self.plugin_config, "w") as fp:
            fp.write("".join(f"{k} = {v}\n" for k, v in options.items()))
        self.port = free_port()
        self.server = ServerProcess(os.path.join(data_dir, "var"), {
            "user_plugin": "ldap", "user_plugin_config": self.plugin_config,
            "pop3_listen": f"127.0.0.1:{self.port}"})

    def users(self) -> dict[str, str]:
        """name -> state (active, disabled, orphaned) from `groupware user list`."""
        return {line.split("\t")[0]: line.split("\t")[1]
                for line in self.server.cli("user", "list").splitlines() if line}

    def pop(self, user: str, password: str) -> bytes:
        """The answer to AUTH PLAIN (any bytes in the name), the session closed with QUIT."""
        return pop3_auth_plain(self.port, user, password)

    def imap(self, user: str, password: str) -> str:
        """'OK' or the tagged NO answer to LOGIN over the real IMAP gateway."""
        client = imaplib.IMAP4("127.0.0.1", self.server.port("imap"), timeout=30)
        try:
            client.login(user, password)
            client.logout()
            return "OK"
        except imaplib.IMAP4.error as exc:
            return str(exc)
        finally:
            try:
                client.shutdown()
            except OSError:
                pass

    def caldav(self, user: str, password: str) -> int:
        """The status of a PROPFIND on the CalDAV root with basic auth."""
        url = f"http://127.0.0.1:{self.server.port('ical')}/caldav/"
        return requests.request("PROPFIND", url, auth=(user, password), headers={"Depth": "0"},
                                timeout=30).status_code

    def log(self) -> str:
        with open(self.server.options["log_file"], encoding="utf-8") as fp:
            return fp.read()


@pytest.fixture(scope="module")
def gw(slapd, tmp_path_factory):
    gateway = Gateway(str(tmp_path_factory.mktemp("ldapgw")), openldap_options(slapd, free_port()))
    with gateway.server:
        yield gateway


@pytest.fixture(scope="module")
def adapter(gw, reactor_thread):
    cfg = Config({"server_socket": gw.server.socket_path, "server_connections": "2"}, gw.server.data_dir)
    a = reactor_thread.call(Adapter, cfg, reactor_thread.reactor)
    yield a
    reactor_thread.call(a.close)


def logon_error(rt, adapter, user: str, password: str) -> type:
    try:
        session = rt.call(adapter.logon, user, password, "imap", "127.0.0.1")
    except Exception as exc:  # noqa: BLE001
        return type(exc)
    rt.call(session.logoff)
    return type(None)


# -- through the real POP3 gateway


def test_first_login_creates_the_store(gw):
    assert "alice" not in gw.users()
    assert gw.pop("alice", "alice-pw").startswith(b"+OK Logged in, 0 messages")
    assert gw.users()["alice"] == "active"
    listing = gw.server.cli("user", "list")
    assert "Alice Liddell\talice@example.org" in listing
    assert gw.pop("alice", "wrong") == b"-ERR [AUTH] Authentication failed."
    assert gw.pop("nosuchuser", "x") == b"-ERR [AUTH] Authentication failed."
    # The directory matches names case-insensitively; the store is the same one.
    assert gw.pop("ALICE", "alice-pw").startswith(b"+OK Logged in")
    assert [n for n in gw.users() if n.lower() == "alice"] == ["alice"]
    # The dead first URI was tried and then skipped (failover).
    assert re.search(r"directory server ldap://127\.0\.0\.1:\d+ unusable", gw.log())


def test_imap_and_caldav_gateways_use_the_directory(gw):
    assert gw.imap("alice", "alice-pw") == "OK"
    assert "[AUTHENTICATIONFAILED]" in gw.imap("alice", "wrong")
    assert "[AUTHENTICATIONFAILED]" in gw.imap('"al*"', "alice-pw")  # imaplib leaves quoting to us
    assert gw.caldav("alice", "alice-pw") == 207
    assert gw.caldav("alice", "wrong") == 401
    assert gw.caldav("*", "alice-pw") == 401


def test_empty_password_is_refused_before_any_bind(gw, slapd, adapter, reactor_thread):
    binds = slapd.log_text().count(f'BIND dn="uid=alice,{PEOPLE}"')
    searches = slapd.log_text().count("(uid=alice)")
    assert binds > 0  # the earlier logins did bind as alice
    assert gw.pop("alice", "") == b"-ERR [AUTH] Authentication failed."
    assert logon_error(reactor_thread, adapter, "alice", "") is AuthFailed
    assert slapd.log_text().count(f'BIND dn="uid=alice,{PEOPLE}"') == binds
    assert slapd.log_text().count("(uid=alice)") == searches


@pytest.mark.parametrize("name", ["*", "al*", "*)(uid=*", "alice)(uid=*", "alice)(|(uid=*)", "alice\\",
                                  "(uid=alice)", "alice*"])
def test_filter_metacharacters_cannot_widen_the_search(gw, name):
    assert gw.pop(name, "alice-pw") == b"-ERR [AUTH] Authentication failed."


def test_nul_and_escapes_reach_the_directory_escaped(gw, slapd, adapter, reactor_thread):
    for name in ("alice\0", "\0", "al\0*"):
        assert logon_error(reactor_thread, adapter, name, "alice-pw") is AuthFailed
    text = slapd.log_text()
    assert "(uid=al\\2A)" in text or "(uid=al*)" not in text
    assert 'filter="(&(objectClass=inetOrgPerson)(uid=\\2A))"' in text
    assert "(uid=alice\\00)" in text
    assert "(uid=*)" not in text


def test_renamed_user_keeps_the_store(gw, slapd, adapter, reactor_thread):
    assert gw.pop("bob", "bob-pw").startswith(b"+OK Logged in, 0 messages")
    session = reactor_thread.call(adapter.logon, "bob", "bob-pw", "imap", "127.0.0.1")
    inbox = reactor_thread.call(session.store().inbox)
    reactor_thread.call(inbox.append, MESSAGE)
    reactor_thread.call(session.logoff)
    slapd.ldapmodify(SUFFIX, f"dn: uid=bob,{PEOPLE}\nchangetype: modrdn\nnewrdn: uid=robert\ndeleteoldrdn: 1\n")
    assert gw.pop("bob", "bob-pw") == b"-ERR [AUTH] Authentication failed."
    assert gw.pop("robert", "bob-pw").startswith(b"+OK Logged in, 1 messages")
    users = gw.users()
    assert "robert" in users and "bob" not in users


def test_feature_attribute_switches_protocols(gw, slapd):
    dn = f"uid=dave,{PEOPLE}"
    assert gw.pop("dave", "dave-pw").startswith(b"+OK")
    slapd.ldapmodify(SUFFIX, f"dn: {dn}\nchangetype: modify\nadd: groupwareDisabledFeatures\n"
                             "groupwareDisabledFeatures: pop3\n")
    assert gw.pop("dave", "dave-pw") == b"-ERR [AUTH] POP3 access is disabled for this account."
    assert "-pop3" in gw.server.cli("user", "features", "dave")
    slapd.ldapmodify(SUFFIX, f"dn: {dn}\nchangetype: modify\ndelete: groupwareDisabledFeatures\n-\n"
                             "add: groupwareEnabledFeatures\ngroupwareEnabledFeatures: imap\n")
    assert gw.pop("dave", "dave-pw") == b"-ERR [AUTH] POP3 access is disabled for this account."
    slapd.ldapmodify(SUFFIX, f"dn: {dn}\nchangetype: modify\nadd: groupwareEnabledFeatures\n"
                             "groupwareEnabledFeatures: pop3\n")
    assert gw.pop("dave", "dave-pw").startswith(b"+OK Logged in")


def test_disappeared_user_cannot_log_in_and_is_orphaned_by_sync(gw, slapd):
    assert gw.pop("carol", "carol-pw").startswith(b"+OK Logged in")
    slapd.ldapdelete(SUFFIX, f"uid=carol,{PEOPLE}")
    assert gw.pop("carol", "carol-pw") == b"-ERR [AUTH] Authentication failed."
    before = gw.users()
    plan = gw.server.cli("user", "sync", "--dry-run")
    assert "orphan\tcarol\tgone from the directory; store kept" in plan
    assert re.search(r"^create\tstar\tStar Name <star@example\.org>$", plan, re.M)
    assert "\talice\t" not in plan  # nothing to change for alice
    assert plan.splitlines()[-1].startswith("dry run, would change: ")
    assert gw.users() == before  # a dry run changes nothing
    done = gw.server.cli("user", "sync")
    assert "orphan\tcarol" in done
    users = gw.users()
    assert users["carol"] == "orphaned" and users["star"] == "active" and users["nomail"] == "active"
    assert gw.server.cli("user", "sync", "--dry-run").splitlines() == ["dry run, would change: nothing to change"]
    assert gw.pop("carol", "carol-pw") == b"-ERR [AUTH] Authentication failed."
    # Coming back (restored with the same entryUUID is not possible here: a new entry is a new person).
    slapd.ldapadd(SUFFIX, f"dn: uid=carol,{PEOPLE}\nobjectClass: inetOrgPerson\nuid: carol\ncn: Carol New\n"
                          "sn: New\nuserPassword: carol-pw\n")
    assert gw.pop("carol", "carol-pw").startswith(b"+OK Logged in, 0 messages")
    users = gw.users()
    assert users["carol"] == "active"
    assert [state for name, state in users.items() if name.startswith("carol~orphan")] == ["orphaned"]


def test_unreachable_directory_is_unavailable_then_recovers(gw, slapd, adapter, reactor_thread):
    assert gw.pop("alice", "alice-pw").startswith(b"+OK")  # warm pool
    failures = gw.log().count("login failed")
    slapd.stop()
    try:
        assert gw.pop("alice", "alice-pw") == b"-ERR [SYS/TEMP] Temporary failure, please try again later."
        assert gw.pop("alice", "wrong") == b"-ERR [SYS/TEMP] Temporary failure, please try again later."
        assert logon_error(reactor_thread, adapter, "alice", "alice-pw") is Unavailable
        assert "[UNAVAILABLE]" in gw.imap("alice", "alice-pw")
        assert gw.caldav("star", "star-pw") == 503
        assert gw.log().count("login failed") == failures  # never counted as a bad password
    finally:
        slapd.start()
    assert gw.pop("alice", "alice-pw").startswith(b"+OK Logged in")
    assert gw.imap("alice", "alice-pw") == "OK"
    assert gw.caldav("star", "star-pw") == 207


# -- Active Directory shaped tree, over ldaps:// with the CA checked


@pytest.fixture(scope="module")
def ad_gw(slapd, tmp_path_factory):
    gateway = Gateway(str(tmp_path_factory.mktemp("adgw")), ad_options(slapd))
    with gateway.server:
        yield gateway


def test_ad_login_by_samaccountname_with_group_and_rename(ad_gw, slapd):
    assert ad_gw.pop("jdoe", "jdoe-pw").startswith(b"+OK Logged in, 0 messages")
    assert ad_gw.pop("JDOE", "jdoe-pw").startswith(b"+OK Logged in")
    assert ad_gw.pop("jdoe", "asmith-pw") == b"-ERR [AUTH] Authentication failed."
    # Not in "Mail Users" (memberOf): refused like a bad password.
    assert ad_gw.pop("outsider", "outsider-pw") == b"-ERR [AUTH] Authentication failed."
    plan = ad_gw.server.cli("user", "sync", "--dry-run")
    assert "create\tasmith\tAnna Smith <asmith@corp.example> groups: Mail Users" in plan
    # AD renames change sAMAccountName, not the DN; objectGUID keeps the store.
    slapd.ldapmodify(AD_SUFFIX, f"dn: cn=John Doe,cn=Users,{AD_SUFFIX}\nchangetype: modify\n"
                                "replace: sAMAccountName\nsAMAccountName: john.doe\n")
    assert ad_gw.pop("john.doe", "jdoe-pw").startswith(b"+OK Logged in")
    users = ad_gw.users()
    assert "john.doe" in users and "jdoe" not in users


# -- the backend itself: TLS and certificate checks


@pytest.fixture
def storage(tmp_path):
    from server.storage.store import Storage

    s = Storage(f"sqlite:///{tmp_path}/store.db")
    s.migrate()
    yield s
    s.close()


def backend(storage, **options):
    from server.users.ldap import LdapUserBackend

    values = {"ldap_bind_user": READER_DN, "ldap_bind_passwd": READER_PW, "ldap_search_base": SUFFIX,
              "ldap_network_timeout": "3", "ldap_timeout": "5", **options}
    return LdapUserBackend(Config(values, "/nonexistent"), storage)


def test_ldaps_and_starttls_check_the_certificate(slapd, storage):
    for options in ({"ldap_uri": slapd.ldaps_uri, "ldap_tls_cacert_file": slapd.ca},
                    {"ldap_uri": slapd.uri, "ldap_starttls": "yes", "ldap_tls_cacert_file": slapd.ca}):
        b = backend(storage, **options)
        assert b.authenticate("alice", "alice-pw")["email"] == "alice@example.org"
        with pytest.raises(AuthFailed):
            b.authenticate("alice", "wrong")
        b.close()
    assert "STARTTLS" in slapd.log_text()
    # Without our CA the certificate is not trusted: that is an outage, never a bad password.
    # Nor is a certificate for another name, though our CA signed it.
    for options in ({"ldap_uri": slapd.ldaps_uri}, {"ldap_uri": slapd.uri, "ldap_starttls": "yes"},
                    {"ldap_uri": slapd.wrong_name_uri, "ldap_tls_cacert_file": slapd.ca}):
        b = backend(storage, **options)
        with pytest.raises(Unavailable):
            b.authenticate("alice", "alice-pw")
        b.close()


def test_wrong_service_password_is_unavailable(slapd, storage):
    b = backend(storage, ldap_uri=slapd.uri, ldap_bind_passwd="nope")
    with pytest.raises(Unavailable):
        b.authenticate("alice", "alice-pw")


def test_escape_filter_value():
    from server.users.ldap import escape_filter_value

    assert escape_filter_value("a*b(c)d\\e\0") == "a\\2ab\\28c\\29d\\5ce\\00"
    assert escape_filter_value("Jürgen") == "Jürgen"


def test_sample_configs_name_only_known_options():
    for name in ("ldap.cfg", "ldap.ad.cfg"):
        with open(os.path.join(ROOT, "conf", name), encoding="utf-8") as fp:
            values = parse_config_text(fp.read(), name)
        assert values and all(key in OPTIONS and OPTIONS[key].file == "ldap.cfg" for key in values)


def test_login_group_by_group_search(slapd, storage):
    b = backend(storage, ldap_uri=slapd.uri, ldap_login_group="mail-users")
    assert b.authenticate("alice", "alice-pw")["name"] == "alice"
    with pytest.raises(AuthFailed):
        b.authenticate("dave", "dave-pw")  # right password, not a member
    membership = b.groups()
    alice = b.find("alice")
    assert b.groups_of(alice, membership) == ["mail-users"]
    b.close()


def test_sync_reads_the_directory_page_by_page(slapd, storage):
    paged = backend(storage, ldap_uri=slapd.uri, ldap_page_size="2").all_users()
    whole = backend(storage, ldap_uri=slapd.uri).all_users()
    assert len(paged) > 2 and sorted(u.name for u in paged) == sorted(u.name for u in whole)


def test_a_user_made_with_user_add_is_taken_over_by_the_directory(slapd, storage):
    # Moving from user_plugin = db to ldap keeps everyone's mail.
    made = storage.create_user("alice", "")
    user = backend(storage, ldap_uri=slapd.uri).authenticate("alice", "alice-pw")
    assert user["id"] == made["id"] and user["store_id"] == made["store_id"]
    assert user["external_id"].startswith("ldap:") and user["email"] == "alice@example.org"


def test_sync_needs_a_directory(tmp_path):
    cmd = [sys.executable, "-m", "groupware.cli", "user", "sync", "--config-dir", os.path.join(ROOT, "conf"),
           "--data-dir", str(tmp_path)]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1
    assert "user_plugin db has no directory to sync" in result.stderr


def test_delivery_finds_users_by_their_mail_attribute(slapd, storage):
    from server.recipients import resolve_recipient
    from shared.errors import NotFound, Unavailable

    b = backend(storage, ldap_uri=slapd.uri)
    user = b.lookup_address("ALICE@Example.org")  # mail matches case-insensitively
    assert user["name"] == "alice" and storage.get_user("alice")["id"] == user["id"]  # made local on first sight
    assert resolve_recipient(b, "alice+news@example.org", "+") == (user, "news")
    assert b.lookup_address("alice@example.net") is None
    assert b.lookup_address("*@example.org") is None  # escaped, not a wildcard
    with pytest.raises(NotFound):
        resolve_recipient(b, "nobody@example.org", "+")
    b.close()
    down = backend(storage, ldap_uri="ldap://127.0.0.1:1")
    with pytest.raises(Unavailable):
        down.lookup_address("alice@example.org")


def test_quota_levels_come_from_directory_attributes(slapd, storage):
    """ldap_quota_*_attribute name the attributes holding a user's own levels, read at logon
    and by sync, in units of ldap_quota_multiplier (Kopano's MB by default)."""
    dn = f"uid=nomail,{PEOPLE}"
    slapd.ldapmodify(SUFFIX, f"dn: {dn}\nchangetype: modify\nadd: employeeNumber\nemployeeNumber: 5\n-\n"
                             "add: roomNumber\nroomNumber: 12\n")
    try:
        b = backend(storage, ldap_uri=slapd.uri, ldap_quota_soft_attribute="employeeNumber",
                    ldap_quota_hard_attribute="roomNumber")
        storage.quota_defaults = storage.quota_defaults._replace(warn=1024, hard=99)
        user = b.authenticate("nomail", "nomail-pw")
        limits = storage.store_usage(user["store_id"]).limits
        # From the directory: soft and hard; warn (no attribute configured) stays the server's.
        assert (limits.warn, limits.soft, limits.hard) == (1024, 5 * 1024 * 1024, 12 * 1024 * 1024)
        # A value gone from the entry hands the level back to the server; sync sees the change.
        slapd.ldapmodify(SUFFIX, f"dn: {dn}\nchangetype: modify\ndelete: roomNumber\n")
        from server.users.directory import apply_sync, plan_sync
        changes = plan_sync(b, storage)
        assert [c.action for c in changes if c.name == "nomail"] == ["update"]
        apply_sync(changes, storage)
        assert storage.store_usage(user["store_id"]).limits.hard == 99
        b.close()
    finally:
        slapd.ldapmodify(SUFFIX, f"dn: {dn}\nchangetype: modify\ndelete: employeeNumber\n")


def test_directory_groups_give_folder_rights(slapd, storage):
    """A folder ACL may name a directory group ("$mail-users"): its members get the rights,
    whether the directory lists members on the group or groups on the user (AD's memberOf)."""
    from server.storage.acl import Grantee

    b = backend(storage, ldap_uri=slapd.uri)
    assert b.groups_of_login("alice") == ["mail-users"]
    assert b.groups_of_login("dave") == [] and b.groups_of_login("nobody") == []
    alice, dave = b.lookup("alice"), b.lookup("dave")
    owner = storage.create_user("owner", "h")
    storage.directory_groups = b.groups_of_login
    folder = storage.create_folder(owner["store_id"], None, "Team")["id"]
    storage.set_acl(folder, Grantee.of_group("Mail-Users"), "lrs")
    assert storage.folder_rights(alice["id"], folder) == "lrs"
    assert storage.folder_rights(dave["id"], folder) == ""
    assert [f["id"] for f in storage.shared_folders(alice["id"])] == [folder]
    b.close()
    ad = backend(storage, **ad_options(slapd))
    # asmith: jdoe may have been renamed by the test above.
    assert ad.groups_of_login("asmith") == ["Mail Users"] and ad.groups_of_login("outsider") == []
    ad.close()
