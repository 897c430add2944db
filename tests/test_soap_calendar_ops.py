"""saveCalendarItems, setFolderProperties and publishCalendar against the real store server,
every request and answer validated against the XSD embedded in the WSDL."""
from __future__ import annotations

import pytest

from shared import codec
from shared.errors import UID_CONFLICT, Conflict, Forbidden
from harness import USERS
from soap_client import SoapClient, schema

XSD = schema()


def event(uid: str, summary: str = "x") -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20260301T090000Z\r\nDTSTART:20260302T090000Z\r\n"
            f"SUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


def item(name: str, text: str):
    el = codec.element("item")
    codec.add(el, "name", name)
    codec.add(el, "icalendar", text)
    return el


def test_calendar_operations_match_the_contract(server):
    alice, bob = SoapClient(server.connect("unix"), XSD), SoapClient(server.connect("unix"), XSD)
    alice.logon("alice", USERS["alice"], "caldav")
    bob.logon("bob", USERS["bob"], "caldav")
    cal = alice.call("createFolder", ("name", "Batch"), ("containerClass", "calendar")).find(codec.gw("folder"))
    fid = int(codec.field(cal, "id"))

    saved = alice.call("saveCalendarItems", ("folderId", fid),
                       ("item", [item("a.ics", event("a")), item("b.ics", event("b\x01"))]))
    assert [s.get("created") for s in saved.iterchildren(codec.gw("saved"))] == ["true", "true"]
    again = alice.call("saveCalendarItems", ("folderId", fid), ("item", [item("a.ics", event("a", "y"))]),
                       ("deleteName", ["b.ics", "gone.ics"]))
    assert [codec.field(s, "name") for s in again.iterchildren(codec.gw("saved"))] == ["a.ics"]
    assert len(codec.field(again, "deleted").split()) == 1
    with pytest.raises(Conflict) as err:
        alice.call("saveCalendarItems", ("folderId", fid), ("item", [item("c.ics", event("a"))]))
    assert err.value.reason == UID_CONFLICT

    props = [codec.element("property"), codec.element("property")]
    props[0].set("name", "ICAL:calendar-order")
    props[0].text = "1"
    props[1].set("name", "{urn:x}y")
    props[1].text = "z"
    answer = alice.call("setFolderProperties", ("folderId", fid), ("property", props))
    assert {p.get("name"): p.text for p in answer.find(codec.gw("folder")).iterchildren(codec.gw("property"))} \
        == {"ICAL:calendar-order": "1", "{urn:x}y": "z"}
    token = codec.field(alice.call("publishCalendar", ("folderId", fid), ("publish", True)), "token")
    listed = next(f for f in alice.call("listFolders").iterchildren(codec.gw("folder"))
                  if codec.field(f, "id") == str(fid))
    assert codec.field(listed, "publishToken") == token
    assert len(list(listed.iterchildren(codec.gw("property")))) == 2

    alice.call("setAcl", ("folderId", fid), ("identifier", "bob"), ("rights", "lrswipkxte"))
    with pytest.raises(Forbidden):
        bob.call("publishCalendar", ("folderId", fid), ("publish", False))
    with pytest.raises(Forbidden):
        bob.call("setFolderProperties", ("folderId", fid))
    shared = next(f for f in bob.call("listFolders", ("shared", True)).iterchildren(codec.gw("folder"))
                  if codec.field(f, "id") == str(fid))
    assert codec.field(shared, "publishToken") is None
    assert codec.field(alice.call("publishCalendar", ("folderId", fid), ("publish", False)), "token") is None
    alice.call("deleteFolder", ("folderId", fid))
