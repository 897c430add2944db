"""Mail delivery at the store: the delivery right, recipients, deliverMessage, duplicate
suppression, vacation records and the users' Sieve scripts, against the real store server
on SQLite and MariaDB; the wire is checked against the XSD, the API through the adapter."""
from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import text
from twisted.internet import defer

from adapter_client import make_adapter
from harness import ROOT, USERS, StoreProcess, settings
from old_schema import on_an_old_schema
from shared import codec
from shared.errors import BadRequest, Conflict, Forbidden, NotFound, Quota, TooLarge
from shared.features import FEATURES, SIEVE
from shared.model import Delivery, DeliveryFolder, DeliveryResult, Recipient
from soap_client import SoapClient, post_as, schema

pytestmark = pytest.mark.database_engines("sqlite", "mariadb")

XSD = schema()
SECRET = "s3cret-for-delivery"
WINDOW = 4  # delivery_duplicate_window of the module's server, seconds
RECIPIENTS = [f"r{i:02d}" for i in range(10)]
ALL_USERS = {**USERS, "carol": "carol-secret", **{name: "pw-" + name for name in RECIPIENTS}}
MESSAGE = (b"From: Dave <dave@example.net>\r\nTo: alice@example.org\r\nSubject: Delivered\r\n"
           b"Message-ID: <delivered-1@example.net>\r\n\r\nA body line.\r\n")


def message(n: str, size: int = 0) -> bytes:
    body = b"x" * size + b"\r\n" if size else b"Hello.\r\n"
    return (b"From: Dave <dave@example.net>\r\nTo: someone@example.org\r\nSubject: Message " + n.encode()
            + b"\r\nMessage-ID: <" + n.encode() + b"@example.net>\r\n\r\n" + body)


@pytest.fixture(scope="module")
def server(database_options, open_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("delivery-store")
    secret_file = data / "delivery.secret"
    secret_file.write_text(SECRET + "\n")
    options = {**database_options, "server_socket": os.path.join(open_dir, "server.sock"),
               "server_pipe_mode": "0666", "delivery_uids": "daemon",
               "delivery_secret_file": str(secret_file), "delivery_duplicate_window": str(WINDOW),
               "max_sieve_scripts": "3", "max_sieve_script_size": "1K", "max_message_size": "256K",
               "max_deliveries_per_message": "20"}
    with StoreProcess(data, options, ALL_USERS, {"carol": {SIEVE: False}}) as proc:
        yield proc


@pytest.fixture
def delivery(server) -> SoapClient:
    """A delivery session over the UNIX socket (this test runs as root: a trusted peer)."""
    c = SoapClient(server.connect("unix"), XSD)
    c.session_id = codec.field(c.call("logonDelivery"), "sessionId")
    yield c
    c.http.close()


def user_client(server, name: str, protocol: str = "imap") -> SoapClient:
    c = SoapClient(server.connect("unix"), XSD)
    c.logon(name, ALL_USERS[name], protocol)
    return c


@pytest.fixture
def adapter(reactor_thread, server):
    a = make_adapter(reactor_thread, server, inline_source_limit="16k")
    yield a
    reactor_thread.call(a.close)


@pytest.fixture
def deliverer(reactor_thread, adapter):
    session = reactor_thread.call(adapter.delivery_logon)
    yield session
    reactor_thread.call(session.logoff)


def storage_of(server):
    from server.service import open_storage
    return open_storage(server.config())


# -- the delivery right -------------------------------------------------------------------------

def run_as(account: str, socket_path: str) -> str:
    """logonDelivery from a process running as `account`: the fault code, or "granted"."""
    _, request = codec.request("logonDelivery")
    out = post_as(account, socket_path, request)
    try:
        codec.response_body(out, "logonDelivery")
    except Forbidden:
        return "forbidden"
    return "granted"


def test_the_delivery_right_follows_the_peer_uid_on_the_unix_socket(server):
    assert run_as("nobody", server.socket_path) == "forbidden"
    assert run_as("daemon", server.socket_path) == "granted"  # delivery_uids = daemon
    assert "delivery right refused to uid 65534" in server.log()


def test_over_tcp_only_the_secret_gives_the_delivery_right(server):
    c = SoapClient(server.connect("tcp"), XSD)
    with pytest.raises(Forbidden):
        c.call("logonDelivery")
    with pytest.raises(Forbidden):
        c.call("logonDelivery", ("deliverySecret", "wrong"))
    with pytest.raises(Forbidden):
        c.call("logonDelivery", ("deliverySecret", SECRET + "x"))
    c.session_id = codec.field(c.call("logonDelivery", ("deliverySecret", SECRET)), "sessionId")
    answer = c.call("resolveRecipient", ("address", "alice@example.org"))
    assert codec.field(answer, "user") == "alice"
    c.http.close()


def test_a_user_session_may_not_deliver(server):
    alice = user_client(server, "alice")
    for op, fields in (("resolveRecipient", [("address", "bob@example.org")]),
                       ("listDeliveryFolders", [("user", "bob")]),
                       ("getActiveSieveScript", [("user", "bob")]),
                       ("vacationResponse", [("user", "bob"), ("sender", "a@b"), ("handle", "h"),
                                             ("seconds", 60)])):
        with pytest.raises(Forbidden):
            alice.call(op, *fields)
    d = codec.element("delivery")
    codec.add(d, "user", "bob")
    with pytest.raises(Forbidden):
        alice.call("deliverMessage", ("sender", "a@b"), ("source", MESSAGE), ("delivery", d))
    alice.http.close()


def test_a_delivery_session_may_do_nothing_else(server, delivery):
    for op in ("whoami", "listFolders", "listSieveScripts", "listSubscriptions"):
        with pytest.raises(Forbidden):
            delivery.call(op)
    delivery.call("logoff")


# -- recipients ---------------------------------------------------------------------------------

def test_recipients_resolve_case_insensitively_with_their_detail(reactor_thread, deliverer):
    def resolve(address):
        return reactor_thread.call(deliverer.resolve, address)

    alice = resolve("alice@example.org")
    assert alice == Recipient("alice", alice.store_id, None, "alice@example.org") and alice.store_id > 0
    assert resolve("ALICE@Example.ORG").user == "alice"
    assert resolve("<alice@example.org>").user == "alice"
    assert resolve('"alice"@example.org').user == "alice"
    tagged = resolve("Alice+Lists.Dev@example.org")
    assert (tagged.user, tagged.detail, tagged.address) == ("alice", "Lists.Dev", "Alice+Lists.Dev@example.org")
    assert resolve("bob+@example.org").detail == ""
    for unknown in ("nobody@example.org", "alice@example.com", "alice", "+x@example.org",
                    "alice%example.org@example.org", "example.org!alice@example.org", "@example.org"):
        with pytest.raises(NotFound):
            resolve(unknown)


def test_folders_and_active_script_of_a_recipient(server, reactor_thread, deliverer, delivery):
    folders = reactor_thread.call(deliverer.folders, "alice")
    assert all(isinstance(f, DeliveryFolder) for f in folders)
    by_name = {f.name: f for f in folders}
    assert by_name["Inbox"].role == "inbox" and by_name["Junk"].role == "junk"
    assert "Calendar" not in by_name and "Contacts" not in by_name  # mail folders only
    with pytest.raises(NotFound):
        reactor_thread.call(deliverer.folders, "nobody")
    both = reactor_thread.call(deliverer.folders_of, ["alice", "bob"])  # one call for a message's users
    assert both[0] == folders and [f.role for f in both[1] if f.role] == [f.role for f in folders if f.role]
    with pytest.raises(NotFound):
        reactor_thread.call(deliverer.folders_of, ["bob", "nobody"])
    assert reactor_thread.call(deliverer.active_script, "bob") is None
    bob = user_client(server, "bob")
    bob.call("putSieveScript", ("name", "main"), ("script", 'require "fileinto";\r\nkeep;\r\n'))
    assert codec.field(delivery.call("getActiveSieveScript", ("user", "bob")), "script") is None
    bob.call("setActiveSieveScript", ("name", "main"))
    assert reactor_thread.call(deliverer.active_script, "bob") == 'require "fileinto";\r\nkeep;\r\n'
    bob.call("setActiveSieveScript")
    assert reactor_thread.call(deliverer.active_script, "bob") is None
    bob.call("deleteSieveScript", ("name", "main"))
    bob.http.close()


# -- deliverMessage -----------------------------------------------------------------------------

def test_a_delivered_message_is_stored_byte_for_byte_with_its_flags(server, reactor_thread, deliverer):
    results = reactor_thread.call(deliverer.deliver, MESSAGE, "dave@example.net",
                                  [Delivery("alice", flags=("\\Seen", "$Label1"))])
    assert len(results) == 1 and results[0].status == "stored"
    alice = user_client(server, "alice")
    inbox = alice.inbox_id()
    assert results[0].folder_id == inbox
    item = alice.call("getItem", ("folderId", inbox), ("uid", results[0].uid),
                      ("columns", "uid flags keywords subject source"))
    _, columns = codec.table_from_xml(item.find(codec.gw("table")))
    assert base64.b64decode(columns["source"][0]) == MESSAGE
    assert columns["subject"] == ["Delivered"]
    assert columns["flags"] == [1] and columns["keywords"] == ["$Label1"]
    alice.http.close()


def test_ten_recipients_share_one_blob(server, reactor_thread, deliverer):
    source = message("shared-blob")
    results = reactor_thread.call(deliverer.deliver, source, "dave@example.net",
                                  [Delivery(name) for name in RECIPIENTS])
    assert [r.status for r in results] == ["stored"] * 10
    assert len({r.folder_id for r in results}) == 10
    storage = storage_of(server)
    try:
        keys = {storage.get_item(r.folder_id, r.uid, ["size"])["blob_key"] for r in results}
        assert len(keys) == 1
        with storage.blobs.open(keys.pop()) as fp:
            assert fp.read() == source
    finally:
        storage.close()


def test_targets_by_folder_id_role_and_path(server, reactor_thread, deliverer):
    folders = {f.name: f for f in reactor_thread.call(deliverer.folders, "alice")}
    bob_folders = {f.name: f for f in reactor_thread.call(deliverer.folders, "bob")}
    results = reactor_thread.call(deliverer.deliver, message("targets"), "dave@example.net", [
        Delivery("alice", folder_id=folders["Archive"].id),
        Delivery("alice", role="junk"),
        Delivery("alice", path=("Lists", "dev"), create=True),
        Delivery("alice", path=("Nowhere",)),                       # not created: the inbox
        Delivery("alice", folder_id=bob_folders["Archive"].id),     # not hers: the inbox
        Delivery("alice", path=("Bad/name",), create=True),          # cannot be made: the inbox
        Delivery("nobody"),
        Delivery("bob", role="archive", path=("ignored",)),
    ])
    after = {f.name: f for f in reactor_thread.call(deliverer.folders, "alice")}
    assert after["dev"].parent_id == after["Lists"].id
    assert "Nowhere" not in after and "Bad/name" not in after
    assert [r.status for r in results] == ["stored"] * 6 + ["notFound", "stored"]
    assert [r.folder_id for r in results] == [folders["Archive"].id, folders["Junk"].id, after["dev"].id,
                                              folders["Inbox"].id, folders["Inbox"].id, folders["Inbox"].id,
                                              None, bob_folders["Archive"].id]
    # A second delivery down the same path finds the folders made by the first.
    again = reactor_thread.call(deliverer.deliver, message("targets-2"), "dave@example.net",
                                [Delivery("alice", path=("Lists", "dev"), create=True)])
    assert again[0].folder_id == after["dev"].id and again[0].uid == 2


def test_a_duplicate_within_the_window_is_stored_once(reactor_thread, deliverer):
    source = message("dup")
    first = reactor_thread.call(deliverer.deliver, source, "dave@example.net", [
        Delivery("bob", message_id="<dup@example.net>"),
        Delivery("bob", role="archive", message_id="<dup@example.net>"),  # one delivery, two copies
        Delivery("alice", message_id="<dup@example.net>")])
    assert [r.status for r in first] == ["stored", "stored", "stored"]
    again = reactor_thread.call(deliverer.deliver, source, "dave@example.net", [
        Delivery("bob", message_id="<dup@example.net>"), Delivery("carol", message_id="<dup@example.net>"),
        Delivery("bob", message_id="<other@example.net>")])
    assert again == [DeliveryResult("duplicate"), again[1], again[2]]
    assert again[1].status == again[2].status == "stored"
    time.sleep(WINDOW + 1)
    after = reactor_thread.call(deliverer.deliver, source, "dave@example.net",
                                [Delivery("bob", message_id="<dup@example.net>")])
    assert after[0].status == "stored"


def blob_files(server) -> int:
    return sum(len(files) for _, _, files in os.walk(os.path.join(server.data_dir, "attachments")))


def test_concurrent_deliveries_of_one_message_id_store_it_once(server, reactor_thread, deliverer):
    def race():
        return defer.gatherResults([deliverer.deliver(message("race"), "dave@example.net",
                                                      [Delivery("alice", message_id="<race@example.net>")])
                                    for _ in range(4)])

    before = blob_files(server)
    statuses = sorted(results[0].status for results in reactor_thread.call(race))
    assert statuses == ["duplicate", "duplicate", "duplicate", "stored"]
    assert blob_files(server) == before + 1  # the duplicates' blobs are not kept


def test_large_sources_go_through_the_upload_and_the_size_limit_holds(server, reactor_thread, deliverer):
    big = message("big", 100 * 1024)  # above the adapter's inline limit: uploaded first
    results = reactor_thread.call(deliverer.deliver, big, "dave@example.net", [Delivery("alice"), Delivery("bob")])
    assert [r.status for r in results] == ["stored", "stored"]
    with pytest.raises(TooLarge):
        reactor_thread.call(deliverer.deliver, message("huge", 300 * 1024), "dave@example.net",
                            [Delivery("alice")])
    path = os.path.join(server.data_dir, "big.eml")
    with open(path, "wb") as fp:
        fp.write(big)
    assert reactor_thread.call(deliverer.deliver, path, "", [Delivery("carol")])[0].status == "stored"


def test_bad_deliveries_get_bad_request(server, delivery):
    def deliver(*elements, source=MESSAGE):
        return delivery.call("deliverMessage", ("sender", "dave@example.net"), ("source", source),
                             ("delivery", list(elements)))

    def target(user="alice", **fields):
        el = codec.element("delivery")
        codec.add(el, "user", user)
        for name, value in fields.items():
            codec.add(el, name, value)
        return el

    with pytest.raises(BadRequest):
        deliver(target(flags="\\Bogus"))
    with pytest.raises(BadRequest):
        deliver(*[target() for _ in range(21)])  # max_deliveries_per_message = 20
    unchecked = SoapClient(delivery.http)  # sends what the XSD forbids
    with pytest.raises(BadRequest):
        unchecked.call("deliverMessage", ("sessionId", delivery.session_id), ("sender", "x@y"),
                       ("source", MESSAGE))
    deep = target()
    for i in range(33):
        codec.add(deep, "path", f"level{i}")
    codec.add(deep, "create", "true")
    # Deeper than max_folder_depth (32): nothing is created, the message goes to the Inbox.
    result = unchecked.call("deliverMessage", ("sessionId", delivery.session_id), ("sender", "x@y"),
                            ("source", MESSAGE), ("delivery", [deep])).find(codec.gw("result"))
    assert codec.field(result, "status") == "stored"
    assert int(codec.field(result, "folderId")) == user_client(server, "alice").inbox_id()
    # The session is still good after each refusal.
    assert codec.field(deliver(target()).find(codec.gw("result")), "status") == "stored"


def test_a_delivery_wakes_a_waiting_client_at_once(server, reactor_thread, deliverer):
    bob = user_client(server, "bob")
    inbox = bob.inbox_id()
    listing = bob.call("listFolders")
    modseq = next(int(codec.field(f, "highestModseq")) for f in listing.iterchildren(codec.gw("folder"))
                  if int(codec.field(f, "id")) == inbox)
    answer = {}

    def wait() -> None:
        watch = codec.element("watch", folderId=str(inbox), modseq=str(modseq))
        answer["changed"] = bob.call("waitForChanges", ("watch", [watch]), ("timeout", 20))
        answer["at"] = time.monotonic()

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.5)
    sent = time.monotonic()
    reactor_thread.call(deliverer.deliver, message("push"), "dave@example.net", [Delivery("bob")])
    waiter.join(20)
    changed = answer["changed"].findall(codec.gw("changed"))
    assert [int(c.get("folderId")) for c in changed] == [inbox]
    assert answer["at"] - sent < 1.0
    bob.http.close()


def test_a_delivery_session_logs_on_again_when_the_store_forgot_it(reactor_thread, deliverer):
    stale = deliverer.id
    reactor_thread.call(deliverer.client.call, "logoff", [("sessionId", stale)])
    assert reactor_thread.call(deliverer.resolve, "bob@example.org").user == "bob"
    assert deliverer.id != stale


# -- vacation -----------------------------------------------------------------------------------

def test_vacation_replies_go_once_per_sender_and_period(reactor_thread, deliverer, delivery):
    def due(sender, handle="away", seconds=3600, user="alice"):
        return reactor_thread.call(deliverer.vacation_due, user, sender, handle, seconds)

    assert due("dave@example.net") is True
    assert due("dave@example.net") is False
    assert due("DAVE@example.net") is False  # the same sender
    assert due("erin@example.net") is True
    assert due("dave@example.net", handle="other") is True
    assert due("dave@example.net", user="bob") is True
    assert due("dave@example.net", seconds=0) is True  # no period: always
    assert due("frank@example.net", seconds=1) is True
    time.sleep(1.5)
    assert due("frank@example.net", seconds=1) is True
    with pytest.raises(NotFound):
        due("dave@example.net", user="nobody")
    answer = delivery.call("vacationResponse", ("user", "bob"), ("sender", "x@example.net"),
                           ("handle", "h"), ("seconds", 86400))
    assert codec.field(answer, "due") == "true"
    with pytest.raises(BadRequest):
        delivery.call("vacationResponse", ("user", "bob"), ("sender", "x@example.net"), ("handle", "h"),
                      ("seconds", -1))


# -- the users' Sieve scripts -------------------------------------------------------------------

def test_sieve_scripts_through_the_users_session(reactor_thread, adapter):
    session = reactor_thread.call(adapter.logon, "r09", ALL_USERS["r09"], SIEVE, "192.0.2.1")

    def call(name, *args):
        return reactor_thread.call(getattr(session, name), *args)

    assert call("sieve_scripts") == []
    call("put_sieve_script", "vacation", "keep;\r\n")
    call("put_sieve_script", "Filters ü", 'require "fileinto";\r\nfileinto "Junk";\r\n')
    assert call("sieve_scripts") == [("Filters ü", False), ("vacation", False)]
    call("activate_sieve_script", "vacation")
    call("put_sieve_script", "vacation", "discard;\r\n")  # replaced, still active
    assert call("sieve_scripts") == [("Filters ü", False), ("vacation", True)]
    assert call("sieve_script", "vacation") == "discard;\r\n"
    call("rename_sieve_script", "vacation", "away")
    assert call("sieve_scripts") == [("Filters ü", False), ("away", True)]
    with pytest.raises(Conflict):
        call("delete_sieve_script", "away")
    with pytest.raises(Conflict):
        call("rename_sieve_script", "Filters ü", "away")
    call("activate_sieve_script", "Filters ü")
    assert call("sieve_scripts") == [("Filters ü", True), ("away", False)]
    call("delete_sieve_script", "away")
    call("activate_sieve_script", None)
    assert call("sieve_scripts") == [("Filters ü", False)]
    for missing in (("sieve_script", "away"), ("delete_sieve_script", "away"),
                    ("activate_sieve_script", "away"), ("rename_sieve_script", "away", "x")):
        with pytest.raises(NotFound):
            call(*missing)
    reactor_thread.call(session.logoff)


def test_sieve_script_limits(server):
    c = user_client(server, "r08", SIEVE)
    with pytest.raises(TooLarge):
        c.call("putSieveScript", ("name", "big"), ("script", "#" * 1025))  # max_sieve_script_size = 1K
    with pytest.raises(TooLarge):
        c.call("putSieveScript", ("name", "big"), ("script", "ü" * 513))  # octets count
    c.call("putSieveScript", ("name", "fits"), ("script", "#" * 1024))
    for name in ("", "x" * 129, "tab\there", "nul\x00", "del\x7f", "c1\x85", "line\u2028sep"):
        with pytest.raises(BadRequest):
            c.call("putSieveScript", ("name", name), ("script", "keep;"))
    c.call("putSieveScript", ("name", "y" * 128), ("script", "keep;"))
    c.call("putSieveScript", ("name", "third"), ("script", "keep;"))
    with pytest.raises(Quota):
        c.call("putSieveScript", ("name", "fourth"), ("script", "keep;"))  # max_sieve_scripts = 3
    c.call("putSieveScript", ("name", "third"), ("script", "discard;"))  # replacing is no new script
    with pytest.raises(BadRequest):
        c.call("renameSieveScript", ("name", "third"), ("newName", "a\x01"))
    names = [codec.field(s, "name") for s in c.call("listSieveScripts").iterchildren(codec.gw("script"))]
    assert names == ["fits", "third", "y" * 128]
    c.http.close()


def test_the_sieve_feature_switches_managesieve_logons(server):
    c = SoapClient(server.connect("unix"), XSD)
    with pytest.raises(Forbidden):
        c.logon("carol", ALL_USERS["carol"], SIEVE)
    answer = c.logon("carol", ALL_USERS["carol"], "imap")
    assert SIEVE not in codec.field(answer.find(codec.gw("user")), "features").split()
    answer = c.logon("alice", USERS["alice"], SIEVE)
    assert codec.field(answer.find(codec.gw("user")), "features").split() == list(FEATURES)
    c.http.close()


# -- storage and migration ----------------------------------------------------------------------

def test_migration_0012_keeps_users_and_switches_sieve_on(st, tmp_path):
    def run(old, conn, store_id):
        conn.execute(text("UPDATE users SET email = 'Old@Example.org', feature_pop3 = 0 WHERE name = 'old'"))

        def checks():
            user = old.get_user("old")
            assert user["features"] == {"imap": True, "pop3": False, "caldav": True, "sieve": True}
            assert [u["name"] for u in old.users_by_email("old@example.ORG")] == ["old"]
            assert old.sieve_scripts(user["id"]) == []
            old.put_sieve_script(user["id"], "s", "keep;")
            old.activate_sieve_script(user["id"], "s")
            assert old.active_sieve_script(user["id"]) == "keep;"
            assert old.vacation_due(user["id"], "a@b", "h", 60) is True
            assert old.vacation_due(user["id"], "a@b", "h", 60) is False
        return checks

    on_an_old_schema(st, tmp_path, "0011", run)


def test_deleting_a_user_removes_their_scripts_and_records(st):
    user = st.create_user("gone-" + os.urandom(3).hex(), "hash", "", "gone@example.org")
    st.put_sieve_script(user["id"], "s", "keep;")
    st.vacation_due(user["id"], "a@b", "h", 60)
    key = st.blobs.put_bytes(MESSAGE)
    from server.storage import NewMessage
    from server.storage.delivery import DeliveryTarget
    outcomes, _ = st.deliver(NewMessage(key, len(MESSAGE), None, 0, (), {}),
                             [DeliveryTarget(user["name"], message_id="<m@x>")], 3600)
    assert outcomes[0].status == "stored"
    st.delete_user(user["name"])
    with st.engine.connect() as conn:
        for table in ("sieve_scripts", "vacation_replies", "delivered_message_ids"):
            assert conn.execute(text(f"SELECT count(*) FROM {table} WHERE user_id = :u"),
                                {"u": user["id"]}).scalar() == 0


def test_addresses_of_the_db_backend(st):
    from server.recipients import resolve_recipient
    from server.users.db import DbUserBackend

    name = "pat" + os.urandom(3).hex()
    st.create_user(name, "hash", "", f"{name}@Example.org")
    st.create_user(name + "twin1", "hash", "", f"same.{name}@example.org")
    st.create_user(name + "twin2", "hash", "", f"SAME.{name}@example.org")
    backend = DbUserBackend(st)
    user, detail = resolve_recipient(backend, f"{name.upper()}-x+y@example.ORG", "+-")
    assert (user["name"], detail) == (name, "x+y")  # split at the first delimiter, as Postfix does
    with pytest.raises(NotFound):
        resolve_recipient(backend, f"same.{name}@example.org", "+")  # two users: never guessed
    with pytest.raises(NotFound):
        resolve_recipient(backend, f"{name}+x@example.org", "")  # no delimiter configured


def test_an_empty_secret_file_stops_the_server_at_start(tmp_path):
    empty = tmp_path / "empty.secret"
    empty.write_text("\n")
    done = subprocess.run([sys.executable, "-m", "server", "--data-dir", str(tmp_path / "var"),
                           *settings({"server_socket": str(tmp_path / "s.sock"),
                                      "delivery_secret_file": str(empty)})],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().endswith(f"python -m server: delivery_secret_file: {empty} is empty")


def test_message_ids_are_renewed_after_the_window_and_old_ones_removed(st, monkeypatch):
    from server.storage import NewMessage, delivery
    from server.storage.delivery import DeliveryTarget
    monkeypatch.setattr(delivery, "MESSAGE_ID_PURGE_SECONDS", 0)
    user = st.create_user("dups-" + os.urandom(3).hex(), "hash", "", "dups@example.org")

    def deliver(message_id: str, now: int) -> str:
        key = st.blobs.put_bytes(MESSAGE)
        outcomes, _ = st.deliver(NewMessage(key, len(MESSAGE), None, 0, (), {}),
                                 [DeliveryTarget(user["name"], message_id=message_id)], 60, now=now)
        return outcomes[0].status

    def recorded() -> int:
        with st.engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM delivered_message_ids WHERE user_id = :u"),
                                {"u": user["id"]}).scalar()

    assert [deliver("<a@x>", 1000), deliver("<a@x>", 1060), deliver("<a@x>", 1061)] == \
        ["stored", "duplicate", "stored"]
    assert deliver("<a@x>", 1100) == "duplicate"  # the record was renewed at 1061
    assert deliver("<b@x>", 1110) == "stored" and recorded() == 2
    assert deliver("<c@x>", 1200) == "stored" and recorded() == 1  # a and b are past the window


def test_a_batch_of_messages_is_one_commit_in_order(st):
    from server.storage import NewMessage
    from server.storage.delivery import DeliveryTarget
    user = st.create_user("batch-" + os.urandom(3).hex(), "hash", "", "batch@example.org")

    def new(message_id: str) -> tuple:
        key = st.blobs.put_bytes(MESSAGE)
        return NewMessage(key, len(MESSAGE), None, 0, (), {}), [DeliveryTarget(user["name"], message_id=message_id)]

    answers = st.deliver_many([new("<1@x>"), new("<2@x>"), new("<1@x>"), new("<3@x>")], 3600)
    statuses = [[o.status for o in outcomes] for outcomes, _ in answers]
    # A later message of the batch with a Message-ID an earlier one delivered is a duplicate.
    assert statuses == [["stored"], ["stored"], ["duplicate"], ["stored"]]
    uids = [outcomes[0].uid for outcomes, _ in answers if outcomes[0].uid is not None]
    assert uids == sorted(uids) and uids[-1] - uids[0] == 2  # the folder's uids taken in one step
    modseqs = {modseq for _, written in answers for modseq in written.values()}
    assert len(modseqs) == 1  # one commit: one new modseq for the folder


def test_deliver_messages_answers_each_message_for_itself(server, delivery):
    def one(source: bytes, *users: str):
        el = codec.element("message")
        codec.add(el, "sender", "dave@example.net")
        codec.add(el, "source", source)
        for user in users:
            target = codec.element("delivery")
            codec.add(target, "user", user)
            el.append(target)
        return el

    before = blob_files(server)
    answer = delivery.call("deliverMessages", ("message", [
        one(message("batch-a"), "alice", "bob"), one(message("too-big", 300 * 1024), "alice"),
        one(message("batch-b"), "nobody-here")]))
    assert blob_files(server) == before + 1  # no blob kept for a message stored nowhere
    first, big, unknown = answer.iterchildren(codec.gw("message"))
    assert [codec.field(r, "status") for r in first.iterchildren(codec.gw("result"))] == ["stored", "stored"]
    assert codec.field(big.find(codec.gw("error")), "code") == "tooLarge"  # max_message_size = 256K
    assert [codec.field(r, "status") for r in unknown.iterchildren(codec.gw("result"))] == ["notFound"]
    assert int(codec.field(first.find(codec.gw("result")), "folderId")) == user_client(server, "alice").inbox_id()
    with pytest.raises(BadRequest):  # max_deliveries_per_message = 20, for the call as a whole
        delivery.call("deliverMessages", ("message", [one(message(f"many-{i}"), *["alice"] * 10)
                                                      for i in range(3)]))
