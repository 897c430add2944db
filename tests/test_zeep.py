"""A stock SOAP toolkit (zeep) drives the store server from nothing but the served WSDL."""
from __future__ import annotations

import base64
import os

import pytest
import zeep
from lxml import etree

from harness import USERS

MESSAGE = (b"From: Dave <dave@example.org>\r\nTo: alice@example.org\r\nSubject: Via zeep\r\n"
           b"Message-ID: <zeep-1@example.org>\r\n\r\nA body line.\r\n")


def text(value):
    """zeep shows text-with-attribute elements as objects (or dicts); plain strings otherwise."""
    if isinstance(value, dict):
        return value["_value_1"]
    return getattr(value, "_value_1", value)


def strings(table, name) -> list:
    """The values of a str column of a table, in row order."""
    col = next(c for c in table.col if c.name == name)
    assert col.type == "str"
    return [text(v["v"]) for v in zeep.helpers.serialize_object(col)["_value_1"] if v is not None]


def test_zeep_round_trip(server):
    client = zeep.Client(f"http://127.0.0.1:{server.tcp_port}/soap?wsdl")
    # soap:address was rewritten to where the WSDL came from.
    assert client.service._binding_options["address"] == f"http://127.0.0.1:{server.tcp_port}/soap"

    logon = client.service.logon(user="alice", password=USERS["alice"], protocol="imap")
    sid = logon.sessionId
    assert text(logon.user.name) == "alice"

    folders = client.service.listFolders(sessionId=sid).folder
    inbox = next(f for f in folders if f.role == "inbox")
    assert text(inbox.name) == "Inbox" and inbox.rights == "lrswipkxtea"
    # The table form: one column per field, a value per folder.
    table = client.service.listFolders(sessionId=sid, table=True).table
    assert int(table.rows) == len(folders)
    assert {"id", "name", "rights"} <= {col.name for col in table.col}

    created = client.service.createMessage(sessionId=sid, folderId=inbox.id, source=MESSAGE,
                                           flags="\\Seen", internalDate=1700000000)
    assert created.size == len(MESSAGE)

    rows = client.service.queryRows(sessionId=sid, folderId=inbox.id, columns="uid subject flags",
                                    sort=[{"column": "uid", "descending": True}], limit=5)
    assert rows.total == 1
    table = rows.table
    assert int(table.rows) == 1
    uid_col = next(c for c in table.col if c.name == "uid")
    assert uid_col.type == "int"

    item = client.service.getItem(sessionId=sid, folderId=inbox.id, uid=created.uid,
                                  columns="uid subject source")
    assert base64.b64decode(strings(item, "source")[0]) == MESSAGE
    assert strings(item, "subject") == ["Via zeep"]

    with pytest.raises(zeep.exceptions.Fault) as fault:
        client.service.getItem(sessionId=sid, folderId=inbox.id, uid=999999)
    assert b"<gw:code>notFound</gw:code>" in etree.tostring(fault.value.detail)
    client.service.logoff(sessionId=sid)


def test_zeep_logon_with_a_lifetime_and_one_time_names(server):
    client = zeep.Client(f"http://127.0.0.1:{server.tcp_port}/soap?wsdl")
    sid = client.service.logon(user="alice", password=USERS["alice"], protocol="web", lifetime=600).sessionId
    name = base64.urlsafe_b64encode(os.urandom(12)).decode()
    assert client.service.useOnce(sessionId=sid, name=name, expires=2_000_000_000) is True
    assert client.service.useOnce(sessionId=sid, name=name, expires=2_000_000_000) is False
    with pytest.raises(zeep.exceptions.Fault) as fault:
        client.service.useOnce(sessionId=sid, name="x" * 65, expires=2_000_000_000)
    assert b"<gw:code>badRequest</gw:code>" in etree.tostring(fault.value.detail)
    client.service.logoff(sessionId=sid)
    with pytest.raises(zeep.exceptions.Fault):
        client.service.useOnce(sessionId=sid, name=name + "2", expires=2_000_000_000)
