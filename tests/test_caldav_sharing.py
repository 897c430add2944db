"""Sharing calendars through the CalDAV gateway of a real `groupware serve`: the
CalendarServer sharing extension (POST of CS:share, CS:invite, CS:allowed-sharing-modes),
privileges answered from the store's folder rights (RFC 3744), public calendars, and the
`caldav` library and vdirsyncer working on a calendar someone else shared."""
from __future__ import annotations

import subprocess
import textwrap
import xml.etree.ElementTree as ET

import pytest
import requests

from caldav_env import DAV, event, propfind, xml
from debian import command, ensure_packages

pytestmark = pytest.mark.gateway_env("caldav", users={"bob": "bob-secret", "carol": "carol-secret",
                                                      "dave": "dave-secret"})

CS = "{http://calendarserver.org/ns/}"
BOB = ("bob", "bob-secret")
CAROL = ("carol", "carol-secret")
DAVE = ("dave", "dave-secret")


def share_body(*sharees: tuple[str, str | None]) -> str:
    """CS:share with a CS:set (access "read" or "read-write") or CS:remove (None) per sharee."""
    parts = []
    for href, access in sharees:
        if access is None:
            parts.append(f"<CS:remove><D:href>{href}</D:href></CS:remove>")
        else:
            parts.append(f"<CS:set><D:href>{href}</D:href><CS:summary>shared</CS:summary><CS:{access}/></CS:set>")
    return ('<?xml version="1.0" encoding="utf-8"?><CS:share xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/">'
            + "".join(parts) + "</CS:share>")


def as_user(env, auth, method: str, path: str, body: str | None = None, **headers: str) -> requests.Response:
    return env.request(method, path, body, auth=auth, **headers)


def privileges_of(env, auth, path: str) -> set[str]:
    root = xml(propfind(env, path, "<d:current-user-privilege-set/>", auth=auth))
    found = root.find(f".//{DAV}current-user-privilege-set")
    assert found is not None, ET.tostring(root)
    return {child.tag.split("}")[1] for privilege in found for child in privilege}


def shared_href(env, auth, user: str, name: str) -> str | None:
    home = xml(propfind(env, f"/caldav/{user}/", "<d:displayname/>", depth="1", auth=auth))
    return next((h.text for h in home.iter(DAV + "href") if h.text.startswith(f"/caldav/{user}/{name}~")), None)


@pytest.fixture(scope="module")
def team(env):
    """bob's calendar Team, shared read-write with carol and read-only with the demo user."""
    assert as_user(env, BOB, "MKCALENDAR", "/caldav/bob/Team/").status_code == 201
    assert as_user(env, BOB, "PUT", "/caldav/bob/Team/kickoff.ics", event("kickoff", summary="kickoff")).status_code == 201
    r = as_user(env, BOB, "POST", "/caldav/bob/Team/", share_body(("/caldav/carol/", "read-write"),
                                                                   ("mailto:demo", "read")),
                Content_Type="application/xml")
    assert r.status_code == 200, r.text
    return "/caldav/bob/Team/"


def test_the_owner_sees_sharing_modes_and_the_invite(env, team):
    assert "calendarserver-sharing" in as_user(env, BOB, "OPTIONS", team).headers["DAV"]
    body = "<CS:allowed-sharing-modes xmlns:CS=\"http://calendarserver.org/ns/\"/><CS:invite xmlns:CS=\"http://calendarserver.org/ns/\"/>"
    root = xml(propfind(env, team, body, auth=BOB))
    modes = root.find(f".//{CS}allowed-sharing-modes")
    assert {c.tag for c in modes} == {f"{CS}can-be-shared", f"{CS}can-be-published"}
    invite = root.find(f".//{CS}invite")
    assert invite.find(f"{CS}organizer/{DAV}href").text == "/caldav/bob/"
    users = {u.find(f"{DAV}href").text: u for u in invite.findall(f"{CS}user")}
    assert set(users) == {"/caldav/carol/", "/caldav/demo/"}
    assert users["/caldav/carol/"].find(f"{CS}access/{CS}read-write") is not None
    assert users["/caldav/demo/"].find(f"{CS}access/{CS}read") is not None
    assert all(u.find(f"{CS}invite-accepted") is not None for u in users.values())
    # RFC 3744 DAV:acl, for the one who may read it.
    acl = root = xml(propfind(env, team, "<d:acl/>", auth=BOB)).find(f".//{DAV}acl")
    principals = [a.findtext(f"{DAV}principal/{DAV}href") for a in acl.findall(f"{DAV}ace")]
    assert principals[0] == "/caldav/bob/" and set(principals) == {"/caldav/bob/", "/caldav/carol/", "/caldav/demo/"}


@pytest.mark.database_engines("sqlite", "mariadb")
def test_sharees_see_the_calendar_in_their_home_with_their_access(env, team):
    carol = shared_href(env, CAROL, "carol", "Team")
    mine = shared_href(env, None, "demo", "Team")
    assert carol and mine
    # A stable URL: the same on every listing.
    assert shared_href(env, CAROL, "carol", "Team") == carol
    root = xml(propfind(env, carol, "<d:resourcetype/><d:owner/>", auth=CAROL))
    assert root.find(f".//{DAV}resourcetype/{CS}shared") is not None
    assert root.find(f".//{DAV}owner/{DAV}href").text == "/caldav/bob/"
    assert privileges_of(env, BOB, team) >= {"all", "read", "write", "write-acl", "read-acl", "bind", "unbind"}
    carol_privileges = privileges_of(env, CAROL, carol)
    assert {"read", "write-content", "bind", "unbind", "read-free-busy"} <= carol_privileges
    assert not carol_privileges & {"all", "write-acl", "read-acl", "write-properties", "write"}
    demo_privileges = privileges_of(env, None, mine)
    assert {"read", "read-free-busy"} <= demo_privileges
    assert not demo_privileges & {"write", "write-content", "bind", "unbind", "all", "write-acl"}
    # The objects answer the same privileges as their calendar.
    assert privileges_of(env, None, mine + "kickoff.ics") == demo_privileges
    # A sharee is not told the ACL, and is not offered to share.
    r = propfind(env, mine, "<d:acl/>")
    assert "403" in r.text and xml(r).find(f".//{DAV}acl/{DAV}ace") is None
    modes = xml(propfind(env, mine, "<CS:allowed-sharing-modes xmlns:CS=\"http://calendarserver.org/ns/\"/>"))
    assert len(modes.find(f".//{CS}allowed-sharing-modes")) == 0


def test_a_read_only_sharee_is_refused_writes(env, team):
    mine = shared_href(env, None, "demo", "Team")
    assert env.request("GET", mine + "kickoff.ics").status_code == 200
    assert env.request("PUT", mine + "mine.ics", event("mine")).status_code == 403
    assert env.request("DELETE", mine + "kickoff.ics").status_code == 403
    assert env.request("POST", mine, share_body(("/caldav/dave/", "read")), Content_Type="application/xml").status_code == 403
    assert as_user(env, BOB, "GET", "/caldav/bob/Team/kickoff.ics").status_code == 200


def test_a_read_write_sharee_may_not_rename_delete_or_reshare_the_calendar(env, team):
    carol = shared_href(env, CAROL, "carol", "Team")
    body = ('<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:displayname>Mine now</d:displayname>'
            '</d:prop></d:set></d:propertyupdate>')
    r = as_user(env, CAROL, "PROPPATCH", carol, body, Content_Type="application/xml")
    assert r.status_code == 403 or "403" in r.text, r.text
    assert as_user(env, CAROL, "DELETE", carol).status_code == 403
    r = as_user(env, CAROL, "POST", carol, share_body(("/caldav/dave/", "read")), Content_Type="application/xml")
    assert r.status_code == 403
    assert shared_href(env, DAVE, "dave", "Team") is None
    root = xml(propfind(env, team, "<d:displayname/>", auth=BOB))
    assert root.find(f".//{DAV}displayname").text == "Team"
    # Deleting an object is allowed: that is what read-write gives.
    assert as_user(env, CAROL, "PUT", carol + "temp.ics", event("temp")).status_code == 201
    assert as_user(env, CAROL, "DELETE", carol + "temp.ics").status_code in (200, 204)
    assert as_user(env, BOB, "GET", "/caldav/bob/Team/temp.ics").status_code == 404


def test_without_rights_nothing_shows(env, team):
    assert shared_href(env, DAVE, "dave", "Team") is None
    for path in ("/caldav/bob/Team/", "/caldav/bob/Team/kickoff.ics", "/caldav/bob/Nothing/"):
        assert as_user(env, DAVE, "GET", path).status_code == 404, path
        assert as_user(env, DAVE, "PROPFIND", path, Depth="0").status_code == 404, path
    # Guessing the segment of a calendar one may not see answers as a calendar that is not there.
    carol = shared_href(env, CAROL, "carol", "Team")
    segment = carol.rstrip("/").rsplit("/", 1)[1]
    assert as_user(env, DAVE, "PROPFIND", f"/caldav/dave/{segment}/", Depth="0").status_code == 404
    assert as_user(env, DAVE, "PROPFIND", "/caldav/dave/Missing~99999/", Depth="0").status_code == 404


def test_the_caldav_library_reads_and_writes_a_shared_calendar(env, team):
    import caldav
    with caldav.DAVClient(url=env.base + "/", username="carol", password="carol-secret", require_tls=False) as client:
        calendars = {c.get_display_name(): c for c in client.principal().calendars()}
        shared = calendars["Team"]
        assert "kickoff" in {e.icalendar_component["UID"] for e in shared.events()}
        shared.save_event(event("from-carol", "20261203T100000Z", "20261203T110000Z", "carol's"))
    assert "UID:from-carol" in as_user(env, BOB, "GET", "/caldav/bob/Team/from-carol.ics").text or \
        "from-carol" in as_user(env, BOB, "GET", "/ical/bob/Team").text
    with caldav.DAVClient(url=env.base + "/", username="demo", password=env.password, require_tls=False) as client:
        shared = next(c for c in client.principal().calendars() if c.get_display_name() == "Team")
        assert {"kickoff", "from-carol"} <= {e.icalendar_component["UID"] for e in shared.events()}
        with pytest.raises(caldav.lib.error.AuthorizationError):
            shared.save_event(event("from-demo"))


def test_removing_a_sharee_takes_the_calendar_away(env, team):
    assert as_user(env, BOB, "MKCALENDAR", "/caldav/bob/Brief/").status_code == 201
    r = as_user(env, BOB, "POST", "/caldav/bob/Brief/", share_body(("/caldav/dave/", "read")), Content_Type="application/xml")
    assert r.status_code == 200
    assert shared_href(env, DAVE, "dave", "Brief") is not None
    r = as_user(env, BOB, "POST", "/caldav/bob/Brief/", share_body(("/caldav/dave/", None)), Content_Type="application/xml")
    assert r.status_code == 200
    assert shared_href(env, DAVE, "dave", "Brief") is None
    # Unknown sharees and malformed bodies are the client's error.
    r = as_user(env, BOB, "POST", "/caldav/bob/Brief/", share_body(("/caldav/nobody/", "read")), Content_Type="application/xml")
    assert r.status_code == 400
    r = as_user(env, BOB, "POST", "/caldav/bob/Brief/", share_body(), Content_Type="application/xml")
    assert r.status_code == 400


def test_public_calendars_show_to_those_allowed(env):
    env.server.cli("public", "create", "Holidays", "--class", "calendar")
    env.server.cli("share", "--public", "Holidays", "grant", "anyone", "lr")
    href = shared_href(env, CAROL, "carol", "Holidays")
    assert href is not None
    assert privileges_of(env, CAROL, href) >= {"read"}
    assert "write-content" not in privileges_of(env, CAROL, href)
    root = xml(propfind(env, href, "<d:owner/>", auth=CAROL))
    assert root.find(f".//{DAV}owner/{DAV}href") is None
    assert as_user(env, CAROL, "PUT", href + "x.ics", event("x")).status_code == 403


# -- vdirsyncer --------------------------------------------------------------------------

def test_vdirsyncer_syncs_a_shared_calendar(env, team, tmp_path):
    ensure_packages({"vdirsyncer": command("vdirsyncer")})
    carol = shared_href(env, CAROL, "carol", "Team")
    segment = carol.rstrip("/").rsplit("/", 1)[1]
    vdir, status, config = tmp_path / "vdir", tmp_path / "status", tmp_path / "config"
    config.write_text(textwrap.dedent(f"""\
        [general]
        status_path = "{status}/"

        [pair team]
        a = "local"
        b = "remote"
        collections = ["{segment}"]
        conflict_resolution = "b wins"

        [storage local]
        type = "filesystem"
        path = "{vdir}/"
        fileext = ".ics"

        [storage remote]
        type = "caldav"
        url = "{env.base}/"
        username = "carol"
        password = "carol-secret"
        """))

    def run(*args: str) -> None:
        r = subprocess.run(["vdirsyncer", "-c", str(config), *args], input="y\n" * 10, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
    run("discover")
    run("sync")
    local = vdir / segment
    assert any("UID:kickoff" in p.read_text() for p in local.glob("*.ics"))
    (local / "laptop.ics").write_text(event("laptop", summary="from carol's laptop"))
    run("sync")
    assert "UID:laptop" in as_user(env, BOB, "GET", "/ical/bob/Team").text


# -- the parts, without a server ------------------------------------------------------------

def test_sharee_hrefs_name_logins():
    from gateways.caldav.sharing import sharee_names
    roots = ("/caldav", "/carddav")
    assert sharee_names("/caldav/bob/", roots) == ["bob"]
    assert sharee_names("https://mail.example.org:8443/carddav/bob/", roots) == ["bob"]
    assert sharee_names("mailto:bob", roots) == ["bob"]
    # An address names its local part only within the owner's own domain.
    assert sharee_names("mailto:bob@example.org", roots, "alice@example.org") == ["bob@example.org", "bob"]
    assert sharee_names("mailto:bob@elsewhere.net", roots, "alice@example.org") == ["bob@elsewhere.net"]
    assert sharee_names("/caldav/bob/Calendar/", roots) == []
    assert sharee_names("/elsewhere/bob/", roots) == []


def test_share_bodies_are_read_strictly():
    from gateways.caldav.sharing import READ_ONLY, READ_WRITE, Change, requested_changes
    root = ET.fromstring(share_body(("/caldav/a/", "read"), ("/caldav/b/", "read-write"), ("/caldav/c/", None)))
    assert requested_changes(root) == [Change("/caldav/a/", READ_ONLY), Change("/caldav/b/", READ_WRITE),
                                       Change("/caldav/c/", None)]
    for bad in (share_body(), share_body(("", "read")),
                share_body(("/caldav/a/", "read")).replace("<CS:read/>", "")):
        with pytest.raises(ValueError):
            requested_changes(ET.fromstring(bad))


def test_privileges_follow_the_letters_the_store_checks():
    from gateways.caldav.privileges import privileges
    from shared import rights as R

    def names(letters: str) -> set[str]:
        return {name for _, name in privileges(letters)}
    assert names(R.ALL) >= {"all", "write", "read", "write-content", "write-properties", "bind", "unbind",
                            "read-acl", "write-acl", "read-free-busy", "read-current-user-privilege-set"}
    assert names("lrs") == {"read", "read-free-busy", "read-current-user-privilege-set"}
    assert names("lrswite") == {"read", "read-free-busy", "read-current-user-privilege-set", "write-content",
                                "bind", "unbind"}
    assert names("lrte") == {"read", "read-free-busy", "read-current-user-privilege-set", "unbind"}
    assert names("l") == {"read-current-user-privilege-set"}
    assert names("") == set()
