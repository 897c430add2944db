"""Every SOAP operation against the real store server, over its UNIX socket and over TCP.

Each request and answer is validated against the XSD embedded in the WSDL.
"""
from __future__ import annotations

import pytest

from shared import codec
from shared.errors import AuthFailed, BadRequest, Forbidden, SessionInvalid, TooLarge
from certificates import self_signed_certificate
from harness import USERS, StoreProcess, mysql_options, throwaway_mariadb_database
from soap_client import RawHTTP, SoapClient, schema
from soap_scenario import ALL_OPS, MESSAGE, client, exercise_every_operation, folder_ids, table

XSD = schema()


@pytest.fixture(scope="module")
def store_options() -> dict[str, str]:
    return {"disabled_features": "pop3"}


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_every_operation(server, transport):
    seen = exercise_every_operation(server, transport, transport)
    assert {op for op in ALL_OPS} <= seen
    assert {op + "Response" for op in ALL_OPS} <= seen


def test_logon_failures_and_features(server):
    c = client(server, "unix")
    c.session_id = None
    with pytest.raises(AuthFailed):
        c.logon("alice", "wrong")
    with pytest.raises(AuthFailed):
        c.logon("nobody", "whatever")
    with pytest.raises(Forbidden):
        c.logon("alice", USERS["alice"], "pop3")  # disabled_features = pop3
    assert "authentication failed for user 'nobody'" in server.log()
    c.logon("bob", USERS["bob"], "caldav")
    with pytest.raises(BadRequest):
        SoapClient(c.http).call("noSuchOperation")  # not in the schema, so unvalidated
    stranger = SoapClient(server.connect("unix"), XSD)
    stranger.session_id = "0" * 32
    with pytest.raises(SessionInvalid):
        stranger.call("whoami")
    stranger.http.close()
    c.http.close()


def test_user_feature_switch(server):
    from server.service import open_storage
    storage = open_storage(server.config())
    try:
        storage.set_features("bob", {"imap": True, "pop3": True, "caldav": False})
    finally:
        storage.close()
    c = client(server, "tcp")
    with pytest.raises(Forbidden):
        c.logon("bob", USERS["bob"], "caldav")
    assert codec.field(c.logon("bob", USERS["bob"], "imap").find(codec.gw("user")), "features") == "imap sieve"
    c.http.close()


def test_wsdl_names_the_request_host(server):
    http = server.connect("tcp")
    answer = http.request("GET", "/soap?wsdl", headers={"Host": f"127.0.0.1:{server.tcp_port}"})
    assert answer.status == 200
    assert f'location="http://127.0.0.1:{server.tcp_port}/soap"'.encode() in answer.body
    hostile = http.request("GET", "/soap?wsdl", headers={"Host": 'evil"/><x y="'})
    assert b'location="http://localhost/soap"' in hostile.body
    assert http.request("GET", "/soap").status == 405
    http.close()


def test_sources_above_the_inline_limit(tmp_path):
    """A listing gives such a source as null (read it with openStream); getItem, which
    names one item, refuses it."""
    proc = StoreProcess(tmp_path, {"inline_source_limit": "64"}).start()
    try:
        alice = client(proc, "unix")
        alice.logon("alice", USERS["alice"], "imap")
        inbox = folder_ids(alice.call("listFolders"))["Inbox"]
        uid = int(codec.field(alice.call("createMessage", ("folderId", inbox), ("source", MESSAGE)), "uid"))
        assert len(MESSAGE) > 64
        rows = table(alice.call("queryRows", ("folderId", inbox), ("columns", "uid source")))
        assert rows == {"uid": [uid], "source": [None]}
        with pytest.raises(TooLarge):
            alice.call("getItem", ("folderId", inbox), ("uid", uid), ("columns", "uid source"))
        assert table(alice.call("getItem", ("folderId", inbox), ("uid", uid), ("columns", "uid size"))) == {
            "uid": [uid], "size": [len(MESSAGE)]}
        alice.http.close()
    finally:
        proc.stop()


@pytest.mark.parametrize("engine", ["mariadb"])
def test_every_operation_on_mariadb(tmp_path, engine):
    with throwaway_mariadb_database() as database:
        proc = StoreProcess(tmp_path, {**mysql_options(database), "attachment_storage": "database",
                                       "disabled_features": "pop3"})
        try:
            proc.start()
            seen = exercise_every_operation(proc, "unix", engine)
            assert ALL_OPS <= seen
            assert proc.alive()
        finally:
            proc.stop()


def test_tls_listener(tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    proc = StoreProcess(tmp_path / "data", {"server_listen_tls": "127.0.0.1:0", "server_ssl_cert_file": cert,
                                            "server_ssl_key_file": key})
    try:
        proc.start()
        tls_port = proc.ports[-1]
        soap = SoapClient(RawHTTP(("tls", ("127.0.0.1", tls_port))), XSD)
        soap.logon("alice", USERS["alice"])
        assert folder_ids(soap.call("listFolders"))
        wsdl = soap.http.request("GET", "/soap?wsdl", headers={"Host": f"127.0.0.1:{tls_port}"})
        assert f'location="https://127.0.0.1:{tls_port}/soap"'.encode() in wsdl.body
        # An oversized body is refused over TLS too, without upsetting the TLS layer.
        http = RawHTTP(("tls", ("127.0.0.1", tls_port)))
        http.send_head("POST", "/soap", {"Content-Type": "text/xml", "Content-Length": str(20 << 20)})
        http.send_body_until_answered(b"x" * (1 << 20) for _ in range(20))
        assert http.read_response().status == 413
        http.close()
        soap.call("whoami")
        soap.http.close()
        assert proc.alive() and "Traceback" not in proc.log()
    finally:
        proc.stop()
