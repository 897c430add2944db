"""iTIP messages (shared/itip.py) and iMIP mail (RFC 6047) out and in, without a store:
the message the CalDAV gateway sends, its retries against a real SMTP server, and what
delivery takes from an incoming message."""
from __future__ import annotations

import email
import email.policy
import socket
import threading
import time

import icalendar

from gateways.caldav.scheduling.imip import ImipSender, imip_message
from reactor_thread import start_reactor_thread
from shared import itip
from shared.config import Config
from shared.imip_incoming import itip_of, may_carry_itip
from smtp_sink import SmtpSink

EVENT = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:weekly-1\r\n"
         "DTSTAMP:20270101T000000Z\r\nDTSTART:20270104T090000Z\r\nDTEND:20270104T100000Z\r\n"
         "RRULE:FREQ=WEEKLY\r\nSUMMARY:Team\r\nORGANIZER;CN=Ann:mailto:ann@example.test\r\n"
         "ATTENDEE;PARTSTAT=ACCEPTED:mailto:ann@example.test\r\n"
         "ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE;SCHEDULE-STATUS=1.2:mailto:Ben@Example.test\r\n"
         "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT5M\r\nDESCRIPTION:x\r\nEND:VALARM\r\nEND:VEVENT\r\n"
         "BEGIN:VEVENT\r\nUID:weekly-1\r\nRECURRENCE-ID:20270111T090000Z\r\nDTSTAMP:20270101T000000Z\r\n"
         "DTSTART:20270111T110000Z\r\nDTEND:20270111T120000Z\r\nSUMMARY:Team (moved)\r\n"
         "ORGANIZER:mailto:ann@example.test\r\nATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:ben@example.test\r\n"
         "END:VEVENT\r\nEND:VCALENDAR\r\n")


def test_request_drops_what_only_the_sender_keeps():
    request = icalendar.Calendar.from_ical(itip.message(EVENT, "REQUEST"))
    assert str(request["METHOD"]) == "REQUEST"
    assert "SCHEDULE-STATUS" not in request.to_ical().decode() and not request.walk("VALARM")
    assert len(request.walk("VEVENT")) == 2  # the override travels with its master


def test_reply_updates_the_matching_instance_only():
    answer = icalendar.Calendar.from_ical(EVENT)
    for event in answer.walk("VEVENT"):
        if event.get("RECURRENCE-ID") is not None:
            event["ATTENDEE"].params["PARTSTAT"] = "DECLINED"
    reply = itip.message(answer.to_ical().decode(), "REPLY", ["ben@example.test"])
    assert itip.attendees(itip.parse(reply)) == ["ben@example.test"]
    updated = itip.parse(itip.apply(EVENT, reply))
    assert itip.partstats(updated, "ben@example.test") == {"": "NEEDS-ACTION", "20270111T090000Z": "DECLINED"}


def test_cancel_of_one_instance_and_of_the_series():
    one = icalendar.Calendar.from_ical(itip.message(EVENT, "CANCEL"))
    one.subcomponents = [c for c in one.subcomponents if c.get("RECURRENCE-ID") is not None]
    updated = itip.parse(itip.apply(EVENT, one.to_ical().decode()))
    statuses = {e.get("RECURRENCE-ID") is not None: str(e.get("STATUS", "")) for e in updated.walk("VEVENT")}
    assert statuses == {False: "", True: "CANCELLED"}
    assert itip.is_cancelled(itip.parse(itip.apply(EVENT, itip.message(EVENT, "CANCEL"))))
    assert itip.apply(itip.apply(EVENT, itip.message(EVENT, "CANCEL")), itip.message(EVENT, "CANCEL")) is None


def test_schedule_tag_ignores_the_attendees_own_changes():
    tag = itip.schedule_tag(EVENT)
    answered = EVENT.replace("PARTSTAT=NEEDS-ACTION;RSVP=TRUE", "PARTSTAT=ACCEPTED").replace("TRIGGER:-PT5M",
                                                                                             "TRIGGER:-PT15M")
    assert itip.schedule_tag(answered) == tag
    assert itip.schedule_tag(EVENT.replace("DTSTART:20270104T090000Z", "DTSTART:20270104T080000Z")) != tag
    assert itip.schedule_tag(EVENT.replace("ORGANIZER;CN=Ann:mailto:ann@example.test\r\n", "")
                             .replace("ORGANIZER:mailto:ann@example.test\r\n", "")) is None


def test_imip_message_is_rfc_6047_shaped():
    data = imip_message("ann@example.test", "guest@elsewhere.test", itip.message(EVENT, "REQUEST"),
                        sender="calendar@example.test")
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert message["From"] == "ann@example.test" and message["Sender"] == "calendar@example.test"
    assert message.get_content_type() == "multipart/alternative"
    part = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
    assert part.get_param("method") == "REQUEST" and part.get_param("component") == "VEVENT"
    assert "UID:weekly-1" in part.get_content()
    # What the receiving side takes from it: the object, since From is its organizer.
    assert may_carry_itip(message)
    assert "UID:weekly-1" in itip_of(data)
    forged = data.replace(b"From: ann@example.test", b"From: mallory@example.test")
    assert itip_of(forged) is None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def sender_for(port: int, retries: int) -> ImipSender:
    cfg = Config({"imip_smtp_host": "127.0.0.1", "imip_smtp_port": str(port), "imip_smtp_timeout": "2",
                  "imip_retries": str(retries), "imip_retry_delay": "0.2"})
    return ImipSender(cfg, start_reactor_thread().reactor)


def test_retries_are_bounded_and_reach_a_relay_that_comes_back():
    rt = start_reactor_thread()
    text = itip.message(EVENT, "REQUEST")
    started = time.monotonic()
    assert rt.call(sender_for(free_port(), 2).send, "ann@example.test", "guest@elsewhere.test", text) is False
    assert time.monotonic() - started < 10  # three attempts, 0.2 s and 0.4 s apart

    sink = SmtpSink()  # bound, but answering only once started
    try:
        threading.Timer(0.5, sink.start).start()
        assert rt.call(sender_for(sink.port, 5).send, "ann@example.test", "guest@elsewhere.test", text) is True
        [received] = sink.wait_for("guest@elsewhere.test")
        assert received.sender == "ann@example.test"
    finally:
        sink.stop()


def test_an_updated_invitation_keeps_the_recipients_alarms():
    copy = itip.as_copy(itip.message(EVENT, "REQUEST")).replace(
        "END:VEVENT", "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT30M\r\nDESCRIPTION:mine\r\nEND:VALARM\r\nEND:VEVENT", 1)
    update = itip.message(EVENT.replace("SUMMARY:Team\r\n", "SUMMARY:Team meeting\r\n"), "REQUEST")
    updated = itip.parse(itip.apply(copy, update))
    master = next(c for c in updated.walk("VEVENT") if c.get("RECURRENCE-ID") is None)
    assert str(master["SUMMARY"]) == "Team meeting"
    assert [str(a["TRIGGER"].to_ical(), "ascii") for a in master.walk("VALARM")] == ["-PT30M"]
