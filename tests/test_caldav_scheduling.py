"""Scheduling (RFC 6638) between users of the store, free-busy through the outbox, and iMIP
(RFC 6047) to attendees outside it: Thunderbird-shaped raw requests and the `caldav`
library's scheduling calls against a running server, with an SMTP sink as the relay."""
from __future__ import annotations

import email
import email.message
import email.policy
import email.utils
import json
import smtplib
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from urllib.parse import unquote

import caldav
import icalendar
import pytest

from harness import ROOT
from caldav_env import CAL, DAV, REQUEST_TIMEOUT, hrefs, propfind, running, xml
from smtp_sink import SmtpSink
from waiting import scaled

PASSWORDS = {"alice": "alice-secret-1", "bob": "bob-secret-22", "carol": "carol-secret-333"}
DOMAIN = "example.test"
EXTERNAL = "outsider@elsewhere.test"


def address(user: str) -> str:
    return f"{user}@{DOMAIN}"


@pytest.fixture(scope="module")
def sink():
    with SmtpSink() as running_sink:
        yield running_sink


@pytest.fixture(scope="module")
def env(tmp_path_factory, sink, database_options):
    options = {**database_options, "imip_smtp_host": "127.0.0.1", "imip_smtp_port": str(sink.port), "imip_retry_delay": "1",
               "ical_max_schedule_attendees": "5", "lmtp_apply_imip": "yes"}
    with running(tmp_path_factory.mktemp("scheduling"), options) as e:
        for name, password in PASSWORDS.items():
            e.server.cli("user", "add", name, "--email", address(name), "--password-stdin", stdin=password + "\n")
        yield e


def auth(user: str) -> tuple[str, str]:
    return (user, PASSWORDS[user])


def invitation(uid: str, organizer: str, attendees: dict[str, str], summary: str = "Planning",
               start: str = "20270315T090000Z", end: str = "20270315T100000Z", extra: str = "") -> str:
    """An event as Thunderbird's Lightning writes one with attendees."""
    lines = ["BEGIN:VCALENDAR", "PRODID:-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN", "VERSION:2.0",
             "BEGIN:VEVENT", "CREATED:20270301T080000Z", "LAST-MODIFIED:20270301T080000Z",
             "DTSTAMP:20270301T080000Z", f"UID:{uid}", f"SUMMARY:{summary}",
             f"ORGANIZER;RSVP=TRUE;PARTSTAT=ACCEPTED;ROLE=CHAIR:mailto:{organizer}",
             f"ATTENDEE;RSVP=TRUE;PARTSTAT=ACCEPTED;ROLE=CHAIR:mailto:{organizer}"]
    for who, params in attendees.items():
        lines.append(f"ATTENDEE;{params}:mailto:{who}")
    lines += [f"DTSTART:{start}", f"DTEND:{end}", "TRANSP:OPAQUE", "SEQUENCE:0"]
    if extra:
        lines.append(extra)
    lines += ["END:VEVENT", "END:VCALENDAR", ""]
    return "\r\n".join(lines)


INVITED = "RSVP=TRUE;PARTSTAT=NEEDS-ACTION;ROLE=REQ-PARTICIPANT"


def put(env, user: str, path: str, text: str, **headers: str):
    return env.request("PUT", path, text, auth=auth(user), Content_Type="text/calendar; charset=utf-8", **headers)


def get_text(env, user: str, path: str) -> str:
    r = env.request("GET", path, auth=auth(user))
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.text


def event_of(text: str) -> icalendar.Event:
    return next(c for c in icalendar.Calendar.from_ical(text).walk("VEVENT"))


def attendee(event: icalendar.Event, who: str):
    props = event.get("ATTENDEE")
    props = props if isinstance(props, list) else [props]
    return next(p for p in props if str(p).lower() == f"mailto:{who}")


def collection_texts(env, user: str, path: str) -> list[str]:
    r = propfind(env, path, "<d:getetag/>", depth="1", auth=auth(user))
    assert r.status_code == 207, r.text
    items = [unquote(h) for h in hrefs(r) if h.rstrip("/") != path.rstrip("/")]
    return [get_text(env, user, h) for h in items]


def copy_with_uid(env, user: str, uid: str) -> str:
    for text in collection_texts(env, user, f"/caldav/{user}/Calendar/"):
        if f"UID:{uid}" in text:
            return text
    raise AssertionError(f"{user} has no copy of {uid}")


def inbox_methods(env, user: str, uid: str) -> list[str]:
    return [str(icalendar.Calendar.from_ical(t).get("METHOD")) for t in collection_texts(env, user,
            f"/caldav/{user}/schedule-inbox/") if f"UID:{uid}" in t]


# -- the principal (RFC 6638 section 2)

def test_principal_shows_inbox_outbox_addresses_and_default_calendar(env):
    props = ("<c:schedule-inbox-URL/><c:schedule-outbox-URL/><c:calendar-user-address-set/>"
             "<c:calendar-user-type/><c:schedule-default-calendar-URL/>")
    r = propfind(env, "/caldav/alice/", props, auth=auth("alice"))
    assert r.status_code == 207, r.text
    root = xml(r)
    ok = [ps for ps in root.iter(DAV + "propstat") if " 200 " in ps.findtext(DAV + "status")]
    assert len(ok) == 1
    prop = ok[0].find(DAV + "prop")
    assert prop.find(CAL + "schedule-inbox-URL").findtext(DAV + "href") == "/caldav/alice/schedule-inbox/"
    assert prop.find(CAL + "schedule-outbox-URL").findtext(DAV + "href") == "/caldav/alice/schedule-outbox/"
    addresses = [h.text for h in prop.find(CAL + "calendar-user-address-set").iter(DAV + "href")]
    assert f"mailto:{address('alice')}" in addresses
    assert prop.findtext(CAL + "calendar-user-type") == "INDIVIDUAL"
    assert prop.find(CAL + "schedule-default-calendar-URL").findtext(DAV + "href") == "/caldav/alice/Calendar/"
    assert not [ps for ps in root.iter(DAV + "propstat") if " 404 " in ps.findtext(DAV + "status")]


def test_options_advertise_calendar_auto_schedule(env):
    r = env.request("OPTIONS", "/caldav/alice/", auth=auth("alice"))
    assert r.status_code == 200
    assert "calendar-auto-schedule" in [c.strip() for c in r.headers["dav"].split(",")]


def test_inbox_and_outbox_have_their_resource_types_and_stay_out_of_the_home(env):
    for box in ("schedule-inbox", "schedule-outbox"):
        r = propfind(env, f"/caldav/bob/{box}/", "<d:resourcetype/>", auth=auth("bob"))
        assert r.status_code == 207, r.text
        types = [el.tag for el in xml(r).find(f".//{DAV}resourcetype")]
        assert CAL + box in types and DAV + "collection" in types and CAL + "calendar" not in types
    listed = hrefs(propfind(env, "/caldav/bob/", "<d:resourcetype/>", depth="1", auth=auth("bob")))
    assert not [h for h in listed if "schedule-" in h]
    # Only scheduling puts messages into the inbox.
    uid = f"own-{uuid.uuid4()}"
    refused = put(env, "bob", f"/caldav/bob/schedule-inbox/{uid}.ics", invitation(uid, address("bob"), {}))
    assert refused.status_code == 403


# -- implicit scheduling, Thunderbird-shaped requests

@pytest.mark.database_engines("sqlite", "mariadb")
def test_invitation_reply_and_cancellation_between_three_users(env, sink):
    uid = f"tb-{uuid.uuid4()}"
    path = f"/caldav/alice/Calendar/{uid}.ics"
    text = invitation(uid, address("alice"), {address("bob"): INVITED, address("carol"): INVITED,
                                              "nobody@" + DOMAIN: INVITED})
    r = put(env, "alice", path, text, If_None_Match="*")
    assert r.status_code == 201, r.text

    # The organizer's copy says what became of each invitation (RFC 6638 section 7.3).
    mine = event_of(get_text(env, "alice", path))
    assert attendee(mine, address("bob")).params["SCHEDULE-STATUS"] == "1.2"
    assert attendee(mine, address("carol")).params["SCHEDULE-STATUS"] == "1.2"
    # Not a user here, so it went out by iMIP through the relay (1.1: sent).
    assert attendee(mine, "nobody@" + DOMAIN).params["SCHEDULE-STATUS"] == "1.1"
    assert "SCHEDULE-STATUS" not in attendee(mine, address("alice")).params

    # Each attendee has the REQUEST in their inbox and a copy needing an answer in their calendar.
    for user in ("bob", "carol"):
        assert inbox_methods(env, user, uid) == ["REQUEST"]
        copy = event_of(copy_with_uid(env, user, uid))
        assert attendee(copy, address(user)).params["PARTSTAT"] == "NEEDS-ACTION"
        assert "SCHEDULE-STATUS" not in attendee(copy, address(user)).params
        assert str(copy["SUMMARY"]) == "Planning"

    # Bob accepts in his calendar (Thunderbird PUTs the copy with his new PARTSTAT).
    bob_text = copy_with_uid(env, "bob", uid)
    bob_path = f"/caldav/bob/Calendar/{uid}.ics"
    etag = env.request("GET", bob_path, auth=auth("bob")).headers["etag"]
    accepted = bob_text.replace(f"PARTSTAT=NEEDS-ACTION;RSVP=TRUE;ROLE=REQ-PARTICIPANT:mailto:{address('bob')}",
                                f"PARTSTAT=ACCEPTED;RSVP=TRUE;ROLE=REQ-PARTICIPANT:mailto:{address('bob')}")
    if accepted == bob_text:  # the parameters may come in another order
        event = event_of(bob_text)
        attendee(event, address("bob")).params["PARTSTAT"] = "ACCEPTED"
        cal = icalendar.Calendar.from_ical(bob_text)
        for comp in cal.walk("VEVENT"):
            attendee(comp, address("bob")).params["PARTSTAT"] = "ACCEPTED"
        accepted = cal.to_ical().decode()
    r = put(env, "bob", bob_path, accepted, If_Match=etag)
    assert r.status_code in (201, 204), r.text
    mine = event_of(get_text(env, "alice", path))
    assert attendee(mine, address("bob")).params["PARTSTAT"] == "ACCEPTED"
    assert attendee(mine, address("carol")).params["PARTSTAT"] == "NEEDS-ACTION"
    assert inbox_methods(env, "alice", uid) == ["REPLY"]

    # Carol declines by deleting her copy (RFC 6638 section 3.2.2.3).
    r = env.request("DELETE", f"/caldav/carol/Calendar/{uid}.ics", auth=auth("carol"))
    assert r.status_code in (200, 204), r.text
    mine = event_of(get_text(env, "alice", path))
    assert attendee(mine, address("carol")).params["PARTSTAT"] == "DECLINED"

    # The organizer deletes the event: Bob's copy is cancelled, and he is told.
    r = env.request("DELETE", path, auth=auth("alice"))
    assert r.status_code in (200, 204), r.text
    assert str(event_of(copy_with_uid(env, "bob", uid))["STATUS"]) == "CANCELLED"
    assert sorted(inbox_methods(env, "bob", uid)) == ["CANCEL", "REQUEST"]


def test_removed_attendee_gets_a_cancel_and_schedule_agent_client_is_left_alone(env):
    uid = f"tb-{uuid.uuid4()}"
    path = f"/caldav/alice/Calendar/{uid}.ics"
    text = invitation(uid, address("alice"), {address("bob"): INVITED,
                                              address("carol"): "SCHEDULE-AGENT=CLIENT;" + INVITED})
    assert put(env, "alice", path, text).status_code == 201
    assert inbox_methods(env, "carol", uid) == []  # the client schedules her (RFC 6638 section 7.1)
    mine = event_of(get_text(env, "alice", path))
    assert "SCHEDULE-STATUS" not in attendee(mine, address("carol")).params
    assert attendee(mine, address("bob")).params["SCHEDULE-STATUS"] == "1.2"

    without_bob = invitation(uid, address("alice"), {address("carol"): "SCHEDULE-AGENT=CLIENT;" + INVITED},
                             summary="Planning, smaller")
    assert put(env, "alice", path, without_bob).status_code in (201, 204)
    assert sorted(inbox_methods(env, "bob", uid)) == ["CANCEL", "REQUEST"]
    assert str(event_of(copy_with_uid(env, "bob", uid))["STATUS"]) == "CANCELLED"


def test_status_cancelled_sends_cancel(env):
    uid = f"tb-{uuid.uuid4()}"
    path = f"/caldav/alice/Calendar/{uid}.ics"
    assert put(env, "alice", path, invitation(uid, address("alice"), {address("bob"): INVITED})).status_code == 201
    cancelled = invitation(uid, address("alice"), {address("bob"): INVITED}, extra="STATUS:CANCELLED")
    assert put(env, "alice", path, cancelled).status_code in (201, 204)
    assert str(event_of(copy_with_uid(env, "bob", uid))["STATUS"]) == "CANCELLED"


def test_organizer_must_be_the_user_to_schedule(env):
    """Bob cannot send invitations in Alice's name: his store copy keeps the event, nobody
    is invited, and the attendees' statuses say so (3.8: no authority)."""
    uid = f"tb-{uuid.uuid4()}"
    path = f"/caldav/bob/Calendar/{uid}.ics"
    text = invitation(uid, address("alice"), {address("carol"): INVITED})
    assert put(env, "bob", path, text).status_code == 201
    assert inbox_methods(env, "carol", uid) == []


def test_attendees_beyond_the_limit_are_not_scheduled(env):
    uid = f"tb-{uuid.uuid4()}"
    path = f"/caldav/alice/Calendar/{uid}.ics"
    many = {f"guest{i}@{DOMAIN}": INVITED for i in range(7)}
    assert put(env, "alice", path, invitation(uid, address("alice"), many)).status_code == 201
    mine = event_of(get_text(env, "alice", path))
    statuses = [attendee(mine, who).params.get("SCHEDULE-STATUS") for who in many]
    assert statuses.count(None) == 2 and len([s for s in statuses if s]) == 5  # ical_max_schedule_attendees


# -- free-busy through the outbox (RFC 6638 section 6.2)

def freebusy_request(organizer: str, attendees: list[str], start: str, end: str) -> str:
    lines = ["BEGIN:VCALENDAR", "PRODID:-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN", "VERSION:2.0",
             "METHOD:REQUEST", "BEGIN:VFREEBUSY", f"DTSTAMP:20270301T080000Z", f"ORGANIZER:mailto:{organizer}",
             f"DTSTART:{start}", f"DTEND:{end}", f"UID:{uuid.uuid4()}"]
    lines += [f"ATTENDEE;PARTSTAT=NEEDS-ACTION;ROLE=REQ-PARTICIPANT;CUTYPE=INDIVIDUAL:mailto:{a}" for a in attendees]
    lines += ["END:VFREEBUSY", "END:VCALENDAR", ""]
    return "\r\n".join(lines)


@pytest.mark.database_engines("sqlite", "mariadb")
def test_freebusy_of_local_users_through_the_outbox(env):
    busy_uid = f"busy-{uuid.uuid4()}"
    r = put(env, "carol", f"/caldav/carol/Calendar/{busy_uid}.ics",
            invitation(busy_uid, address("carol"), {}, start="20270401T130000Z", end="20270401T143000Z"))
    assert r.status_code == 201
    weekly = f"weekly-{uuid.uuid4()}"
    r = put(env, "carol", f"/caldav/carol/Calendar/{weekly}.ics",
            invitation(weekly, address("carol"), {}, start="20270329T080000Z", end="20270329T083000Z",
                       extra="RRULE:FREQ=WEEKLY"))
    assert r.status_code == 201
    body = freebusy_request(address("alice"), [address("carol"), "stranger@" + DOMAIN],
                            "20270401T000000Z", "20270408T000000Z")
    r = env.request("POST", "/caldav/alice/schedule-outbox/", body, auth=auth("alice"),
                    Content_Type="text/calendar; charset=utf-8")
    assert r.status_code == 200, r.text
    responses = {el.findtext(f"{CAL}recipient/{DAV}href"): el for el in xml(r).iter(CAL + "response")}
    assert responses["mailto:stranger@" + DOMAIN].findtext(CAL + "request-status").startswith("3.7")
    carol = responses[f"mailto:{address('carol')}"]
    assert carol.findtext(CAL + "request-status").startswith("2.0")
    reply = icalendar.Calendar.from_ical(carol.findtext(CAL + "calendar-data"))
    assert str(reply["METHOD"]) == "REPLY"
    periods = []
    for line in carol.findtext(CAL + "calendar-data").replace("\r\n ", "").splitlines():
        if line.startswith("FREEBUSY"):
            periods += [tuple(p.split("/")) for p in line.partition(":")[2].split(",")]
    assert ("20270401T130000Z", "20270401T143000Z") in periods
    assert ("20270405T080000Z", "20270405T083000Z") in periods  # the weekly series' instance in the range


def test_outbox_refuses_a_request_in_someone_elses_name(env):
    body = freebusy_request(address("bob"), [address("carol")], "20270401T000000Z", "20270408T000000Z")
    r = env.request("POST", "/caldav/alice/schedule-outbox/", body, auth=auth("alice"),
                    Content_Type="text/calendar")
    assert r.status_code == 403
    assert xml(r).find(CAL + "organizer-allowed") is not None
    r = env.request("POST", "/caldav/alice/schedule-outbox/", "not a calendar", auth=auth("alice"),
                    Content_Type="text/calendar")
    assert r.status_code == 400
    # The dates a REPORT may name bound a free-busy request too (ical_max_date_time).
    body = freebusy_request(address("alice"), [address("carol")], "20270401T000000Z", "21500101T000000Z")
    r = env.request("POST", "/caldav/alice/schedule-outbox/", body, auth=auth("alice"), Content_Type="text/calendar")
    assert r.status_code == 403 and xml(r).find(CAL + "max-date-time") is not None


# -- iMIP (RFC 6047) to attendees outside the store

def test_external_attendee_gets_an_imip_request(env, sink):
    uid = f"tb-{uuid.uuid4()}"
    path = f"/caldav/alice/Calendar/{uid}.ics"
    assert put(env, "alice", path, invitation(uid, address("alice"), {EXTERNAL: INVITED},
                                              summary="Vendor call")).status_code == 201
    found = [m for m in sink.wait_for(EXTERNAL) if uid.encode() in _calendar_part(m.data)]
    assert found, "no iMIP message reached the relay"
    message = email.message_from_bytes(found[-1].data, policy=email.policy.default)
    assert message["From"] == address("alice") and message["To"] == EXTERNAL
    assert "Vendor call" in message["Subject"]
    part = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
    assert part.get_param("method") == "REQUEST"
    itip = icalendar.Calendar.from_ical(part.get_content())
    assert str(itip["METHOD"]) == "REQUEST"
    assert str(itip.walk("VEVENT")[0]["UID"]) == uid
    assert "SCHEDULE-STATUS" not in part.get_content()


def imip_mail(sender: str, recipient: str, itip_text: str) -> bytes:
    """An iMIP message as an outside calendar (RFC 6047 section 2.4) sends one."""
    message = email.message.EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = "Invitation"
    message["Message-ID"] = email.utils.make_msgid(domain="elsewhere.test")
    message.set_content("You are invited.\n")
    method = "REPLY" if "METHOD:REPLY" in itip_text else "CANCEL" if "METHOD:CANCEL" in itip_text else "REQUEST"
    message.add_alternative(itip_text.encode(), maintype="text", subtype="calendar",
                            params={"method": method, "charset": "UTF-8"})
    return message.as_bytes(policy=email.policy.SMTP)


def deliver(env, sender: str, recipient: str, message: bytes) -> None:
    with smtplib.LMTP("127.0.0.1", env.server.port("lmtp"), timeout=scaled(60)) as lmtp:
        assert lmtp.sendmail(sender, [recipient], message) == {}


def with_method(text: str, method: str) -> str:
    return text.replace("VERSION:2.0\r\n", f"VERSION:2.0\r\nMETHOD:{method}\r\n", 1)


def test_incoming_imip_request_reply_and_cancel_are_applied(env):
    # An outside organizer invites Bob by mail: the invitation lands in his calendar.
    uid = f"mail-{uuid.uuid4()}"
    request = with_method(invitation(uid, EXTERNAL, {address("bob"): INVITED}, summary="Outside"), "REQUEST")
    deliver(env, EXTERNAL, address("bob"), imip_mail(EXTERNAL, address("bob"), request))
    copy = event_of(copy_with_uid(env, "bob", uid))
    assert str(copy["SUMMARY"]) == "Outside"
    assert inbox_methods(env, "bob", uid) == ["REQUEST"]
    # The organizer cancels by mail.
    cancel = with_method(invitation(uid, EXTERNAL, {address("bob"): INVITED}, extra="STATUS:CANCELLED"), "CANCEL")
    deliver(env, EXTERNAL, address("bob"), imip_mail(EXTERNAL, address("bob"), cancel))
    assert str(event_of(copy_with_uid(env, "bob", uid))["STATUS"]) == "CANCELLED"

    # Alice invited the outsider; their reply by mail updates her event.
    uid = f"mail-{uuid.uuid4()}"
    path = f"/caldav/alice/Calendar/{uid}.ics"
    assert put(env, "alice", path, invitation(uid, address("alice"), {EXTERNAL: INVITED})).status_code == 201
    reply = with_method(invitation(uid, address("alice"), {EXTERNAL: "PARTSTAT=TENTATIVE"}), "REPLY")
    reply = reply.replace(f"ATTENDEE;RSVP=TRUE;PARTSTAT=ACCEPTED;ROLE=CHAIR:mailto:{address('alice')}\r\n", "")
    deliver(env, EXTERNAL, address("alice"), imip_mail(EXTERNAL, address("alice"), reply))
    assert attendee(event_of(get_text(env, "alice", path)), EXTERNAL).params["PARTSTAT"] == "TENTATIVE"


def test_incoming_imip_from_someone_else_than_the_organizer_is_not_applied(env):
    uid = f"mail-{uuid.uuid4()}"
    request = with_method(invitation(uid, EXTERNAL, {address("carol"): INVITED}), "REQUEST")
    deliver(env, "forger@elsewhere.test", address("carol"), imip_mail("forger@elsewhere.test", address("carol"), request))
    assert inbox_methods(env, "carol", uid) == []
    assert not [t for t in collection_texts(env, "carol", "/caldav/carol/Calendar/") if uid in t]


def _calendar_part(data: bytes) -> bytes:
    message = email.message_from_bytes(data, policy=email.policy.default)
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            return part.get_content().encode()
    return b""


# -- the caldav library's scheduling calls

def client(env, user: str) -> caldav.DAVClient:
    return caldav.DAVClient(url=env.url("/caldav/"), username=user, password=PASSWORDS[user],
                            timeout=scaled(REQUEST_TIMEOUT))


def test_caldav_library_scheduling_calls(env):
    with client(env, "alice") as alice, client(env, "bob") as bob:
        principal = alice.principal()
        assert f"mailto:{address('alice')}" in principal.calendar_user_address_set()
        assert str(principal.schedule_inbox().url).endswith("/caldav/alice/schedule-inbox/")
        assert str(principal.schedule_outbox().url).endswith("/caldav/alice/schedule-outbox/")
        calendar = principal.calendar(cal_url=env.url("/caldav/alice/Calendar/"))
        uid = f"lib-{uuid.uuid4()}"
        ical = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
                f"UID:{uid}\r\nDTSTAMP:20270301T080000Z\r\nDTSTART:20270410T100000Z\r\n"
                "DTEND:20270410T110000Z\r\nSUMMARY:Library invite\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
        calendar.save_with_invites(ical, [f"mailto:{address('bob')}"])

        bob_principal = bob.principal()
        invites = [item for item in bob_principal.schedule_inbox().get_items() if uid in item.data]
        assert len(invites) == 1 and invites[0].is_invite_request()
        # The copy the server placed in Bob's calendar, accepted as the library does on an
        # auto-scheduling server.
        copy = bob_principal.calendar(cal_url=env.url("/caldav/bob/Calendar/")).event_by_uid(uid)
        copy.change_attendee_status(attendee=f"mailto:{address('bob')}", partstat="ACCEPTED")
        copy.save(increase_seqno=False)
        organizer_copy = calendar.event_by_uid(uid)
        assert attendee(organizer_copy.icalendar_component, address("bob")).params["PARTSTAT"] == "ACCEPTED"
        replies = [item for item in principal.schedule_inbox().get_items() if uid in item.data]
        assert [item.is_invite_reply() for item in replies] == [True]

        # accept_invite() on the inbox item, as the library does on a server it knows nothing of.
        uid2 = f"lib-{uuid.uuid4()}"
        calendar.save_with_invites(ical.replace(uid, uid2), [f"mailto:{address('bob')}"])
        [invite] = [item for item in bob_principal.schedule_inbox().get_items() if uid2 in item.data]
        invite.accept_invite(calendar=bob_principal.calendar(cal_url=env.url("/caldav/bob/Calendar/")))
        assert attendee(calendar.event_by_uid(uid2).icalendar_component,
                        address("bob")).params["PARTSTAT"] == "ACCEPTED"

        busy = principal.freebusy_request(datetime(2027, 4, 10, tzinfo=timezone.utc),
                                          datetime(2027, 4, 11, tzinfo=timezone.utc), [f"mailto:{address('bob')}"])
        assert busy["errors"] == {}
        reply = busy[f"mailto:{address('bob')}"].data
        lines = reply.replace("\r\n", "\n").replace("\n ", "").splitlines()
        assert [line.partition(":")[2] for line in lines if line.startswith("FREEBUSY;FBTYPE=BUSY")] == [
            "20270410T100000Z/20270410T110000Z"]


# -- Schedule-Tag (RFC 6638 section 3.2.10) and If-Schedule-Tag-Match (section 8.3)

def test_schedule_tag_survives_replies_and_guards_the_attendees_copy(env):
    uid = f"tag-{uuid.uuid4()}"
    path = f"/caldav/alice/Calendar/{uid}.ics"
    r = put(env, "alice", path, invitation(uid, address("alice"), {address("bob"): INVITED}))
    assert r.status_code == 201 and r.headers.get("schedule-tag")
    bob_path = f"/caldav/bob/Calendar/{uid}.ics"
    got = env.request("GET", bob_path, auth=auth("bob"))
    tag = got.headers["schedule-tag"]
    listed = propfind(env, bob_path, "<c:schedule-tag/><d:getetag/>", auth=auth("bob"))
    assert xml(listed).findtext(f".//{CAL}schedule-tag") == tag

    # Bob's answer does not change the tag of his copy or of Alice's.
    organizer_tag = env.request("GET", path, auth=auth("alice")).headers["schedule-tag"]
    cal = icalendar.Calendar.from_ical(got.text)
    attendee(cal.walk("VEVENT")[0], address("bob")).params["PARTSTAT"] = "TENTATIVE"
    answered = put(env, "bob", bob_path, cal.to_ical().decode(), If_Schedule_Tag_Match=tag)
    assert answered.status_code == 204, answered.text
    assert answered.headers["schedule-tag"] == tag
    assert env.request("GET", path, auth=auth("alice")).headers["schedule-tag"] == organizer_tag
    assert attendee(event_of(get_text(env, "alice", path)), address("bob")).params["PARTSTAT"] == "TENTATIVE"

    # The organizer moves the event: Bob's client, still holding the old tag, is refused.
    moved = invitation(uid, address("alice"), {address("bob"): INVITED}, start="20270316T090000Z",
                       end="20270316T100000Z")
    assert put(env, "alice", path, moved).status_code == 204
    refused = put(env, "bob", bob_path, cal.to_ical().decode(), If_Schedule_Tag_Match=tag)
    assert refused.status_code == 412
    assert env.request("GET", bob_path, auth=auth("bob")).headers["schedule-tag"] != tag
    assert "20270316T090000Z" in get_text(env, "bob", bob_path)


# -- the store's side of the contract, through the adapter

CONTRACT = """
import json, sys
from twisted.internet import defer, task
from shared.config import Config
from shared.errors import Forbidden
from shared.model import Adapter

async def main(reactor, socket_path, user, password, forged, recipient, start, end):
    adapter = Adapter(Config({"server_socket": socket_path}), reactor)
    session = await adapter.logon(user, password)
    out = {}
    try:
        await session.schedule_message(forged, [recipient])
        out["forged"] = "sent"
    except Forbidden:
        out["forged"] = "forbidden"
    results = await session.free_busy_items(int(start), int(end), [recipient])
    out["items"] = [list(r.items) for r in results]
    await session.logoff()
    adapter.close()
    print(json.dumps(out))

task.react(lambda reactor, *a: defer.Deferred.fromCoroutine(main(reactor, *a)), sys.argv[1:])
"""


def test_store_sends_only_as_the_caller_and_free_busy_shows_only_times(env):
    uid = f"private-{uuid.uuid4()}"
    r = put(env, "carol", f"/caldav/carol/Calendar/{uid}.ics",
            invitation(uid, address("carol"), {}, summary="Secret interview", start="20270402T090000Z",
                       end="20270402T100000Z", extra="LOCATION:Room 7\r\nDESCRIPTION:confidential"))
    assert r.status_code == 201
    forged = with_method(invitation(f"forged-{uuid.uuid4()}", address("bob"), {address("carol"): INVITED}), "REQUEST")
    done = subprocess.run([sys.executable, "-c", CONTRACT, env.server.socket_path, "alice", PASSWORDS["alice"],
                           forged, address("carol"), str(int(datetime(2027, 4, 1, tzinfo=timezone.utc).timestamp())),
                           str(int(datetime(2027, 4, 8, tzinfo=timezone.utc).timestamp()))], cwd=ROOT, check=True, timeout=120, capture_output=True,
                          text=True)
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["forged"] == "forbidden"
    [items] = answer["items"]
    mine = [text for text in items if uid in text]
    assert len(mine) == 1
    assert "DTSTART:20270402T090000Z" in mine[0]
    for private in ("Secret interview", "Room 7", "confidential", "ORGANIZER"):
        assert private not in mine[0]


def test_replies_arriving_together_all_reach_the_organizers_copy(env):
    def accept(user: str, uid: str) -> int:
        path = f"/caldav/{user}/Calendar/{uid}.ics"
        cal = icalendar.Calendar.from_ical(get_text(env, user, path))
        attendee(cal.walk("VEVENT")[0], address(user)).params["PARTSTAT"] = "ACCEPTED"
        return put(env, user, path, cal.to_ical().decode()).status_code

    for _ in range(3):
        uid = f"together-{uuid.uuid4()}"
        path = f"/caldav/alice/Calendar/{uid}.ics"
        text = invitation(uid, address("alice"), {address("bob"): INVITED, address("carol"): INVITED})
        assert put(env, "alice", path, text).status_code == 201
        with ThreadPoolExecutor(2) as pool:
            assert sorted(pool.map(accept, ["bob", "carol"], [uid, uid])) == [204, 204]
        mine = event_of(get_text(env, "alice", path))
        assert [attendee(mine, address(u)).params["PARTSTAT"] for u in ("bob", "carol")] == ["ACCEPTED", "ACCEPTED"]


def test_storing_the_same_event_again_sends_nothing_new(env):
    uid = f"again-{uuid.uuid4()}"
    path = f"/caldav/alice/Calendar/{uid}.ics"
    text = invitation(uid, address("alice"), {address("bob"): INVITED})
    assert put(env, "alice", path, text).status_code == 201
    # Thunderbird stores the object again, e.g. after dismissing an alarm: no new invitation.
    stored = get_text(env, "alice", path)
    assert put(env, "alice", path, stored.replace("SEQUENCE:0", "SEQUENCE:0\r\nX-MOZ-LASTACK:20270301T090000Z")
               ).status_code == 204
    assert inbox_methods(env, "bob", uid) == ["REQUEST"]
    assert attendee(event_of(get_text(env, "alice", path)), address("bob")).params["SCHEDULE-STATUS"] == "1.2"
    # A real change (another room) is sent.
    assert put(env, "alice", path, invitation(uid, address("alice"), {address("bob"): INVITED},
                                              extra="LOCATION:Room 2")).status_code == 204
    assert inbox_methods(env, "bob", uid) == ["REQUEST", "REQUEST"]
    assert str(event_of(copy_with_uid(env, "bob", uid))["LOCATION"]) == "Room 2"


def test_inbox_is_read_by_query_and_sync_and_emptied_by_delete(env):
    """What Thunderbird does with the inbox: list it, read its messages, delete them."""
    uid = f"inbox-{uuid.uuid4()}"
    assert put(env, "alice", f"/caldav/alice/Calendar/{uid}.ics",
               invitation(uid, address("alice"), {address("carol"): INVITED})).status_code == 201
    inbox = "/caldav/carol/schedule-inbox/"
    query = ('<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/>'
             '<c:calendar-data/></d:prop><c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT"/>'
             '</c:comp-filter></c:filter></c:calendar-query>')
    r = env.request("REPORT", inbox, query, auth=auth("carol"), Depth="1", Content_Type="application/xml")
    assert r.status_code == 207, r.text
    found = [el for el in xml(r).iter(CAL + "calendar-data") if el.text and uid in el.text]
    assert len(found) == 1 and "METHOD:REQUEST" in found[0].text
    sync = ('<d:sync-collection xmlns:d="DAV:"><d:sync-token/><d:sync-level>1</d:sync-level>'
            '<d:prop><d:getetag/></d:prop></d:sync-collection>')
    r = env.request("REPORT", inbox, sync, auth=auth("carol"), Content_Type="application/xml")
    assert r.status_code == 207, r.text
    token = xml(r).findtext(DAV + "sync-token")
    mine = [unquote(h) for h in hrefs(r) if h.endswith(".ics") and uid in get_text(env, "carol", unquote(h))]
    assert len(mine) == 1
    assert env.request("DELETE", mine[0], auth=auth("carol")).status_code in (200, 204)
    assert inbox_methods(env, "carol", uid) == []
    r = env.request("REPORT", inbox, sync.replace("<d:sync-token/>", f"<d:sync-token>{token}</d:sync-token>"),
                    auth=auth("carol"), Content_Type="application/xml")
    assert r.status_code == 207 and mine[0] in [unquote(h) for h in hrefs(r)]


def test_moving_an_event_to_another_calendar_cancels_nobody(env):
    r = env.request("MKCALENDAR", "/caldav/alice/Projects/", auth=auth("alice"))
    assert r.status_code == 201, r.text
    uid = f"move-{uuid.uuid4()}"
    path = f"/caldav/alice/Calendar/{uid}.ics"
    assert put(env, "alice", path, invitation(uid, address("alice"), {address("bob"): INVITED})).status_code == 201
    r = env.request("MOVE", path, auth=auth("alice"), Destination=env.url(f"/caldav/alice/Projects/{uid}.ics"))
    assert r.status_code in (201, 204), r.text
    assert inbox_methods(env, "bob", uid) == ["REQUEST"]
    assert "STATUS" not in event_of(copy_with_uid(env, "bob", uid))
