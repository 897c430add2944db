"""Real CalDAV clients against the gateway on loopback: the `caldav` library, vdirsyncer and
khal, and the discovery sequences of iOS/macOS, Thunderbird and DAVx5 replayed as raw HTTP."""
from __future__ import annotations

import datetime
import os
import subprocess
import textwrap
import xml.etree.ElementTree as ET

import pytest

from debian import command, ensure_packages
from caldav_env import CAL, DAV, event, todo

pytestmark = pytest.mark.gateway_env("caldav")

def ensure_debian(*commands: str) -> None:
    """vdirsyncer and khal (Debian packages named after their commands), installed when missing."""
    ensure_packages({name: command(name) for name in commands})


@pytest.fixture
def client(env):
    import caldav
    with caldav.DAVClient(url=env.base + "/", username="demo", password=env.password,
                          require_tls=False) as c:
        yield c


# -- the caldav library -------------------------------------------------------------

def test_caldav_library_discovers_and_round_trips_events(client):
    principal = client.principal()
    assert str(principal.url).endswith("/caldav/demo/")
    names = {c.get_display_name() for c in principal.calendars()}
    assert {"Calendar", "Tasks"} <= names
    cal = principal.make_calendar(name="Library", cal_id="library")
    try:
        ev = cal.save_event(event("lib-1", "20261201T100000Z", "20261201T110000Z", "first"))
        cal.save_event(event("lib-2", "20261215T100000Z", "20261215T110000Z", "second"))
        assert {e.icalendar_component["UID"] for e in cal.events()} == {"lib-1", "lib-2"}
        found = cal.search(start=datetime.datetime(2026, 11, 30, tzinfo=datetime.timezone.utc),
                           end=datetime.datetime(2026, 12, 7, tzinfo=datetime.timezone.utc), event=True)
        assert [e.icalendar_component["UID"] for e in found] == ["lib-1"]
        ev.icalendar_component["SUMMARY"] = "renamed"
        ev.save()
        assert str(cal.event_by_uid("lib-1").icalendar_component["SUMMARY"]) == "renamed"
        ev.delete()
        assert {e.icalendar_component["UID"] for e in cal.events()} == {"lib-2"}
    finally:
        cal.delete()


def test_caldav_library_todos(client):
    tasks = next(c for c in client.principal().calendars() if c.get_display_name() == "Tasks")
    saved = tasks.save_todo(todo("lib-todo", "write tests"))
    assert "lib-todo" in {t.icalendar_component["UID"] for t in tasks.todos()}
    saved.delete()


def test_caldav_library_sync_tokens(client):
    cal = client.principal().make_calendar(name="Synced", cal_id="synced")
    try:
        cal.save_event(event("s-1"))
        objects = cal.objects_by_sync_token(load_objects=True)
        assert {o.icalendar_component["UID"] for o in objects} == {"s-1"}
        token = objects.sync_token
        cal.save_event(event("s-2"))
        later = cal.objects_by_sync_token(sync_token=token, load_objects=True)
        assert {o.icalendar_component["UID"] for o in later} == {"s-2"}
        again = cal.objects_by_sync_token(sync_token=later.sync_token, load_objects=True)
        assert list(again) == []
    finally:
        cal.delete()


# -- vdirsyncer and khal ------------------------------------------------------------------

def vdirsyncer(config: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["vdirsyncer", "-c", config, *args], input="y\n" * 10, capture_output=True,
                          text=True, timeout=120)


def test_vdirsyncer_two_way_sync_and_khal(env, tmp_path):
    ensure_debian("vdirsyncer", "khal")
    import requests
    http = requests.Session()
    http.auth = ("demo", env.password)
    cal_url = env.base + "/caldav/demo/vdir/"
    http.request("DELETE", cal_url)
    assert http.request("MKCALENDAR", cal_url).status_code == 201
    http.put(cal_url + "server-1.ics", data=event("server-1", summary="from server"))
    vdir = tmp_path / "vdir"
    status = tmp_path / "status"
    config = tmp_path / "config"
    config.write_text(textwrap.dedent(f"""\
        [general]
        status_path = "{status}/"

        [pair cal]
        a = "local"
        b = "remote"
        collections = ["vdir"]
        conflict_resolution = "b wins"

        [storage local]
        type = "filesystem"
        path = "{vdir}/"
        fileext = ".ics"

        [storage remote]
        type = "caldav"
        url = "{env.base}/"
        username = "demo"
        password = "{env.password}"
        """))
    r = vdirsyncer(str(config), "discover")
    assert r.returncode == 0, r.stdout + r.stderr
    r = vdirsyncer(str(config), "sync")
    assert r.returncode == 0, r.stdout + r.stderr
    local = vdir / "vdir"
    assert any("UID:server-1" in p.read_text() for p in local.glob("*.ics"))
    # Changes on both sides.
    (local / "local-1.ics").write_text(event("local-1", summary="from laptop"))
    http.put(cal_url + "server-2.ics", data=event("server-2", summary="second from server"))
    r = vdirsyncer(str(config), "sync")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "UID:local-1" in http.get(env.base + "/ical/demo/vdir").text
    assert any("UID:server-2" in p.read_text() for p in local.glob("*.ics"))
    # A second sync has nothing to do.
    before = {p.name: p.read_text() for p in local.glob("*.ics")}
    feed = http.get(env.base + "/ical/demo/vdir").text
    r = vdirsyncer(str(config), "sync")
    assert r.returncode == 0
    assert "Copying" not in r.stdout + r.stderr and "Deleting" not in r.stdout + r.stderr
    assert {p.name: p.read_text() for p in local.glob("*.ics")} == before
    assert http.get(env.base + "/ical/demo/vdir").text == feed
    # khal reads what vdirsyncer wrote.
    khal_config = tmp_path / "khal.conf"
    khal_config.write_text(textwrap.dedent(f"""\
        [calendars]
        [[vdir]]
        path = {local}/
        [locale]
        timeformat = %H:%M
        dateformat = %Y-%m-%d
        longdateformat = %Y-%m-%d
        datetimeformat = %Y-%m-%d %H:%M
        longdatetimeformat = %Y-%m-%d %H:%M
        """))
    r = subprocess.run(["khal", "-c", str(khal_config), "list", "2026-12-01", "2d"], capture_output=True,
                       text=True, timeout=60, env=dict(os.environ, TZ="UTC"))
    assert r.returncode == 0, r.stderr
    assert "from server" in r.stdout and "from laptop" in r.stdout


# -- discovery sequences of real clients, as raw HTTP ---------------------------------------

def _propfind(env, path: str, body: str, depth: str = "0", user_agent: str = "") -> ET.Element:
    import requests
    r = requests.request("PROPFIND", env.base + path, data=body.encode(), auth=("demo", env.password),
                         headers={"Depth": depth, "Content-Type": "text/xml; charset=utf-8",
                                  "User-Agent": user_agent}, timeout=30, allow_redirects=False)
    assert r.status_code == 207, (path, r.status_code, r.text)
    return ET.fromstring(r.content)


def _href(root: ET.Element, prop: str) -> str:
    el = root.find(f".//{prop}/{DAV}href")
    assert el is not None, prop
    return el.text


def test_ios_macos_discovery(env):
    """iOS/macOS: /.well-known/caldav, then PROPFIND of the redirect target for the principal,
    then the principal for home set and address set, then the home at depth 1."""
    import requests
    ua = "iOS/18.0 (22A3354) dataaccessd/1.0"
    r = requests.request("PROPFIND", env.base + "/.well-known/caldav", auth=("demo", env.password),
                         headers={"Depth": "0", "User-Agent": ua}, allow_redirects=False, timeout=30)
    assert r.status_code == 301
    root = _propfind(env, r.headers["Location"], '<A:propfind xmlns:A="DAV:"><A:prop>'
                     '<A:current-user-principal/><A:principal-URL/><A:resourcetype/></A:prop></A:propfind>',
                     user_agent=ua)
    principal = _href(root, DAV + "current-user-principal")
    root = _propfind(env, principal, '<A:propfind xmlns:A="DAV:" xmlns:B="urn:ietf:params:xml:ns:caldav">'
                     '<A:prop><B:calendar-home-set/><B:calendar-user-address-set/><A:displayname/>'
                     '<A:principal-collection-set/></A:prop></A:propfind>', user_agent=ua)
    home = _href(root, CAL + "calendar-home-set")
    assert home == "/caldav/demo/"
    root = _propfind(env, home, '<A:propfind xmlns:A="DAV:" xmlns:B="urn:ietf:params:xml:ns:caldav" '
                     'xmlns:C="http://calendarserver.org/ns/" xmlns:D="http://apple.com/ns/ical/"><A:prop>'
                     '<A:resourcetype/><A:displayname/><C:getctag/><A:sync-token/><D:calendar-color/>'
                     '<B:supported-calendar-component-set/><A:current-user-privilege-set/></A:prop></A:propfind>',
                     depth="1", user_agent=ua)
    calendars = [r.find(DAV + "href").text for r in root.iter(DAV + "response")
                 if r.find(f".//{DAV}resourcetype/{CAL}calendar") is not None]
    assert "/caldav/demo/Calendar/" in calendars and "/caldav/demo/Tasks/" in calendars
    assert all(r.find(f".//{DAV}sync-token") is not None for r in root.iter(DAV + "response")
               if r.find(DAV + "href").text in calendars)


def test_thunderbird_discovery(env):
    """Thunderbird: PROPFIND on the server root for the principal, then the principal for
    calendar-home-set, then the home at depth 1 for resourcetype, name, colour and privileges."""
    ua = "Mozilla/5.0 Thunderbird/128.0"
    root = _propfind(env, "/", '<D:propfind xmlns:D="DAV:"><D:prop><D:current-user-principal/>'
                     '</D:prop></D:propfind>', user_agent=ua)
    principal = _href(root, DAV + "current-user-principal")
    root = _propfind(env, principal, '<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
                     '<D:prop><C:calendar-home-set/></D:prop></D:propfind>', user_agent=ua)
    home = _href(root, CAL + "calendar-home-set")
    root = _propfind(env, home, '<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" '
                     'xmlns:A="http://apple.com/ns/ical/"><D:prop><D:resourcetype/><D:displayname/>'
                     '<A:calendar-color/><D:current-user-privilege-set/><C:supported-calendar-component-set/>'
                     '</D:prop></D:propfind>', depth="1", user_agent=ua)
    names = {r.find(f".//{DAV}displayname").text for r in root.iter(DAV + "response")
             if r.find(f".//{DAV}resourcetype/{CAL}calendar") is not None}
    assert {"Calendar", "Tasks"} <= names


def test_davx5_discovery(env):
    """DAVx5: /.well-known/caldav, then current-user-principal on the target, then the
    principal's home set and the home with depth 1 (including sync-token and getctag)."""
    import requests
    ua = "DAVx5/4.4 (2024/06/01; dav4jvm; okhttp/4.12.0) Android/14"
    r = requests.request("PROPFIND", env.base + "/.well-known/caldav", auth=("demo", env.password),
                         headers={"Depth": "0", "User-Agent": ua}, allow_redirects=False, timeout=30)
    assert r.status_code == 301
    root = _propfind(env, r.headers["Location"], '<propfind xmlns="DAV:"><prop><resourcetype/>'
                     '<current-user-principal/></prop></propfind>', user_agent=ua)
    principal = _href(root, DAV + "current-user-principal")
    root = _propfind(env, principal, '<propfind xmlns="DAV:" xmlns:CAL="urn:ietf:params:xml:ns:caldav">'
                     '<prop><CAL:calendar-home-set/><displayname/><CAL:calendar-user-address-set/></prop>'
                     '</propfind>', user_agent=ua)
    home = _href(root, CAL + "calendar-home-set")
    root = _propfind(env, home, '<propfind xmlns="DAV:" xmlns:CAL="urn:ietf:params:xml:ns:caldav" '
                     'xmlns:CS="http://calendarserver.org/ns/"><prop><resourcetype/><displayname/>'
                     '<current-user-privilege-set/><CAL:supported-calendar-component-set/><CS:getctag/>'
                     '<sync-token/></prop></propfind>', depth="1", user_agent=ua)
    calendars = [r for r in root.iter(DAV + "response") if r.find(f".//{DAV}resourcetype/{CAL}calendar") is not None]
    assert len(calendars) >= 2
    for response in calendars:
        assert response.find(f".//{DAV}privilege/{DAV}write") is not None
