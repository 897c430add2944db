"""Folder rights enforced by the store server over SOAP, letter by letter, and the admin
commands `groupware share`, `groupware public` and `groupware group` end to end."""
from __future__ import annotations

import json
import secrets
from collections.abc import Callable

import pytest

from harness import ServerProcess, run_groupware
from shared import codec
from shared import rights as R
from shared.errors import Forbidden, NotFound
from soap_client import SoapClient, logged_on

A, A_PASSWORD = "anna", "anna-secret-1"
B, B_PASSWORD = "bert", "bert-secret-2"
MESSAGE = b"From: x@example.org\r\nTo: anna@example.org\r\nSubject: shared\r\n\r\nHello.\r\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # Group changes by the CLI (another process) reach the rights at once.
    proc = ServerProcess(str(tmp_path_factory.mktemp("acl") / "var"), {"group_cache_ttl": "0"}).start()
    for name, password in ((A, A_PASSWORD), (B, B_PASSWORD)):
        proc.cli("user", "add", name, "--password-stdin", stdin=password + "\n")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def anna(server):
    client = logged_on(server, A, A_PASSWORD)
    yield client
    client.http.close()


@pytest.fixture(scope="module")
def bert(server):
    client = logged_on(server, B, B_PASSWORD)
    yield client
    client.http.close()


def admin(server, *args: str, check: bool = True):
    shared = {name: value for name, value in server.options.items()
              if not name.endswith("_listen") and name != "log_file"}
    return run_groupware(server.data_dir, *args, options=shared, check=check)


def create_folder(client: SoapClient, name: str, parent: int | None = None) -> int:
    fields = [("name", name + secrets.token_hex(3))] + ([("parentId", parent)] if parent else [])
    return int(codec.field(client.call("createFolder", *fields).find(codec.gw("folder")), "id"))


def append(client: SoapClient, folder: int) -> int:
    return int(codec.field(client.call("createMessage", ("folderId", folder), ("source", MESSAGE)), "uid"))


def store_id(client: SoapClient) -> int:
    return int(codec.field(client.call("whoami"), "storeId"))


def listed(client: SoapClient, *fields) -> set[int]:
    return {int(codec.field(f, "id")) for f in client.call("listFolders", *fields).iter(codec.gw("folder"))}


# One row per letter: the letters that are enough for the operation, and the operation
# (bert on a folder of anna's with one message; it raises when refused). `p` guards posting
# to a folder's address, which the store offers no operation for: it is kept and shown only.
def _list(anna, bert, f, uid):
    if f not in listed(bert, ("storeId", store_id(anna))):
        raise Forbidden("not listed")


def _flags(flag: str) -> Callable:
    return lambda anna, bert, f, uid: bert.call("setFlags", ("folderId", f), ("uids", str(uid)), ("mode", "add"),
                                                ("flags", flag))


CASES: list[tuple[str, str, Callable]] = [
    ("l", "l", _list),
    ("r", "r", lambda anna, bert, f, uid: bert.call("queryRows", ("folderId", f), ("columns", "uid"))),
    ("r", "r", lambda anna, bert, f, uid: bert.call("openStream", ("folderId", f), ("uid", uid))),
    ("s", "s", _flags("\\Seen")),
    ("w", "w", _flags("\\Flagged $Label1")),
    ("t", "t", _flags("\\Deleted")),
    ("i", "i", lambda anna, bert, f, uid: append(bert, f)),
    ("i", "ri", lambda anna, bert, f, uid: bert.call("copyItems", ("folderId", f), ("uids", str(uid)),
                                                     ("targetFolderId", f))),
    ("e", "te", lambda anna, bert, f, uid: bert.call("deleteItems", ("folderId", f), ("uids", str(append(anna, f))))),
    ("e", "rite", lambda anna, bert, f, uid: bert.call("moveItems", ("folderId", f), ("uids", str(append(anna, f))),
                                                       ("targetFolderId", create_folder(anna, "To", f)))),
    ("k", "k", lambda anna, bert, f, uid: create_folder(bert, "Sub", f)),
    ("x", "x", lambda anna, bert, f, uid: bert.call("updateFolder", ("folderId", create_folder(anna, "Ren", f)),
                                                    ("name", "Renamed" + secrets.token_hex(3)))),
    ("x", "x", lambda anna, bert, f, uid: bert.call("deleteFolder", ("folderId", create_folder(anna, "Del", f)))),
    ("a", "a", lambda anna, bert, f, uid: bert.call("setAcl", ("folderId", f), ("identifier", "anyone"),
                                                    ("rights", "l"))),
    ("a", "a", lambda anna, bert, f, uid: bert.call("listRights", ("folderId", f), ("identifier", A))),
]


@pytest.mark.parametrize("letter,enough,operation", CASES, ids=[f"{c[0]}-{n}" for n, c in enumerate(CASES)])
def test_each_right_is_enforced(anna, bert, letter, enough, operation):
    folder = create_folder(anna, "Rights")
    uid = append(anna, folder)
    anna.call("setAcl", ("folderId", folder), ("identifier", B), ("rights", R.modify(R.ALL, "-" + letter)))
    with pytest.raises(Forbidden):
        operation(anna, bert, folder, uid)
    anna.call("setAcl", ("folderId", folder), ("identifier", B), ("rights", enough))
    operation(anna, bert, folder, uid)
    anna.call("deleteFolder", ("folderId", folder))


def test_no_rights_is_the_same_answer_as_no_folder(anna, bert):
    folder = create_folder(anna, "Invisible")
    uid = append(anna, folder)
    anna.call("deleteFolder", ("folderId", create_folder(anna, "Gone")))
    missing = folder + 10**9
    for op, *fields in [("queryRows", ("columns", "uid")), ("myRights",), ("getAcl",),
                        ("setFlags", ("uids", str(uid)), ("mode", "add"), ("flags", "\\Seen")),
                        ("createMessage", ("source", MESSAGE)), ("deleteFolder",)]:
        answers = []
        for fid in (folder, missing):
            with pytest.raises(NotFound) as caught:
                bert.call(op, ("folderId", fid), *fields)
            answers.append(str(caught.value).replace(str(fid), "ID"))
        assert answers[0] == answers[1], (op, answers)
    assert folder not in listed(bert, ("storeId", store_id(anna)))
    assert folder not in listed(bert, ("shared", True))
    anna.call("deleteFolder", ("folderId", folder))


def test_acl_operations_over_soap(anna, bert):
    folder = create_folder(anna, "Acl")
    assert codec.field(anna.call("setAcl", ("folderId", folder), ("identifier", B), ("rights", "lr")), "rights") == "lr"
    assert codec.field(anna.call("setAcl", ("folderId", folder), ("identifier", B), ("rights", "+cs")),
                       "rights") == "lrsk"  # c is k (RFC 4314 §2.1.1)
    assert codec.field(bert.call("myRights", ("folderId", folder)), "rights") == "lrsk"
    with pytest.raises(NotFound):
        anna.call("setAcl", ("folderId", folder), ("identifier", "nobody" + secrets.token_hex(3)), ("rights", "l"))
    with pytest.raises(Exception) as caught:  # the owner's rights cannot change
        anna.call("setAcl", ("folderId", folder), ("identifier", A), ("rights", "l"))
    assert not isinstance(caught.value, (NotFound, Forbidden))
    listed_rights = anna.call("listRights", ("folderId", folder), ("identifier", A))
    assert codec.field(listed_rights, "required") == R.ALL
    assert codec.field(anna.call("deleteAcl", ("folderId", folder), ("identifier", B)), "deleted") == "true"
    assert codec.field(anna.call("deleteAcl", ("folderId", folder), ("identifier", B)), "deleted") == "false"
    with pytest.raises(NotFound):
        bert.call("myRights", ("folderId", folder))
    anna.call("deleteFolder", ("folderId", folder))


def test_cli_share_public_and_group_end_to_end(server, anna, bert):
    name = "Cli" + secrets.token_hex(3)
    folder = create_folder(anna, "x")
    anna.call("updateFolder", ("folderId", folder), ("name", name))
    out = admin(server, "share", A, name, "grant", B, "read", "--json")
    assert json.loads(out.stdout) == {"user": A, "folder": name, "grantee": B, "rights": "lrs"}
    assert folder in listed(bert, ("shared", True))
    acl = json.loads(admin(server, "share", A, name, "list", "--json").stdout)["acl"]
    assert {"identifier": B, "rights": "lrs", "inherited": False} in acl
    visible = json.loads(admin(server, "share", "--user", B, "--json").stdout)["folders"]
    assert {"owner": A, "path": name, "rights": "lrs", "class": "mail"} in visible
    assert "revoked" in json.loads(admin(server, "share", A, name, "revoke", B, "--json").stdout)
    assert folder not in listed(bert, ("shared", True))

    # Groups kept in the store, granted as "$name".
    group = "crew" + secrets.token_hex(2)
    admin(server, "group", "add", group)
    admin(server, "group", "members", group, "--add", B)
    assert json.loads(admin(server, "group", "list", "--json").stdout)["groups"][group] == [B]
    admin(server, "share", A, name, "grant", "$" + group, "lrswi")
    assert codec.field(bert.call("myRights", ("folderId", folder)), "rights") == "lrswi"
    changed = admin(server, "share", A, name, "revoke", "$" + group, "w", "--json")  # RFC 4314's -w
    assert json.loads(changed.stdout)["rights"] == "lrsi"
    admin(server, "group", "members", group, "--remove", B)
    with pytest.raises(NotFound):
        bert.call("myRights", ("folderId", folder))

    # Public folders: nobody sees one until it is shared.
    public = "Company" + secrets.token_hex(2)
    admin(server, "public", "create", public + "/Calendar", "--class", "calendar")
    paths = {f["path"]: f["id"] for f in json.loads(admin(server, "public", "list", "--json").stdout)["folders"]}
    assert paths[public + "/Calendar"] not in listed(bert, ("shared", True))
    admin(server, "share", "--public", public, "grant", "anyone", "read")
    shown = {int(codec.field(f, "id")): codec.field(f, "rights")
             for f in bert.call("listFolders", ("shared", True)).iter(codec.gw("folder"))}
    assert shown[paths[public]] == "lrs" and shown[paths[public + "/Calendar"]] == "lrs"
    admin(server, "public", "rename", public, public + "-2")
    admin(server, "public", "delete", public + "-2")
    assert paths[public] not in listed(bert, ("shared", True))

    # Exit codes as the README lists them: 1 for what is not there, 2 for a wrong command line.
    assert admin(server, "share", A, "No such folder", "list", check=False).returncode == 1
    assert admin(server, "share", "nobody", name, "list", check=False).returncode == 1
    assert admin(server, "share", A, name, "grant", B, check=False).returncode == 2
    assert admin(server, "share", A, name, "grant", B, "lrz", check=False).returncode == 1
    failed = admin(server, "share", A, name, "grant", "nobody", "lr", "--json", check=False)
    assert failed.returncode == 1 and json.loads(failed.stdout)["error"]["code"] == "notFound"
    anna.call("deleteFolder", ("folderId", folder))
