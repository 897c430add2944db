"""PUT of a whole calendar (the iCal feed): cutting it into objects, and updating a calendar
by difference inside a real `groupware serve`."""
from __future__ import annotations

import pytest

from gateways.caldav.feed_import import content_key, parse_feed, plan_import
from shared.errors import BadRequest
from caldav_env import DAV, event, new_calendar, propfind, sync_collection, todo, xml

pytestmark = pytest.mark.gateway_env("caldav", users={"bob": "bob-secret"})

ZONE = ("BEGIN:VTIMEZONE\r\nTZID:Europe/Amsterdam\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
        "TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n")


def body_of(text: str) -> str:
    """The components of a one-object calendar."""
    return text.split("PRODID:-//test//EN\r\n", 1)[1].rsplit("END:VCALENDAR", 1)[0]


def whole(*objects: str, head: str = "") -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n" + head
            + "".join(body_of(o) for o in objects) + "END:VCALENDAR\r\n")


# -- cutting a calendar into objects (no network) ---------------------------------------

def test_objects_are_cut_by_uid_with_the_zones_they_use():
    master = event("series", extra="RRULE:FREQ=WEEKLY\r\n").replace(
        "DTSTART:20261201T100000Z", "DTSTART;TZID=Europe/Amsterdam:20261201T100000")
    override = event("series", summary="moved", extra="RECURRENCE-ID;TZID=Europe/Amsterdam:20261208T100000\r\n")
    text = whole(master, event("plain"), override, head="X-WR-CALNAME:Team\\, all\r\n" + ZONE)
    feed = parse_feed(text)
    assert feed.display_name == "Team, all"
    assert sorted(feed.objects) == ["plain", "series"]
    series = feed.object_text(feed.objects["series"])
    assert series.count("BEGIN:VEVENT") == 2 and "TZID:Europe/Amsterdam\r\n" in series
    assert "VTIMEZONE" not in feed.object_text(feed.objects["plain"])


@pytest.mark.parametrize("text", [
    "", "not a calendar", "BEGIN:VEVENT\r\nUID:x\r\nEND:VEVENT\r\n",
    "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nEND:VCALENDAR\r\n",
    "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:no uid\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\nBEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n",
])
def test_what_is_not_one_vcalendar_is_refused(text):
    with pytest.raises(BadRequest):
        parse_feed(text)


def test_unchanged_objects_are_left_alone_whatever_their_wrapping_and_dtstamp():
    stored = event("a").replace("PRODID:-//test//EN", "PRODID:-//other//EN\r\nCALSCALE:GREGORIAN")
    feed = parse_feed(whole(event("a").replace("DTSTAMP:20260101", "DTSTAMP:20270101"), event("b")))
    plan = plan_import(feed, [("a.ics", "a", stored), ("c.ics", "c", event("c"))])
    assert plan.unchanged == 1 and plan.deletes == ["c.ics"]
    assert [name for name, _ in plan.saves] == ["b.ics"]
    assert content_key(stored) != content_key(event("a", summary="changed"))


def test_new_names_do_not_take_an_existing_name():
    feed = parse_feed(whole(event("x"), event("weird/uid")))
    plan = plan_import(feed, [("x.ics", "other", event("other"))])
    names = sorted(name for name, _ in plan.saves)
    assert "x.ics" not in names and len(names) == 2 and all("/" not in n for n in names)


# -- against the gateway ------------------------------------------------------------

def etags(env, cal: str) -> dict[str, str]:
    root = xml(propfind(env, cal, "<d:getetag/>", depth="1"))
    return {r.findtext(DAV + "href"): r.findtext(f".//{DAV}getetag") for r in root.iter(DAV + "response")
            if r.findtext(DAV + "href").endswith(".ics")}


def test_feed_round_trip_changes_nothing(env):
    cal = new_calendar(env, "roundtrip")
    for uid in ("r1", "r2", "r3"):
        assert env.request("PUT", f"{cal}{uid}.ics", event(uid)).status_code == 201
    before = etags(env, cal)
    token = xml(sync_collection(env, cal)).findtext(DAV + "sync-token")
    feed = env.request("GET", "/ical/demo/roundtrip").text
    r = env.request("PUT", "/ical/demo/roundtrip", feed, Content_Type="text/calendar")
    assert r.status_code == 204, r.text
    assert etags(env, cal) == before
    assert xml(sync_collection(env, cal, token)).findtext(DAV + "sync-token") == token


def test_put_creates_a_calendar_and_names_it_without_losing_its_colour(env):
    env.request("DELETE", "/caldav/demo/created/")
    r = env.request("PUT", "/ical/demo/created", whole(event("c1"), head="X-WR-CALNAME:Holidays\r\n"))
    assert r.status_code == 201, r.text
    cal = "/caldav/demo/created/"
    assert list(etags(env, cal)) == [cal + "c1.ics"]
    body = ('<d:propertyupdate xmlns:d="DAV:" xmlns:i="http://apple.com/ns/ical/"><d:set><d:prop>'
            '<i:calendar-color>#00FF00FF</i:calendar-color></d:prop></d:set></d:propertyupdate>')
    assert env.request("PROPPATCH", cal, body, Content_Type="application/xml").status_code == 207
    r = env.request("PUT", "/ical/demo/created", whole(event("c2"), head="X-WR-CALNAME:Days off\r\n"))
    assert r.status_code == 204
    root = xml(propfind(env, cal, '<d:displayname/><i:calendar-color xmlns:i="http://apple.com/ns/ical/"/>'))
    assert root.findtext(f".//{DAV}displayname") == "Days off"
    assert root.findtext(".//{http://apple.com/ns/ical/}calendar-color") == "#00FF00FF"
    assert list(etags(env, cal)) == [cal + "c2.ics"]


def test_tasks_put_into_a_new_calendar_make_a_task_list(env):
    env.request("DELETE", "/caldav/demo/chores/")
    assert env.request("PUT", "/caldav/demo/chores/", whole(todo("t1"), todo("t2"))).status_code == 201
    root = xml(propfind(env, "/caldav/demo/chores/", "<c:supported-calendar-component-set/>"))
    assert [c.get("name") for c in root.iter("{urn:ietf:params:xml:ns:caldav}comp")] == ["VTODO"]


def test_bad_bodies_and_preconditions(env):
    cal = new_calendar(env, "guarded")
    env.request("PUT", cal + "g.ics", event("g"))
    assert env.request("PUT", "/ical/demo/guarded", "BEGIN:VCALENDAR\r\nnonsense").status_code == 400
    broken = whole(event("bad").replace("DTSTART:20261201T100000Z", "DTSTART:notadate"))
    assert env.request("PUT", "/ical/demo/guarded", broken).status_code == 400
    assert env.request("PUT", "/ical/demo/guarded", whole(event("n")), If_Match='"stale"').status_code == 412
    assert env.request("PUT", "/ical/demo/guarded", whole(event("n")), If_None_Match="*").status_code == 412
    assert list(etags(env, cal)) == [cal + "g.ics"]
    etag = xml(propfind(env, cal, "<d:getetag/>")).findtext(f".//{DAV}getetag")
    assert env.request("PUT", "/ical/demo/guarded", whole(event("n")), If_Match=etag).status_code == 204
    assert env.request("PUT", "/ical/bob/Calendar", whole(event("n"))).status_code == 404


def test_a_read_only_share_cannot_be_replaced(env):
    import requests

    bob = ("bob", "bob-secret")
    requests.request("MKCALENDAR", env.url("/caldav/bob/ReadOnlyImport/"), auth=bob, timeout=10)
    env.grant("bob", "bob-secret", "ReadOnlyImport", "demo", "lrs")
    home = xml(propfind(env, "/caldav/demo/", "<d:displayname/>", depth="1"))
    shared = next(h.text for h in home.iter(DAV + "href") if h.text.startswith("/caldav/demo/ReadOnlyImport~"))
    segment = shared.rstrip("/").rsplit("/", 1)[1]
    assert env.request("PUT", f"/ical/demo/{segment}", whole(event("sneaky"))).status_code == 403
    assert env.request("PUT", shared, whole(event("sneaky"))).status_code == 403
