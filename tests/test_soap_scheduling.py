"""scheduleMessage and freeBusyItems against the real store server, every request and answer
validated against the XSD embedded in the WSDL."""
from __future__ import annotations

import pytest

from harness import USERS
from shared import codec
from shared.errors import BadRequest, Forbidden
from soap_client import SoapClient, schema

XSD = schema()


def request(uid: str, organizer: str, attendee: str, method: str = "REQUEST") -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
            f"METHOD:{method}\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20270301T090000Z\r\n"
            "DTSTART:20270302T090000Z\r\nDTEND:20270302T100000Z\r\nSUMMARY:Review\r\n"
            f"ORGANIZER:mailto:{organizer}\r\nATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:{attendee}\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n")


def results(answer) -> dict[str, str]:
    return {codec.field(r, "address"): codec.field(r, "status") for r in answer.iterchildren(codec.gw("result"))}


def test_scheduling_operations_match_the_contract(server):
    alice, bob = SoapClient(server.connect("unix"), XSD), SoapClient(server.connect("unix"), XSD)
    alice.logon("alice", USERS["alice"], "caldav")
    bob.logon("bob", USERS["bob"], "caldav")
    sent = alice.call("scheduleMessage", ("message", request("soap-1", "alice@example.org", "bob@example.org")),
                      ("recipient", ["bob@example.org", "nobody@example.org"]))
    assert results(sent) == {"bob@example.org": "1.2", "nobody@example.org": "3.7"}

    folders = {codec.field(f, "containerClass"): int(codec.field(f, "id"))
               for f in bob.call("listFolders").iterchildren(codec.gw("folder"))}
    _, table = codec.table_from_xml(bob.call("queryRows", ("folderId", folders["schedule-inbox"]),
                                             ("columns", "uid name")).find(codec.gw("table")))
    assert len(table["uid"]) == 1
    _, table = codec.table_from_xml(bob.call("queryRows", ("folderId", folders["calendar"]),
                                             ("columns", "uid icalUid")).find(codec.gw("table")))
    assert table["icalUid"] == ["soap-1"]

    # Only as oneself, and within the bounds.
    with pytest.raises(Forbidden):
        bob.call("scheduleMessage", ("message", request("soap-2", "alice@example.org", "bob@example.org")),
                 ("recipient", ["alice@example.org"]))
    with pytest.raises(BadRequest):
        alice.call("scheduleMessage", ("message", request("soap-3", "alice@example.org", "bob@example.org", "ADD")),
                   ("recipient", ["bob@example.org"]))

    busy = alice.call("freeBusyItems", ("start", 1803945600), ("end", 1804032000),
                      ("recipient", ["bob@example.org", "nobody@example.org"]))
    answers = {codec.field(r, "address"): r for r in busy.iterchildren(codec.gw("result"))}
    assert codec.field(answers["nobody@example.org"], "status") == "3.7"
    [item] = [codec.text(i) for i in answers["bob@example.org"].iterchildren(codec.gw("item"))]
    assert "UID:soap-1" in item and "SUMMARY" not in item
    assert {"scheduleMessageResponse", "freeBusyItemsResponse"} <= alice.seen


def test_a_delivery_session_applies_incoming_imip(server):
    delivery = SoapClient(server.connect("unix"), XSD)
    delivery.session_id = codec.field(delivery.call("logonDelivery"), "sessionId")
    sent = delivery.call("scheduleMessage",
                         ("message", request("mail-1", "outsider@example.net", "alice@example.org")),
                         ("recipient", ["alice@example.org"]))
    assert results(sent) == {"alice@example.org": "1.2"}
    with pytest.raises(Forbidden):  # free-busy is a user's question
        delivery.call("freeBusyItems", ("start", 0), ("end", 1), ("recipient", ["alice@example.org"]))


def test_an_assigned_task_lands_in_the_task_list(server):
    alice, bob = SoapClient(server.connect("unix"), XSD), SoapClient(server.connect("unix"), XSD)
    alice.logon("alice", USERS["alice"], "caldav")
    bob.logon("bob", USERS["bob"], "caldav")
    task = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nMETHOD:REQUEST\r\nBEGIN:VTODO\r\n"
            "UID:todo-1\r\nDTSTAMP:20270301T090000Z\r\nSUMMARY:Write the report\r\n"
            "ORGANIZER:mailto:alice@example.org\r\nATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.org\r\n"
            "END:VTODO\r\nEND:VCALENDAR\r\n")
    assert results(alice.call("scheduleMessage", ("message", task), ("recipient", ["bob@example.org"]))) == {
        "bob@example.org": "1.2"}
    folders = {codec.field(f, "containerClass"): int(codec.field(f, "id"))
               for f in bob.call("listFolders").iterchildren(codec.gw("folder"))}
    _, table = codec.table_from_xml(bob.call("queryRows", ("folderId", folders["tasks"]),
                                             ("columns", "uid icalUid")).find(codec.gw("table")))
    assert table["icalUid"] == ["todo-1"]
