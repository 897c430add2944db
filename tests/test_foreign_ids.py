"""No operation lets one user read or change another user's folders or items by guessing ids:
user B tries user A's folder ids, item uids, resource names and stream hrefs over SOAP and
through each gateway, and gets not-found or denied, never data; A's store is unchanged."""
from __future__ import annotations

import base64
import imaplib
import secrets

import pytest
import requests

from harness import ServerProcess
from shared import codec
from shared.errors import Forbidden, NotFound
from soap_client import SoapClient, logged_on

A, A_PASSWORD = "anna", "anna-secret-1"
B, B_PASSWORD = "bert", "bert-secret-2"
SECRET = b"SECRET-OF-ANNA-0a9f"
MESSAGE = b"From: x@example.org\r\nTo: anna@example.org\r\nSubject: private\r\n\r\n" + SECRET + b"\r\n"
OWN_MESSAGE = MESSAGE.replace(SECRET, b"what B may write")
EVENT = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
         "DTSTAMP:20260101T000000Z\r\nDTSTART:20261201T100000Z\r\nDTEND:20261201T110000Z\r\n"
         "SUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
DENIED = (NotFound, Forbidden)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ServerProcess(str(tmp_path_factory.mktemp("ids") / "var"), {"disable_plaintext_auth": "no"}).start()
    for name, password in ((A, A_PASSWORD), (B, B_PASSWORD)):
        proc.cli("user", "add", name, "--password-stdin", stdin=password + "\n")
    yield proc
    proc.stop()


def folders(client: SoapClient, *fields) -> dict[str, dict]:
    answer = client.call("listFolders", *fields)
    return {codec.field(f, "name"): {"id": int(codec.field(f, "id")), "count": codec.field(f, "count")}
            for f in answer.iter(codec.gw("folder"))}


@pytest.fixture(scope="module")
def anna(server):
    """A's store: a private mail folder with a message, a calendar object, a stream href."""
    client = logged_on(server, A, A_PASSWORD)
    store_id = int(codec.field(client.call("whoami"), "storeId"))
    private = int(codec.field(client.call("createFolder", ("name", "Private")).find(codec.gw("folder")), "id"))
    uid = int(codec.field(client.call("createMessage", ("folderId", private), ("source", MESSAGE)), "uid"))
    calendar = folders(client)["Calendar"]["id"]
    client.call("saveCalendarItem", ("folderId", calendar), ("name", "secret.ics"),
                ("icalendar", EVENT.format(uid="secret", summary=SECRET.decode())))
    href = codec.field(client.call("openStream", ("folderId", private), ("uid", uid)), "href")
    yield {"client": client, "store": store_id, "private": private, "uid": uid, "calendar": calendar,
           "inbox": folders(client)["Inbox"]["id"], "href": href}
    client.http.close()


def snapshot(anna) -> tuple:
    """What B must not be able to change: A's folder tree, the message, the calendar object."""
    client = anna["client"]
    tree = sorted((name, f["count"]) for name, f in folders(client).items())
    item = client.call("getItem", ("folderId", anna["private"]), ("uid", anna["uid"]), ("columns", "uid flags source"))
    event = client.call("getItemsByName", ("folderId", anna["calendar"]), ("name", "secret.ics"), ("columns", "etag"))
    return tree, etree_text(item), etree_text(event)


def etree_text(element) -> bytes:
    from lxml import etree
    return etree.tostring(element)


def test_soap_operations_on_foreign_ids(server, anna):
    before = snapshot(anna)
    bert = logged_on(server, B, B_PASSWORD)
    own = folders(bert)
    own_inbox = own["Inbox"]["id"]
    own_uid = int(codec.field(bert.call("createMessage", ("folderId", own_inbox), ("source", OWN_MESSAGE)), "uid"))
    private, uid, calendar = anna["private"], anna["uid"], anna["calendar"]
    message = codec.element("message")
    codec.add(message, "source", OWN_MESSAGE)
    prop = codec.element("property")
    prop.set("name", "{DAV:}displayname")
    prop.text = "renamed"
    item = codec.element("item")
    codec.add(item, "name", "planted.ics")
    codec.add(item, "icalendar", EVENT.format(uid="planted", summary="planted"))
    attempts = [
        ("queryRows", ("folderId", private), ("columns", "uid subject source")),
        ("getItem", ("folderId", private), ("uid", uid), ("columns", "uid source")),
        ("getItemsByName", ("folderId", calendar), ("name", "secret.ics"), ("columns", "name source")),
        ("openStream", ("folderId", private), ("uid", uid)),
        ("openStream", ("folderId", private), ("uids", "1:*")),
        ("getChanges", ("folderId", private), ("sinceModseq", 0)),
        ("getChangedItems", ("folderId", private), ("sinceModseq", 0), ("columns", "uid subject")),
        ("setFlags", ("folderId", private), ("uids", "1:*"), ("mode", "add"), ("flags", "\\Deleted")),
        ("copyItems", ("folderId", private), ("uids", "1:*"), ("targetFolderId", own_inbox)),
        ("moveItems", ("folderId", private), ("uids", "1:*"), ("targetFolderId", own_inbox)),
        ("copyItems", ("folderId", own_inbox), ("uids", str(own_uid)), ("targetFolderId", private)),
        ("moveItems", ("folderId", own_inbox), ("uids", str(own_uid)), ("targetFolderId", private)),
        ("deleteItems", ("folderId", private), ("uids", "1:*")),
        ("createMessage", ("folderId", private), ("source", OWN_MESSAGE)),
        ("createMessages", ("folderId", private), ("message", [message])),
        ("saveCalendarItem", ("folderId", calendar), ("name", "secret.ics"),
         ("icalendar", EVENT.format(uid="secret", summary="overwritten"))),
        ("saveCalendarItems", ("folderId", calendar), ("item", [item]), ("deleteName", "secret.ics")),
        ("createFolder", ("parentId", private), ("name", "Planted")),
        ("updateFolder", ("folderId", private), ("name", "Renamed")),
        ("updateFolder", ("folderId", own_inbox), ("parentId", private)),
        ("setFolderProperties", ("folderId", calendar), ("property", [prop])),
        ("publishCalendar", ("folderId", calendar), ("publish", True)),
        ("setAcl", ("folderId", private), ("identifier", B), ("rights", "lrswipkxtea")),
        ("emptyFolder", ("folderId", private)),
        ("deleteFolder", ("folderId", private)),
    ]
    for op, *fields in attempts:
        with pytest.raises(DENIED):
            bert.call(op, *fields)
    # A long poll on A's folder neither waits on it nor tells B anything about it.
    with pytest.raises(DENIED):
        bert.call("waitForChanges", ("watch", codec.element("watch", folderId=str(private), modseq="0")),
                  ("timeout", 1))
    # A's store listed by id shows B nothing (A granted nothing).
    assert folders(bert, ("storeId", anna["store"])) == {}
    # Ids next to A's: whatever exists there is A's, never B's to read.
    for folder_id in range(1, private + 20):
        if folder_id in {f["id"] for f in own.values()}:
            continue
        with pytest.raises(DENIED):
            bert.call("queryRows", ("folderId", folder_id), ("columns", "uid"))
    # Streams: A's href is A's session's, even in B's hands; a guessed token is nothing.
    for href in (anna["href"], f"/stream/{secrets.token_urlsafe(24)}", anna["href"].rsplit("/", 1)[0] + "/0"):
        for headers in ({"X-Session-Id": bert.session_id}, {}):
            got = bert.http.request("GET", href, headers=headers)
            assert got.status in (403, 404) and SECRET not in got.body, (href, headers, got.status)
    assert anna["client"].http.request("GET", anna["href"], headers={
        "X-Session-Id": anna["client"].session_id}).body == MESSAGE
    bert.http.close()
    assert snapshot(anna) == before


def test_imap_sees_only_its_own_store(server, anna):
    m = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=30)
    m.login(B, B_PASSWORD)
    listed = b"".join(m.list()[1])
    assert b"Private" not in listed
    for name in ("Private", f"{A}/Private", f"Other Users/{A}/Private", f"#shared/{A}/Private", f"~{A}/Private"):
        typ, data = m.select(f'"{name}"')
        assert typ == "NO" and b"NONEXISTENT" in data[0], (name, data)
        assert m.status(f'"{name}"', "(MESSAGES)")[0] == "NO"
        assert m.append(f'"{name}"', None, None, OWN_MESSAGE)[0] == "NO"
    m.select("INBOX")
    assert m.uid("COPY", "1:*", '"Private"')[0] == "NO"
    m.logout()


def test_caldav_paths_of_another_user(server, anna):
    base = f"http://127.0.0.1:{server.port('ical')}"
    auth = (B, B_PASSWORD)
    guesses = [
        ("GET", f"/caldav/{A}/Calendar/secret.ics"),
        ("PROPFIND", f"/caldav/{A}/Calendar/"),
        ("PROPFIND", f"/caldav/{A}/"),
        ("REPORT", f"/caldav/{A}/Calendar/"),
        ("GET", f"/ical/{A}/Calendar"),
        ("GET", f"/caldav/{B}/Calendar~{anna['calendar']}/secret.ics"),
        ("PROPFIND", f"/caldav/{B}/Calendar~{anna['calendar']}/"),
        ("GET", f"/ical/{B}/Calendar~{anna['calendar']}"),
        ("PUT", f"/caldav/{A}/Calendar/secret.ics"),
        ("PUT", f"/caldav/{A}/Calendar/planted.ics"),
        ("PUT", f"/ical/{A}/Calendar"),
        ("PUT", f"/caldav/{B}/Calendar~{anna['calendar']}/secret.ics"),
        ("DELETE", f"/caldav/{A}/Calendar/secret.ics"),
        ("DELETE", f"/caldav/{B}/Calendar~{anna['calendar']}/secret.ics"),
        ("DELETE", f"/caldav/{A}/Calendar/"),
        ("MKCALENDAR", f"/caldav/{A}/Planted/"),
        ("PROPPATCH", f"/caldav/{A}/Calendar/"),
        ("POST", f"/caldav/{A}/Calendar/"),
    ]
    body = {"PUT": EVENT.format(uid="secret", summary="overwritten").encode(),
            "REPORT": b'<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop>'
                      b'<C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"/></C:filter>'
                      b'</C:calendar-query>',
            "PROPPATCH": b'<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>x</D:displayname>'
                         b'</D:prop></D:set></D:propertyupdate>',
            "POST": b'<CS:publish-calendar xmlns:CS="http://calendarserver.org/ns/"/>'}
    before = snapshot(anna)
    for method, path in guesses:
        answer = requests.request(method, base + path, auth=auth, data=body.get(method),
                                  headers={"Depth": "1", "Content-Type": "text/calendar" if method == "PUT"
                                           else "application/xml"}, timeout=30)
        # 409: a PUT into a collection B does not have (RFC 4918 §9.7.1), as for any missing one.
        allowed = (403, 404, 409) if method == "PUT" else (403, 404)
        assert answer.status_code in allowed, (method, path, answer.status_code, answer.text[:200])
        assert SECRET not in answer.content and b"secret.ics" not in answer.content, (method, path)
    assert snapshot(anna) == before
    # A herself still reads it all.
    own = requests.get(base + f"/caldav/{A}/Calendar/secret.ics", auth=(A, A_PASSWORD), timeout=30)
    assert own.status_code == 200 and SECRET.decode() in own.text


def test_pop3_and_managesieve_serve_only_the_login(server, anna):
    import poplib
    p = poplib.POP3("127.0.0.1", server.port("pop3"), timeout=30)
    p.user(B)
    p.pass_(B_PASSWORD)
    for number in range(1, 5):
        try:
            lines = p.retr(number)[1]
        except poplib.error_proto:
            continue
        assert SECRET not in b"\r\n".join(lines)
    p.quit()
    from managesieve_client import SieveClient
    plain = base64.b64encode(f"\0{B}\0{B_PASSWORD}".encode()).decode()
    with SieveClient(server.port("managesieve")) as client:
        # Authorizing as another user (SASL authzid) is refused.
        proxy = base64.b64encode(f"{A}\0{B}\0{B_PASSWORD}".encode()).decode()
        assert client.command(f'AUTHENTICATE "PLAIN" "{proxy}"')[1].startswith(b"NO")
        assert client.command(f'AUTHENTICATE "PLAIN" "{plain}"')[1].startswith(b"OK")
        lines, done = client.command("LISTSCRIPTS")
        assert done.startswith(b"OK") and lines == []
