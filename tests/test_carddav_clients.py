"""Real CardDAV clients against the gateway on loopback: vdirsyncer syncing both ways with a
local vdir that khard reads and writes, the `caldav` library's DAVClient, and the discovery
sequences of iOS and DAVx5 replayed as raw HTTP."""
from __future__ import annotations

import os
import subprocess
import textwrap

import pytest

from debian import command, ensure_packages
from caldav_env import DAV, xml
from test_carddav import CARD, card_propfind, new_book, put, vcard

pytestmark = pytest.mark.gateway_env("caldav")


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(list(args), input=stdin, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, LC_ALL="C.UTF-8"))


def test_vdirsyncer_two_way_sync_and_khard(env, tmp_path):
    ensure_packages({name: command(name) for name in ("vdirsyncer", "khard")})
    book = new_book(env, "Friends")
    first = put(env, book + "server-1.vcf", vcard("server-1", fn="Sam Server", email="sam@example.org"))
    assert first.status_code == 201
    vdir, status, config = tmp_path / "contacts", tmp_path / "status", tmp_path / "vdirsyncer.conf"
    config.write_text(textwrap.dedent(f"""\
        [general]
        status_path = "{status}/"

        [pair contacts]
        a = "local"
        b = "remote"
        collections = ["Friends"]
        conflict_resolution = "b wins"

        [storage local]
        type = "filesystem"
        path = "{vdir}/"
        fileext = ".vcf"

        [storage remote]
        type = "carddav"
        url = "{env.base}/"
        username = "demo"
        password = "{env.password}"
        """))
    vdirsyncer = ("vdirsyncer", "-c", str(config))
    r = run(*vdirsyncer, "discover", stdin="y\n" * 10)
    assert r.returncode == 0, r.stdout + r.stderr
    r = run(*vdirsyncer, "sync")
    assert r.returncode == 0, r.stdout + r.stderr
    local = vdir / "Friends"
    assert any("UID:server-1" in p.read_text() for p in local.glob("*.vcf"))

    # khard reads the vdir, and adds a contact to it.
    khard_config = tmp_path / "khard.conf"
    khard_config.write_text(textwrap.dedent(f"""\
        [addressbooks]
        [[friends]]
        path = {local}/
        [general]
        default_action = list
        editor = /bin/true
        merge_editor = /bin/true
        [contact table]
        display = formatted_name
        """))
    khard = ("khard", "-c", str(khard_config))
    r = run(*khard, "list")
    assert r.returncode == 0 and "Sam Server" in r.stdout, r.stdout + r.stderr
    new_contact = textwrap.dedent("""\
        First name : Kim
        Last name : Khard
        Email :
            work : kim@example.org
        """)
    r = run(*khard, "new", "-a", "friends", "-i", "-", stdin=new_contact)
    assert r.returncode == 0, r.stdout + r.stderr

    # Changes on both sides meet.
    assert put(env, book + "server-2.vcf", vcard("server-2", fn="Second Server", version="4.0")).status_code == 201
    r = run(*vdirsyncer, "sync")
    assert r.returncode == 0, r.stdout + r.stderr
    whole = env.request("GET", book).text
    assert "kim@example.org" in whole and "Sam Server" in whole
    r = run(*khard, "list")
    assert "Second Server" in r.stdout and "Kim Khard" in r.stdout.replace("Khard, Kim", "Kim Khard"), r.stdout
    # khard's card reached the server as khard wrote it.
    written = next(p for p in local.glob("*.vcf") if "kim@example.org" in p.read_text())
    listed = [resp.find(DAV + "href").text for resp in xml(card_propfind(env, book, "<d:getetag/>", "1"))
              .iter(DAV + "response")]
    assert any(env.request("GET", h).content == written.read_bytes() for h in listed if h != book)

    # A second sync has nothing to do; a deletion on the server reaches the vdir.
    r = run(*vdirsyncer, "sync")
    assert "Copying" not in r.stdout + r.stderr and "Deleting" not in r.stdout + r.stderr
    assert env.request("DELETE", book + "server-1.vcf").status_code in (200, 204)
    r = run(*vdirsyncer, "sync")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not any("UID:server-1" in p.read_text() for p in local.glob("*.vcf"))


# -- discovery sequences of real clients, as raw HTTP -------------------------------------

def test_ios_contacts_discovery(env):
    """iOS Contacts: /.well-known/carddav, then the principal and its address book home."""
    r = env.http.request("PROPFIND", env.url("/.well-known/carddav"), allow_redirects=False, timeout=30,
                         headers={"Depth": "0", "User-Agent": "iOS/17.0 (21A329) dataaccessd/1.0"})
    assert r.status_code == 301
    root = r.headers["Location"]
    r = card_propfind(env, root, "<d:current-user-principal/><d:principal-URL/>")
    principal = xml(r).find(f".//{DAV}current-user-principal/{DAV}href").text
    r = card_propfind(env, principal, "<cr:addressbook-home-set/><d:displayname/>")
    home = xml(r).find(f".//{CARD}addressbook-home-set/{DAV}href").text
    r = card_propfind(env, home, "<d:resourcetype/><d:displayname/><d:sync-token/><d:current-user-privilege-set/>",
                      depth="1")
    books = {resp.find(DAV + "href").text: resp for resp in xml(r).iter(DAV + "response")
             if resp.find(f".//{DAV}resourcetype/{CARD}addressbook") is not None}
    assert "/carddav/demo/Contacts/" in books
    token = books["/carddav/demo/Contacts/"].find(f".//{DAV}sync-token")
    assert token is not None and token.text


def test_davx5_discovery_from_the_caldav_root(env):
    """DAVx5 looks for both services from one base URL: the same principal serves both."""
    r = card_propfind(env, "/caldav/", "<d:current-user-principal/>")
    principal = xml(r).find(f".//{DAV}current-user-principal/{DAV}href").text
    body = ('<d:propfind xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" '
            'xmlns:cr="urn:ietf:params:xml:ns:carddav"><d:prop><c:calendar-home-set/><cr:addressbook-home-set/>'
            "</d:prop></d:propfind>")
    r = env.request("PROPFIND", principal, body, Depth="0", Content_Type="application/xml")
    assert xml(r).find(f".//{CARD}addressbook-home-set/{DAV}href").text == principal
    assert xml(r).find(".//{urn:ietf:params:xml:ns:caldav}calendar-home-set/{DAV:}href").text == principal


def test_caldav_library_davclient_with_vcards(env):
    """The `caldav` library has no address book objects; its DAVClient's WebDAV calls are
    what it offers for vCards (MKCOL, PUT, PROPFIND, REPORT, DELETE)."""
    import caldav
    with caldav.DAVClient(url=env.base + "/carddav/", username="demo", password=env.password,
                          require_tls=False) as client:
        book = env.base + "/carddav/demo/Library/"
        client.delete(book)
        mkcol = ('<d:mkcol xmlns:d="DAV:" xmlns:cr="urn:ietf:params:xml:ns:carddav"><d:set><d:prop><d:resourcetype>'
                 "<d:collection/><cr:addressbook/></d:resourcetype></d:prop></d:set></d:mkcol>")
        assert client.mkcol(book, mkcol).status == 201
        card = vcard("lib-1", fn="Libby Rary")
        assert client.put(book + "lib-1.vcf", card, {"Content-Type": "text/vcard"}).status == 201
        listing = client.propfind(book, '<d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>',
                                  depth=1)
        assert listing.status == 207 and "/carddav/demo/Library/lib-1.vcf" in listing.raw
        report = client.report(book, '<cr:addressbook-multiget xmlns:d="DAV:" xmlns:cr="urn:ietf:params:xml:ns:'
                                     'carddav"><d:prop><cr:address-data/></d:prop>'
                                     "<d:href>/carddav/demo/Library/lib-1.vcf</d:href></cr:addressbook-multiget>",
                               depth=1)
        assert report.status == 207 and "FN:Libby Rary" in report.raw
        assert client.delete(book + "lib-1.vcf").status in (200, 204)
        assert client.delete(book).status in (200, 204)
