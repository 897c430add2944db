"""The CalDAV/iCal gateway inside a real `groupware serve`, driven with raw HTTP on loopback."""
from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

import pytest
import requests

from caldav_env import (CAL, DAV, CalDAVEnv, event, hrefs, new_calendar, propfind, start_env, sync_collection,
                        todo, xml)
from certificates import self_signed_certificate
from harness import ROOT, free_port, non_loopback_address
from raw_clients import read_until_quiet
from waiting import wait_until

pytestmark = [pytest.mark.gateway_env("caldav", users={"bob": "bob-secret"}),
              pytest.mark.database_engines("sqlite", "mariadb")]


# -- discovery -----------------------------------------------------------------

def test_well_known_redirects_to_the_caldav_root(env):
    r = requests.get(env.url("/.well-known/caldav"), allow_redirects=False, timeout=10)
    assert r.status_code == 301
    assert r.headers["Location"] == "/caldav/"


@pytest.mark.parametrize("path", ["/", "/caldav/", "/principals/", "/caldav/demo/Calendar/"])
def test_current_user_principal_on_any_path(env, path):
    r = propfind(env, path, "<d:current-user-principal/>")
    assert r.status_code == 207, r.text
    principal = xml(r).find(f".//{DAV}current-user-principal/{DAV}href")
    assert principal is not None and principal.text == "/caldav/demo/"


def test_calendar_home_lists_calendar_and_tasks_with_their_components(env):
    r = propfind(env, "/caldav/demo/", "<c:calendar-home-set/><c:calendar-user-address-set/>")
    assert xml(r).find(f".//{CAL}calendar-home-set/{DAV}href").text == "/caldav/demo/"
    r = propfind(env, "/caldav/demo/", "<d:resourcetype/><d:displayname/><c:supported-calendar-component-set/>",
                 depth="1")
    assert r.status_code == 207
    components = {}
    for response in xml(r).iter(DAV + "response"):
        href = response.find(DAV + "href").text
        comps = [c.get("name") for c in response.iter(CAL + "comp")]
        components[href] = comps
    assert components["/caldav/demo/Calendar/"] == ["VEVENT"]
    assert components["/caldav/demo/Tasks/"] == ["VTODO"]
    assert not any("Inbox" in h for h in components)


def test_carddav_and_scheduling_are_advertised(env):
    r = env.request("OPTIONS", "/caldav/demo/Calendar/")
    dav = [t.strip() for t in r.headers["DAV"].split(",")]
    assert "calendar-access" in dav and "addressbook" in dav
    assert "calendar-auto-schedule" in dav  # RFC 6638 section 5.1 (ical_scheduling)
    r = env.request("PROPFIND", "/caldav/demo/", Depth="0", Accept_Encoding="gzip")
    assert r.status_code == 207 and "addressbook-home-set" in r.text
    assert "calendar-home-set" in r.text


# -- authentication ---------------------------------------------------------------

def test_no_credentials_get_a_basic_challenge(env):
    r = requests.request("PROPFIND", env.url("/caldav/"), timeout=10)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Basic realm=")


def test_bad_password_is_401_and_logged_with_user_and_address(env):
    r = propfind(env, "/caldav/demo/", "<d:displayname/>", auth=("demo", "wrong"))
    assert r.status_code == 401
    wait_until(lambda: "caldav login failed: user=demo rip=127.0.0.1" in env.log(),
               message="no log line for the failed login")


def test_caldav_switched_off_for_a_user_gets_401(env):
    env.add_user("carol", "carol-secret")
    env.server.cli("user", "features", "carol", "--disable-feature", "caldav")
    r = propfind(env, "/caldav/carol/", "<d:displayname/>", auth=("carol", "carol-secret"))
    assert r.status_code == 401


def test_another_users_calendars_are_not_found(env):
    r = propfind(env, "/caldav/bob/Calendar/", "<d:displayname/>")
    assert r.status_code in (403, 404)
    r = env.request("GET", "/caldav/bob/Calendar/x.ics")
    assert r.status_code in (403, 404)
    r = env.request("PUT", "/caldav/bob/Calendar/x.ics", event("intruder"), Content_Type="text/calendar")
    assert r.status_code in (403, 404)
    r = propfind(env, "/caldav/bob/Calendar/", "<d:displayname/>", auth=("bob", "bob-secret"))
    assert r.status_code == 207


def test_granted_calendars_appear_in_the_home_with_their_rights(env):
    """bob shares his calendar read-only, then read-write; demo's client finds it without a URL."""
    bob = requests.Session()
    bob.auth = ("bob", "bob-secret")
    bob.request("MKCALENDAR", env.url("/caldav/bob/Team/"))
    assert bob.put(env.url("/caldav/bob/Team/t1.ics"), data=event("team-1"), timeout=10).status_code in (201, 204)
    env.grant("bob", "bob-secret", "Team", "demo", "lrs")
    r = propfind(env, "/caldav/demo/", "<d:displayname/><d:resourcetype/>", depth="1")
    shared = [h for h in hrefs(r) if h.startswith("/caldav/demo/Team~")]
    assert len(shared) == 1, hrefs(r)
    cal = shared[0]
    assert "UID:team-1" in env.request("GET", cal + "t1.ics").text
    assert env.request("PUT", cal + "mine.ics", event("demo-in-team")).status_code == 403
    assert env.request("DELETE", cal + "t1.ics").status_code == 403
    env.grant("bob", "bob-secret", "Team", "demo", "lrswipkxte")
    assert env.request("PUT", cal + "mine.ics", event("demo-in-team")).status_code == 201
    assert "UID:demo-in-team" in bob.get(env.url("/caldav/bob/Team/mine.ics"), timeout=10).text
    # bob's other calendars stay invisible to demo.
    assert not any(h.startswith("/caldav/demo/Calendar~") for h in hrefs(propfind(env, "/caldav/demo/", "", depth="1")))


# -- items ---------------------------------------------------------------------------

def test_put_get_delete_with_etags_and_preconditions(env):
    cal = new_calendar(env, "items")
    r = env.request("PUT", cal + "one.ics", event("uid-one"), Content_Type="text/calendar", If_None_Match="*")
    assert r.status_code == 201
    etag = r.headers["ETag"]
    r = env.request("GET", cal + "one.ics")
    assert r.status_code == 200 and r.headers["ETag"] == etag
    assert "UID:uid-one" in r.text and "SUMMARY:meeting" in r.text
    # If-None-Match: * on an existing object, If-Match with a stale tag: 412.
    assert env.request("PUT", cal + "one.ics", event("uid-one"), Content_Type="text/calendar",
                       If_None_Match="*").status_code == 412
    assert env.request("PUT", cal + "one.ics", event("uid-one", summary="x"), Content_Type="text/calendar",
                       If_Match='"stale"').status_code == 412
    r = env.request("PUT", cal + "one.ics", event("uid-one", summary="moved"), Content_Type="text/calendar",
                    If_Match=etag)
    assert r.status_code == 204
    new_etag = r.headers["ETag"]
    assert new_etag != etag
    assert env.request("DELETE", cal + "one.ics", If_Match=etag).status_code == 412
    assert env.request("DELETE", cal + "one.ics", If_Match=new_etag).status_code in (200, 204)
    assert env.request("GET", cal + "one.ics").status_code == 404


def test_same_uid_under_another_name_is_409_no_uid_conflict(env):
    cal = new_calendar(env, "uids")
    assert env.request("PUT", cal + "a.ics", event("dup"), Content_Type="text/calendar").status_code == 201
    r = env.request("PUT", cal + "b.ics", event("dup"), Content_Type="text/calendar")
    assert r.status_code == 409
    assert "no-uid-conflict" in r.text


def test_unicode_names_are_kept(env):
    cal = new_calendar(env, "unicode")
    r = env.request("PUT", cal + "%C3%BC.ics", event("umlaut"), Content_Type="text/calendar")
    assert r.status_code == 201
    r = propfind(env, cal, "<d:getetag/>", depth="1")
    assert "/caldav/demo/unicode/%C3%BC.ics" in hrefs(r) or "/caldav/demo/unicode/ü.ics" in hrefs(r)
    assert env.request("GET", cal + "%C3%BC.ics").status_code == 200


def test_depth_1_listing_matches_radicales_item_answers(env):
    cal = new_calendar(env, "listing")
    for name in ("a.ics", "%C3%BC b&c.ics", "x%3Cy.ics"):
        assert env.request("PUT", cal + name, event(name), Content_Type="text/calendar").status_code == 201
    env.request("PUT", "/caldav/demo/Tasks/list-t.ics", todo("list-t"), Content_Type="text/calendar")
    for path in (cal, "/caldav/demo/Tasks/"):
        for props in ("<d:getetag/>", "<d:getcontenttype/><d:getetag/>", "<d:resourcetype/><d:getetag/>"):
            listing = env.request("PROPFIND", path, f'<d:propfind xmlns:d="DAV:"><d:prop>{props}</d:prop></d:propfind>',
                                  Depth="1", Content_Type="application/xml")
            assert listing.status_code == 207
            root = xml(listing)
            responses = root.findall(DAV + "response")
            collection = propfind(env, path, props)
            assert ET.tostring(responses[0]) == ET.tostring(xml(collection).find(DAV + "response"))
            assert len(responses) > 1
            for resp in responses[1:]:
                # Each item answered as Radicale answers a PROPFIND of that item alone.
                alone = env.request("PROPFIND", resp.find(DAV + "href").text,
                                    f'<d:propfind xmlns:d="DAV:"><d:prop>{props}</d:prop></d:propfind>',
                                    Depth="0", Content_Type="application/xml")
                assert ET.tostring(resp) == ET.tostring(xml(alone).find(DAV + "response"))
    r = env.request("PROPFIND", cal, '<d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>',
                    Depth="1", Content_Type="application/xml", Accept_Encoding="identity")
    assert "content-encoding" not in r.headers and int(r.headers["content-length"]) == len(r.content)


def test_todos_in_the_task_list(env):
    r = env.request("PUT", "/caldav/demo/Tasks/t1.ics", todo("todo-1"), Content_Type="text/calendar")
    assert r.status_code in (201, 204)
    assert "VTODO" in env.request("GET", "/caldav/demo/Tasks/t1.ics").text


def test_unparsable_icalendar_is_400(env):
    cal = new_calendar(env, "bad")
    r = env.request("PUT", cal + "bad.ics", "BEGIN:VCALENDAR\r\nthis is not\r\n", Content_Type="text/calendar")
    assert r.status_code == 400


# -- collections -------------------------------------------------------------------

def test_mkcalendar_proppatch_and_delete_reach_the_store(env):
    cal = new_calendar(env, "project", components="VTODO")
    body = ('<d:propertyupdate xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" '
            'xmlns:i="http://apple.com/ns/ical/"><d:set><d:prop><d:displayname>Project X</d:displayname>'
            '<i:calendar-color>#FF0000FF</i:calendar-color><c:calendar-description>plans</c:calendar-description>'
            '</d:prop></d:set></d:propertyupdate>')
    r = env.request("PROPPATCH", cal, body, Content_Type="application/xml")
    assert r.status_code == 207, r.text
    # A new request (a new folder listing) sees what the store kept.
    r = propfind(env, cal, '<d:displayname/><i:calendar-color xmlns:i="http://apple.com/ns/ical/"/>'
                           '<c:calendar-description/><c:supported-calendar-component-set/>')
    root = xml(r)
    assert root.find(f".//{DAV}displayname").text == "Project X"
    assert root.find(".//{http://apple.com/ns/ical/}calendar-color").text == "#FF0000FF"
    assert root.find(f".//{CAL}calendar-description").text == "plans"
    assert [c.get("name") for c in root.iter(CAL + "comp")] == ["VTODO"]
    assert env.request("DELETE", cal).status_code in (200, 204)
    assert propfind(env, cal, "<d:displayname/>").status_code == 404


# -- reports -------------------------------------------------------------------------

def test_time_range_query_and_multiget(env):
    cal = new_calendar(env, "ranges")
    env.request("PUT", cal + "dec.ics", event("dec", "20261201T100000Z", "20261201T110000Z"))
    env.request("PUT", cal + "jan.ics", event("jan", "20270105T100000Z", "20270105T110000Z"))
    env.request("PUT", cal + "weekly.ics", event("weekly", "20260101T090000Z", "20260101T093000Z",
                                                  extra="RRULE:FREQ=WEEKLY\r\n"))
    query = ('<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/></d:prop>'
             '<c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT">'
             '<c:time-range start="20261130T000000Z" end="20261207T000000Z"/></c:comp-filter></c:comp-filter>'
             '</c:filter></c:calendar-query>')
    r = env.request("REPORT", cal, query, Depth="1", Content_Type="application/xml")
    assert r.status_code == 207
    assert sorted(h.rsplit("/", 1)[1] for h in hrefs(r)) == ["dec.ics", "weekly.ics"]
    multiget = ('<c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop>'
                f'<d:getetag/><c:calendar-data/></d:prop><d:href>{cal}jan.ics</d:href>'
                f'<d:href>{cal}missing.ics</d:href></c:calendar-multiget>')
    r = env.request("REPORT", cal, multiget, Depth="1", Content_Type="application/xml")
    assert r.status_code == 207
    assert "UID:jan" in r.text
    statuses = {resp.find(DAV + "href").text: "".join(s.text for s in resp.iter(DAV + "status"))
                for resp in xml(r).iter(DAV + "response")}
    assert "404" in statuses[cal + "missing.ics"]


def test_sync_collection_reports_changes_and_deletions(env):
    cal = new_calendar(env, "sync")
    env.request("PUT", cal + "a.ics", event("sa"))
    env.request("PUT", cal + "b.ics", event("sb"))
    r = sync_collection(env, cal)
    assert r.status_code == 207
    token = xml(r).find(DAV + "sync-token").text
    assert sorted(h.rsplit("/", 1)[1] for h in hrefs(r)) == ["a.ics", "b.ics"]
    # Nothing changed: nothing reported, same token.
    r = sync_collection(env, cal, token)
    assert hrefs(r) == [] and xml(r).find(DAV + "sync-token").text == token
    env.request("PUT", cal + "a.ics", event("sa", summary="changed"))
    env.request("DELETE", cal + "b.ics")
    env.request("PUT", cal + "c.ics", event("sc"))
    r = sync_collection(env, cal, token)
    status = {resp.find(DAV + "href").text.rsplit("/", 1)[1]: "".join(s.text for s in resp.iter(DAV + "status"))
              for resp in xml(r).iter(DAV + "response")}
    assert set(status) == {"a.ics", "b.ics", "c.ics"}
    assert "404" in status["b.ics"] and "200" in status["a.ics"]
    new_token = xml(r).find(DAV + "sync-token").text
    assert new_token != token
    assert hrefs(sync_collection(env, cal, new_token)) == []


@pytest.mark.parametrize("token", ["http://groupware.invalid/ns/sync/1-2-3", "garbage",
                                   "http://groupware.invalid/ns/sync/999999-1-1"])
def test_unknown_sync_token_is_403_valid_sync_token(env, token):
    r = sync_collection(env, "/caldav/demo/Calendar/", token)
    assert r.status_code == 403
    assert "valid-sync-token" in r.text


def test_collection_etag_follows_changes(env):
    cal = new_calendar(env, "ctag")
    first = xml(propfind(env, cal, "<d:getetag/>")).find(f".//{DAV}getetag").text
    env.request("PUT", cal + "x.ics", event("ctag-x"))
    second = xml(propfind(env, cal, "<d:getetag/>")).find(f".//{DAV}getetag").text
    assert first != second


# -- iCal feed -------------------------------------------------------------------------

def test_ical_feed_get_and_put_by_difference(env):
    cal = new_calendar(env, "feed")
    env.request("PUT", cal + "keep.ics", event("keep"))
    env.request("PUT", cal + "change.ics", event("change"))
    env.request("PUT", cal + "drop.ics", event("drop"))
    keep_etag = env.request("GET", cal + "keep.ics").headers["ETag"]
    r = env.request("GET", "/ical/demo/feed")
    assert r.status_code == 200
    assert r.text.count("BEGIN:VEVENT") == 3
    whole = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
             + "".join(e.split("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n")[1].rsplit("END:VCALENDAR", 1)[0]
                       for e in (event("keep"), event("change", summary="new title"), event("added")))
             + "END:VCALENDAR\r\n")
    r = env.request("PUT", "/ical/demo/feed", whole, Content_Type="text/calendar")
    assert r.status_code in (201, 204), r.text
    assert env.request("GET", cal + "keep.ics").headers["ETag"] == keep_etag
    assert env.request("GET", cal + "drop.ics").status_code == 404
    assert "new title" in env.request("GET", cal + "change.ics").text
    assert "UID:added" in env.request("GET", "/ical/demo/feed").text


# -- hostile input -----------------------------------------------------------------------

BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + "".join(f'<!ENTITY lol{i} "{("&lol%s;" % (i - 1 if i > 1 else "")) * 10}">' for i in range(1, 10))
                  + ']><d:propfind xmlns:d="DAV:"><d:prop><d:displayname>&lol9;</d:displayname></d:prop></d:propfind>')


def test_billion_laughs_is_refused_quickly(env):
    started = time.monotonic()
    r = env.request("PROPFIND", "/caldav/demo/", BILLION_LAUGHS, Depth="0", Content_Type="application/xml")
    assert r.status_code == 400
    assert time.monotonic() - started < 2
    assert propfind(env, "/caldav/demo/", "<d:displayname/>").status_code == 207


@pytest.mark.parametrize("body", [
    ('<?xml version="1.0" encoding="utf-16"?>' + BILLION_LAUGHS.split("?>", 1)[1]).encode("utf-16"),
    b'<?xml version="1.0"?>' + b"<!-- padding -->" * 5000 + BILLION_LAUGHS.split("?>", 1)[1].encode(),
    b'<?xml version="1.0" encoding="utf-32"?><d:propfind xmlns:d="DAV:"><d:allprop/></d:propfind>',
    b'<?xml version="1.0" encoding="zlib"?><d:propfind xmlns:d="DAV:"><d:allprop/></d:propfind>',
], ids=["doctype-in-utf-16", "doctype-after-64-kib", "multi-byte-encoding", "bytes-codec-encoding"])
def test_xml_bodies_a_parser_would_choke_on_are_refused(env, body):
    for method, path in (("PROPFIND", "/caldav/demo/"), ("REPORT", "/caldav/demo/calendar/")):
        r = env.request(method, path, body, Depth="1", Content_Type="application/xml")
        assert r.status_code == 400, (method, r.status_code, r.text[:200])
    assert propfind(env, "/caldav/demo/", "<d:displayname/>").status_code == 207


@pytest.mark.parametrize("method, body", [
    ("PROPFIND", '<d:propfind xmlns:d="DAV:"><d:prop><getetag/><d:displayname/></d:prop></d:propfind>'),
    ("PROPPATCH", '<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><color>red</color></d:prop></d:set>'
                  '</d:propertyupdate>'),
    ("REPORT", '<c:calendar-query xmlns:c="urn:ietf:params:xml:ns:caldav" xmlns:d="DAV:"><d:prop><etag/>'
               '</d:prop></c:calendar-query>'),
])
def test_an_element_without_a_namespace_is_a_bad_request(env, method, body):
    for path in ("/caldav/", "/caldav/demo/", "/caldav/demo/Calendar/"):
        r = env.request(method, path, body, Depth="1", Content_Type="application/xml")
        # Where the body is read it is refused; elsewhere (no rights to PROPPATCH the root) the
        # answer may come first, but it is never a server error.
        assert r.status_code == 400 or (r.status_code == 403 and path == "/caldav/"), \
            (method, path, r.status_code, r.text[:300])
    assert propfind(env, "/caldav/demo/", "<d:displayname/>").status_code == 207


def raw_exchange(env: CalDAVEnv, head: bytes, body: bytes = b"", wait: float = 5.0) -> bytes:
    """The answer to a request. A server may answer (413) and close before the whole body
    is sent: sending stops as soon as an answer arrives, before a reset could discard it."""
    with socket.create_connection(("127.0.0.1", env.port), timeout=wait) as s:
        data = memoryview(head + body)
        try:
            while data and not select.select([s], [], [], 0)[0]:
                sent = s.send(data[:65536])
                data = data[sent:]
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the server stopped reading: its answer is what counts
        try:
            return read_until_quiet(s)
        except ConnectionResetError:
            return b""


def test_body_over_the_limit_is_413_before_it_is_read(env):
    import base64
    token = base64.b64encode(f"demo:{env.password}".encode()).decode()
    head = (f"PUT /caldav/demo/Calendar/big.ics HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {token}\r\n"
            f"Content-Length: {200 * 1024 * 1024}\r\nContent-Type: text/calendar\r\n\r\n").encode()
    started = time.monotonic()
    answer = raw_exchange(env, head, b"BEGIN:VCALENDAR\r\n")  # nothing more is ever sent
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert time.monotonic() - started < 4


def test_chunked_body_over_the_limit_is_413(env):
    import base64
    token = base64.b64encode(f"demo:{env.password}".encode()).decode()
    head = (f"PUT /caldav/demo/Calendar/big.ics HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {token}\r\n"
            "Transfer-Encoding: chunked\r\nContent-Type: text/calendar\r\n\r\n").encode()
    chunk = b"x" * (1024 * 1024)
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(11))
    answer = raw_exchange(env, head, body)
    assert b" 413 " in answer.split(b"\r\n", 1)[0]


@pytest.mark.parametrize("path", ["/caldav/demo/../bob/Calendar/", "/caldav/demo/Calendar/..%2f..%2fbob%2fCalendar/",
                                  "/caldav/demo/Calendar/a%00.ics", "/caldav/bob%2fCalendar/"])
def test_hostile_hrefs_do_not_reach_other_users(env, path):
    r = env.request("PROPFIND", path, Depth="1")
    assert r.status_code in (400, 403, 404), (path, r.status_code)
    assert "bob" not in r.text or r.status_code != 207


def test_huge_rrule_counts_and_many_attendees_are_handled(env):
    cal = new_calendar(env, "huge")
    r = env.request("PUT", cal + "count.ics", event("count", extra="RRULE:FREQ=SECONDLY;COUNT=100000000\r\n"))
    assert r.status_code in (201, 400, 403, 412)
    if r.status_code == 403:  # more instances than ical_max_object_instances (RFC 4791 §5.3.2.1)
        assert "max-instances" in r.text
    attendees = "".join(f"ATTENDEE;CN=Person {i}:mailto:p{i}@example.com\r\n" for i in range(3000))
    r = env.request("PUT", cal + "many.ics", event("many", extra=attendees))
    assert r.status_code in (201, 400, 413)
    assert propfind(env, "/caldav/demo/", "<d:displayname/>").status_code == 207


def test_hostile_requests_do_not_stall_other_users(env):
    """Slow, never-finished uploads hold no worker thread: a normal request still answers."""
    import base64
    token = base64.b64encode(f"demo:{env.password}".encode()).decode()
    socks = []
    try:
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", env.port), timeout=5)
            s.sendall((f"PUT /caldav/demo/Calendar/slow.ics HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {token}\r\n"
                       "Content-Length: 5000\r\n\r\nBEGIN").encode())
            socks.append(s)
        started = time.monotonic()
        r = propfind(env, "/caldav/bob/", "<d:displayname/>", auth=("bob", "bob-secret"))
        assert r.status_code == 207
        assert time.monotonic() - started < 3
    finally:
        for s in socks:
            s.close()


# -- outages -----------------------------------------------------------------------------

def test_store_outage_is_503_with_retry_after_never_401(tmp_path):
    """`groupware ical` alone, with no store server behind its socket."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "groupware.cli", "ical", "--config-dir", os.path.join(ROOT, "conf"),
           "--data-dir", str(tmp_path), "--set", f"server_socket={tmp_path}/absent.sock",
           "--set", f"ical_listen=127.0.0.1:{port}", "--set", f"log_file={tmp_path}/ical.log"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = ""
        while "is running" not in line:
            line = proc.stdout.readline()
            assert line, "groupware ical exited"
        r = requests.request("PROPFIND", f"http://127.0.0.1:{port}/caldav/", auth=("demo", "x"), timeout=30)
        assert r.status_code == 503
        assert int(r.headers["Retry-After"]) > 0
    finally:
        proc.terminate()
        proc.wait(30)
        proc.stdout.close()


def test_plain_http_from_another_host_is_refused_unless_configured():
    from shared.login import is_loopback
    assert is_loopback("127.0.0.1") and is_loopback("::1")
    assert not is_loopback("192.0.2.1") and not is_loopback("not an address")


def test_concurrent_clients(env):
    """Several users' requests in parallel through the worker threads."""
    errors = []

    def work(n: int) -> None:
        try:
            s = requests.Session()
            s.auth = ("bob", "bob-secret") if n % 2 else ("demo", env.password)
            user = "bob" if n % 2 else "demo"
            for i in range(5):
                r = s.put(env.url(f"/caldav/{user}/Calendar/par-{n}-{i}.ics"), data=event(f"par-{n}-{i}"),
                          timeout=30)
                assert r.status_code == 201, r.text
        except Exception as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_https_listener_and_no_basic_auth_over_plain_http_from_other_hosts(tmp_path):
    address = non_loopback_address()
    cert, key = self_signed_certificate(tmp_path)
    plain, tls = free_port(), free_port()
    e = start_env(str(tmp_path / "var"), {"ical_listen": f"127.0.0.1:0 {address}:{plain}",
                                          "icals_listen": f"127.0.0.1:{tls}", "pop3s_listen": "127.0.0.1:0",
                                          "ssl_certificate_file": cert, "ssl_private_key_file": key})
    try:
        assert f"icals listening on 127.0.0.1:{tls}\n" in e.server.output
        r = requests.request("PROPFIND", f"http://{address}:{plain}/caldav/", auth=("demo", e.password),
                             timeout=10)
        assert r.status_code == 403 and "https" in r.text
        r = requests.request("PROPFIND", f"https://localhost:{tls}/caldav/demo/", auth=("demo", e.password),
                             headers={"Depth": "0"}, verify=cert, timeout=10)
        assert r.status_code == 207
    finally:
        e.server.stop()


def test_publish_a_calendar_at_a_secret_url_and_revoke_it(env):
    cal = new_calendar(env, "published")
    env.request("PUT", cal + "pub.ics", event("pub-1", summary="open day"))
    url = env.server.cli("calendar", "publish", "demo", "published",
                         "--set", f"ical_listen=127.0.0.1:{env.port}").strip()
    assert re.fullmatch(rf"http://127\.0\.0\.1:{env.port}/ical/published/[\w-]{{32}}", url), url
    r = requests.get(url, timeout=10)  # no credentials
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/calendar")
    assert "SUMMARY:open day" in r.text and "X-WR-CALNAME:published" in r.text
    assert requests.get(url, headers={"If-None-Match": r.headers["ETag"]}, timeout=10).status_code == 304
    assert requests.put(url, data=event("x"), timeout=10).status_code == 405
    assert requests.get(url[:-3] + "xyz", timeout=10).status_code == 404
    out = env.server.cli("calendar", "unpublish", "demo", "published")
    assert "no longer published" in out
    assert requests.get(url, timeout=10).status_code == 404


def test_free_busy_query(env):
    cal = new_calendar(env, "busy")
    env.request("PUT", cal + "b.ics", event("busy-1", "20261203T100000Z", "20261203T113000Z"))
    body = ('<c:free-busy-query xmlns:c="urn:ietf:params:xml:ns:caldav">'
            '<c:time-range start="20261201T000000Z" end="20261210T000000Z"/></c:free-busy-query>')
    r = env.request("REPORT", cal, body, Depth="1", Content_Type="application/xml")
    assert r.status_code == 200 and "BEGIN:VFREEBUSY" in r.text
    assert "20261203T100000Z/20261203T113000Z" in r.text.replace("\r\n ", "")


def test_sync_tokens_survive_a_restart(tmp_path):
    data = str(tmp_path / "var")
    e = start_env(data)
    try:
        cal = new_calendar(e, "durable")
        e.request("PUT", cal + "a.ics", event("durable-a"))
        token = xml(sync_collection(e, cal)).find(DAV + "sync-token").text
    finally:
        e.server.stop()
    e = start_env(data)
    try:
        r = sync_collection(e, cal, token)
        assert r.status_code == 207 and hrefs(r) == []
        e.request("PUT", cal + "b.ics", event("durable-b"))
        assert [h.rsplit("/", 1)[1] for h in hrefs(sync_collection(e, cal, token))] == ["b.ics"]
    finally:
        e.server.stop()


def test_multiget_names_become_one_indexed_in_query():
    """calendar-multiget asks the store for up to 200 names at once; that must be one IN
    over the (folder, name) index, not a folder scan."""
    from server.storage.restriction import compile_restriction
    names = {"or": [{"cmp": ["name", "eq", f"{i}.ics"]} for i in range(200)]}
    assert " IN " in str(compile_restriction(names, lambda s: None))
    mixed = {"or": [{"cmp": ["name", "eq", "a.ics"]}, {"cmp": ["icalUid", "eq", "a"]}]}
    assert " OR " in str(compile_restriction(mixed, lambda s: None))
