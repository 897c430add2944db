"""CardDAV (RFC 6352) on the CalDAV gateway, as raw requests: discovery, vCards kept byte for
byte, addressbook-query and multiget, sync-collection, MKCOL, whole-address-book .vcf GET and
PUT by difference, photos, the kDAV URLs, and the refusals of what is not a vCard."""
from __future__ import annotations

import base64
import os
import xml.etree.ElementTree as ET
from urllib.parse import quote

import pytest

from gateways.caldav import multiget
from caldav_env import DAV, hrefs, sync_collection, xml
from test_caldav_multiget import sorted_answer
from test_vcardcolumns import RFC2426_EXAMPLE, RFC6350_EXAMPLE

pytestmark = [pytest.mark.gateway_env("caldav"), pytest.mark.database_engines("sqlite", "mariadb")]

CARD = "{urn:ietf:params:xml:ns:carddav}"
BOOK = "/caldav/demo/Contacts/"


def vcard(uid: str, fn: str = "Anna Müller", email: str = "anna@example.org", version: str = "3.0",
          extra: str = "") -> str:
    n = "N:Müller;Anna;;;\r\n" if version == "3.0" else ""
    return (f"BEGIN:VCARD\r\nVERSION:{version}\r\nUID:{uid}\r\nFN:{fn}\r\n{n}"
            f"EMAIL;TYPE=work:{email}\r\nTEL;TYPE=cell:+49 30 1234\r\n{extra}END:VCARD\r\n")


def put(env, path: str, text: str | bytes, content_type: str = "text/vcard; charset=utf-8", **headers):
    return env.request("PUT", path, text, Content_Type=content_type, **headers)


def card_propfind(env, path: str, props: str, depth: str = "0"):
    body = (f'<d:propfind xmlns:d="DAV:" xmlns:cr="urn:ietf:params:xml:ns:carddav"><d:prop>{props}</d:prop>'
            "</d:propfind>")
    return env.request("PROPFIND", path, body, Depth=depth, Content_Type="application/xml")


def new_book(env, name: str) -> str:
    path = f"/caldav/demo/{name}/"
    env.request("DELETE", path)
    body = ('<d:mkcol xmlns:d="DAV:" xmlns:cr="urn:ietf:params:xml:ns:carddav"><d:set><d:prop>'
            f'<d:resourcetype><d:collection/><cr:addressbook/></d:resourcetype><d:displayname>{name}</d:displayname>'
            "</d:prop></d:set></d:mkcol>")
    r = env.request("MKCOL", path, body, Content_Type="application/xml")
    assert r.status_code == 201, r.text
    return path


# -- discovery -----------------------------------------------------------------------------

def test_well_known_carddav_redirects_to_the_carddav_root(env):
    r = env.http.request("PROPFIND", env.url("/.well-known/carddav"), allow_redirects=False, timeout=30)
    assert r.status_code == 301 and r.headers["Location"] == "/carddav/"


def test_principal_names_the_address_book_home_and_the_home_lists_contacts(env):
    r = card_propfind(env, "/carddav/", "<d:current-user-principal/>")
    assert xml(r).find(f".//{DAV}current-user-principal/{DAV}href").text == "/carddav/demo/"
    r = card_propfind(env, "/carddav/demo/", "<cr:addressbook-home-set/>")
    assert xml(r).find(f".//{CARD}addressbook-home-set/{DAV}href").text == "/carddav/demo/"
    r = card_propfind(env, "/carddav/demo/", "<d:resourcetype/><d:displayname/>", depth="1")
    books = [resp.find(DAV + "href").text for resp in xml(r).iter(DAV + "response")
             if resp.find(f".//{DAV}resourcetype/{CARD}addressbook") is not None]
    assert books == ["/carddav/demo/Contacts/"]
    # The same home on the CalDAV root, where calendars are.
    r = card_propfind(env, "/caldav/demo/", "<d:resourcetype/>", depth="1")
    assert "/caldav/demo/Contacts/" in hrefs(r) and "/caldav/demo/Calendar/" in hrefs(r)
    r = env.request("OPTIONS", "/carddav/demo/Contacts/")
    assert "addressbook" in [t.strip() for t in r.headers["DAV"].split(",")]


# -- one vCard -----------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["3.0", "4.0"])
def test_vcard_comes_back_byte_for_byte(env, version):
    # Odd but valid: lower-case property names, a folded NOTE, a property vobject would rewrite.
    text = vcard(f"bytes-{version}", version=version,
                 extra="note:a long note that is folded\r\n  over two lines\r\nX-CUSTOM;x-param=1:kept\r\n")
    path = f"{BOOK}bytes-{version}.vcf"
    r = put(env, path, text)
    assert r.status_code in (201, 204), r.text
    got = env.request("GET", path)
    assert got.status_code == 200 and got.content == text.encode("utf-8")
    assert got.headers["Content-Type"].startswith("text/vcard")
    assert got.headers["ETag"] == r.headers["ETag"]
    # And through the kDAV URL.
    assert env.request("GET", f"/carddav/demo/Contacts/bytes-{version}.vcf").content == text.encode("utf-8")


@pytest.mark.parametrize("example", [RFC6350_EXAMPLE, RFC2426_EXAMPLE], ids=["rfc6350", "rfc2426"])
def test_rfc_examples_come_back_byte_for_byte(env, example):
    path = BOOK + f"example-{len(example)}.vcf"
    assert put(env, path, example).status_code in (201, 204)
    assert env.request("GET", path).content == example.encode()


def test_photo_is_kept_whole(env):
    photo = base64.b64encode(os.urandom(2 * 1024 * 1024)).decode()
    folded = "\r\n ".join(photo[i:i + 74] for i in range(0, len(photo), 74))
    text = vcard("photo", extra=f"PHOTO;ENCODING=b;TYPE=JPEG:{folded}\r\n")
    r = put(env, BOOK + "photo.vcf", text)
    assert r.status_code in (201, 204), r.text
    assert env.request("GET", BOOK + "photo.vcf").content == text.encode()


def test_if_none_match_and_if_match(env):
    path = BOOK + "cond.vcf"
    first = put(env, path, vcard("cond"), If_None_Match="*")
    assert first.status_code == 201
    assert put(env, path, vcard("cond", fn="Again"), If_None_Match="*").status_code == 412
    assert put(env, path, vcard("cond", fn="Stale"), If_Match='"nope"').status_code == 412
    assert put(env, path, vcard("cond", fn="Fresh"), If_Match=first.headers["ETag"]).status_code == 204
    assert env.request("DELETE", path).status_code in (200, 204)
    assert env.request("GET", path).status_code == 404


@pytest.mark.parametrize("body, content_type, status, condition", [
    ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:broken\r\nFN:x\r\n", "text/vcard", 400, "valid-address-data"),
    ("BEGIN:VCARD\r\nthis is not a vcard\r\nEND:VCARD\r\n", "text/vcard", 400, "valid-address-data"),
    ("BEGIN:VCARD\r\nVERSION:2.1\r\nUID:old\r\nFN:x\r\nEND:VCARD\r\n", "text/vcard", 400, "valid-address-data"),
    (b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:latin\r\nFN:M\xfcller\r\nEND:VCARD\r\n", "text/vcard", 415,
     "supported-address-data"),
    ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:e\r\nDTSTAMP:20260101T000000Z\r\n"
     "DTSTART:20260101T000000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n", "text/calendar", 415, "supported-address-data"),
    ("garbage", "text/vcard", 400, "valid-address-data"),
])
def test_what_is_not_a_vcard_gets_a_precondition_never_500(env, body, content_type, status, condition):
    r = put(env, BOOK + "bad.vcf", body, content_type)
    assert r.status_code == status, r.text
    assert xml(r).find(f"{CARD}{condition}") is not None
    assert env.request("GET", BOOK + "bad.vcf").status_code == 404


def test_uid_taken_by_another_contact_is_no_uid_conflict(env):
    assert put(env, BOOK + "uid-a.vcf", vcard("same-uid")).status_code == 201
    r = put(env, BOOK + "uid-b.vcf", vcard("same-uid"))
    assert r.status_code == 409 and xml(r).find(f"{CARD}no-uid-conflict") is not None


def test_too_large_vcard_is_413_max_resource_size(env):
    text = vcard("huge", extra="NOTE:" + "x" * (5 * 1024 * 1024) + "\r\n")
    r = put(env, BOOK + "huge.vcf", text)
    assert r.status_code == 413 and xml(r).find(f"{CARD}max-resource-size") is not None


# -- reports -------------------------------------------------------------------------------

def test_addressbook_query_and_multiget(env):
    book = new_book(env, "Query")
    for i, (fn, email) in enumerate([("Anna Müller", "anna@example.org"), ("Bernd Beispiel", "bernd@example.com"),
                                     ("Carla Muster", "carla@example.org")]):
        assert put(env, f"{book}q{i}.vcf", vcard(f"q{i}", fn=fn, email=email)).status_code == 201
    body = ('<cr:addressbook-query xmlns:d="DAV:" xmlns:cr="urn:ietf:params:xml:ns:carddav">'
            "<d:prop><d:getetag/><cr:address-data/></d:prop><cr:filter>"
            '<cr:prop-filter name="EMAIL"><cr:text-match collation="i;unicode-casemap" match-type="ends-with">'
            "example.org</cr:text-match></cr:prop-filter></cr:filter></cr:addressbook-query>")
    r = env.request("REPORT", book, body, Depth="1", Content_Type="application/xml")
    assert r.status_code == 207, r.text
    assert sorted(hrefs(r)) == [f"{book}q0.vcf", f"{book}q2.vcf"]
    datas = [d.text for d in xml(r).iter(CARD + "address-data")]
    assert any("FN:Anna Müller" in d for d in datas)
    body = ('<cr:addressbook-multiget xmlns:d="DAV:" xmlns:cr="urn:ietf:params:xml:ns:carddav">'
            "<d:prop><d:getetag/><cr:address-data/></d:prop>"
            f"<d:href>{book}q1.vcf</d:href><d:href>{book}missing.vcf</d:href></cr:addressbook-multiget>")
    r = env.request("REPORT", book, body, Depth="1", Content_Type="application/xml")
    assert r.status_code == 207
    statuses = {resp.find(DAV + "href").text: "".join(s.text for s in resp.iter(DAV + "status"))
                for resp in xml(r).iter(DAV + "response")}
    assert "200" in statuses[f"{book}q1.vcf"] and "404" in statuses[f"{book}missing.vcf"]
    assert xml(r).find(f".//{CARD}address-data").text.replace("\r\n", "\n") == \
        vcard("q1", fn="Bernd Beispiel", email="bernd@example.com").replace("\r\n", "\n")



@pytest.mark.parametrize("prop, match_type, text, expected", [
    ("FN", "contains", "MÜLLER", ["p0"]),          # not ASCII: every card goes to Radicale's test
    ("FN", "contains", "muster", ["p2"]),          # narrowed by the store's column, case folded
    ("EMAIL", "equals", "BERND@example.com", ["p1"]),
    ("EMAIL", "starts-with", "carla", ["p2"]),
    ("TEL", "contains", "30 99", ["p1"]),
    ("UID", "equals", "p0", ["p0"]),
    ("NICKNAME", "contains", "x", []),
])
def test_addressbook_query_finds_what_radicale_would(env, prop, match_type, text, expected):
    book = "/caldav/demo/People/"
    if env.request("GET", book + "p2.vcf").status_code != 200:
        new_book(env, "People")
        for i, (fn, email, tel) in enumerate([("Anna Müller", "anna@example.org", "+49 30 1234"),
                                              ("Bernd Beispiel", "bernd@example.com", "+49 30 9999"),
                                              ("Carla Muster", "carla@example.org", "+1 555 0100")]):
            card = vcard(f"p{i}", fn=fn, email=email).replace("+49 30 1234", tel)
            assert put(env, f"{book}p{i}.vcf", card).status_code == 201
    body = ('<cr:addressbook-query xmlns:d="DAV:" xmlns:cr="urn:ietf:params:xml:ns:carddav">'
            f'<d:prop><d:getetag/></d:prop><cr:filter><cr:prop-filter name="{prop}">'
            f'<cr:text-match collation="i;unicode-casemap" match-type="{match_type}">{text}</cr:text-match>'
            "</cr:prop-filter></cr:filter></cr:addressbook-query>")
    r = env.request("REPORT", book, body, Depth="1", Content_Type="application/xml")
    assert r.status_code == 207, r.text
    assert sorted(hrefs(r)) == [f"{book}{name}.vcf" for name in expected]


def test_sync_collection_reports_changes_and_deletions(env):
    book = new_book(env, "Sync")
    put(env, book + "a.vcf", vcard("a"))
    put(env, book + "b.vcf", vcard("b"))
    r = sync_collection(env, book)
    assert r.status_code == 207 and sorted(hrefs(r)) == [book + "a.vcf", book + "b.vcf"]
    token = xml(r).find(DAV + "sync-token").text
    put(env, book + "a.vcf", vcard("a", fn="Changed"))
    env.request("DELETE", book + "b.vcf")
    put(env, book + "c.vcf", vcard("c"))
    r = sync_collection(env, book, token)
    assert r.status_code == 207
    statuses = {resp.find(DAV + "href").text: resp.find(f".//{DAV}status").text
                for resp in xml(r).iter(DAV + "response")}
    assert set(statuses) == {book + "a.vcf", book + "b.vcf", book + "c.vcf"}
    assert "404" in statuses[book + "b.vcf"] and "200" in statuses[book + "a.vcf"]
    token2 = xml(r).find(DAV + "sync-token").text
    r = sync_collection(env, book, token2)
    assert hrefs(r) == []
    # The kDAV root answers with its own hrefs.
    r = sync_collection(env, "/carddav/demo/Sync/", token)
    assert all(h.startswith("/carddav/demo/Sync/") for h in hrefs(r)) and hrefs(r)


# -- address books ------------------------------------------------------------------------

def test_mkcol_makes_a_contacts_folder_with_its_name_and_description(env):
    book = new_book(env, "Team")
    r = card_propfind(env, book, "<d:resourcetype/><d:displayname/><cr:supported-address-data/>")
    assert xml(r).find(f".//{DAV}resourcetype/{CARD}addressbook") is not None
    assert xml(r).find(f".//{DAV}displayname").text == "Team"
    body = ('<d:propertyupdate xmlns:d="DAV:" xmlns:cr="urn:ietf:params:xml:ns:carddav"><d:set><d:prop>'
            "<cr:addressbook-description>Our team</cr:addressbook-description></d:prop></d:set></d:propertyupdate>")
    assert env.request("PROPPATCH", book, body, Content_Type="application/xml").status_code == 207
    r = card_propfind(env, book, "<cr:addressbook-description/>")
    assert xml(r).find(f".//{CARD}addressbook-description").text == "Our team"
    r = card_propfind(env, "/caldav/demo/", "<d:resourcetype/>", depth="1")
    assert book in hrefs(r)
    assert env.request("DELETE", book).status_code in (200, 204)
    assert card_propfind(env, book, "<d:displayname/>").status_code == 404


def test_whole_address_book_vcf_get_and_put_by_difference(env):
    book = new_book(env, "Whole")
    keep, change, drop = vcard("keep", fn="Kept"), vcard("change", fn="Before"), vcard("drop", fn="Dropped")
    for name, text in (("keep", keep), ("change", change), ("drop", drop)):
        assert put(env, f"{book}{name}.vcf", text).status_code == 201
    etags = {h: resp.find(f".//{DAV}getetag").text for resp in xml(card_propfind(env, book, "<d:getetag/>", "1"))
             .iter(DAV + "response") for h in [resp.find(DAV + "href").text]}
    whole = env.request("GET", book)
    assert whole.status_code == 200 and whole.headers["Content-Type"].startswith("text/vcard")
    assert whole.text.count("BEGIN:VCARD") == 3 and keep in whole.text
    changed = vcard("change", fn="After")
    added = vcard("added", fn="New One", version="4.0")
    r = put(env, book, keep + changed + added)
    assert r.status_code in (201, 204), r.text
    after = {resp.find(DAV + "href").text: resp.find(f".//{DAV}getetag").text
             for resp in xml(card_propfind(env, book, "<d:getetag/>", "1")).iter(DAV + "response")}
    assert after[book + "keep.vcf"] == etags[book + "keep.vcf"]  # untouched
    assert after[book + "change.vcf"] != etags[book + "change.vcf"]
    assert book + "drop.vcf" not in after
    assert env.request("GET", book + "change.vcf").text == changed  # kept as sent
    assert env.request("GET", book + "added.vcf").text == added
    # The same at /ical/<user>/<address book> (the feed URL calendars have).
    assert env.request("GET", "/ical/demo/Whole").text.count("BEGIN:VCARD") == 3


def test_whole_address_book_put_counts_its_cards(env):
    book = new_book(env, "Many")
    cards = "".join(vcard(f"m{i}") for i in range(20001))
    r = put(env, book, cards)
    assert r.status_code == 413 and xml(r).find(f"{CARD}max-resource-size") is not None


def test_addressbook_multiget_answered_on_the_reactor_is_radicales_answer(env):
    book = new_book(env, "Fetched")
    names = ["a.vcf", "b c&d.vcf", "ü.vcf"]
    for i, name in enumerate(names):
        assert put(env, book + name, vcard(f"fetched-{i}", fn="<x & y>")).status_code == 201
    hrefs_xml = "".join(f"<d:href>{quote(book + n)}</d:href>" for n in names + ["absent.vcf", "a.vcf"])
    for props in ("<d:getetag/><cr:address-data/>", "<d:getcontenttype/><d:getetag/>", "<cr:address-data/>"):
        body = ('<cr:addressbook-multiget xmlns:d="DAV:" xmlns:cr="urn:ietf:params:xml:ns:carddav">'
                f"<d:prop>{props}</d:prop>{hrefs_xml}</cr:addressbook-multiget>")
        # An address-data with a content type is left to Radicale.
        typed = body.replace("<cr:address-data/>", '<cr:address-data content-type="text/vcard"/>')
        assert multiget.parse(ET.fromstring(body), book, multiget.ADDRESS_BOOK) is not None
        fast = env.request("REPORT", book, body, Depth="1", Content_Type="application/xml")
        slow = env.request("REPORT", book, typed, Depth="1", Content_Type="application/xml")
        assert fast.status_code == slow.status_code == 207
        assert sorted_answer(fast.content) == sorted_answer(slow.content)
        assert len(ET.fromstring(fast.content)) == 4


def test_the_common_addressbook_query_is_narrowed_by_the_store():
    from gateways.caldav.addressbooks import prefilter

    def query(inner: str) -> list[ET.Element]:
        root = ET.fromstring('<cr:addressbook-query xmlns:d="DAV:" xmlns:cr="urn:ietf:params:xml:ns:carddav">'
                             f"<cr:filter>{inner}</cr:filter></cr:addressbook-query>")
        return root.findall("{urn:ietf:params:xml:ns:carddav}filter")
    match = '<cr:prop-filter name="email"><cr:text-match>ann</cr:text-match></cr:prop-filter>'
    assert prefilter(query(match)) == {"or": [{"contains": ["email", "ann"]}, {"cmp": ["email", "eq", None]}]}
    for inner in (match + match, '<cr:prop-filter name="NOTE"><cr:text-match>a</cr:text-match></cr:prop-filter>',
                  '<cr:prop-filter name="FN"><cr:text-match negate-condition="yes">a</cr:text-match></cr:prop-filter>',
                  '<cr:prop-filter name="FN"><cr:text-match collation="i;octet">a</cr:text-match></cr:prop-filter>',
                  '<cr:prop-filter name="FN"><cr:is-not-defined/></cr:prop-filter>', ""):
        assert prefilter(query(inner)) is None, inner
