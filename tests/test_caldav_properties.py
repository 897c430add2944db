"""Calendar properties through the CalDAV gateway inside a real `groupware serve`: dead
properties kept in the store, and the owner publishing a calendar at a secret URL."""
from __future__ import annotations

import pytest
import requests

from caldav_env import event, new_calendar, propfind, xml

pytestmark = pytest.mark.gateway_env("caldav", users={"bob": "bob-secret"})

ICAL = "{http://apple.com/ns/ical/}"
CS = "{http://calendarserver.org/ns/}"
PUBLISH = '<CS:publish-calendar xmlns:CS="http://calendarserver.org/ns/"/>'
UNPUBLISH = '<CS:unpublish-calendar xmlns:CS="http://calendarserver.org/ns/"/>'


def proppatch(env, path: str, inner: str, auth=None) -> requests.Response:
    body = ('<d:propertyupdate xmlns:d="DAV:" xmlns:i="http://apple.com/ns/ical/" xmlns:x="urn:example:x">'
            f'{inner}</d:propertyupdate>')
    return env.request("PROPPATCH", path, body, auth=auth, Content_Type="application/xml")


def test_dead_properties_are_kept_and_removed(env):
    cal = new_calendar(env, "deadprops")
    r = proppatch(env, cal, "<d:set><d:prop><i:calendar-order>7</i:calendar-order>"
                            "<x:timezone-ish>Europe/Amsterdam</x:timezone-ish></d:prop></d:set>")
    assert r.status_code == 207, r.text
    # A later request (a fresh folder listing) reads them from the store.
    root = xml(propfind(env, cal, '<i:calendar-order xmlns:i="http://apple.com/ns/ical/"/>'
                                  '<x:timezone-ish xmlns:x="urn:example:x"/><d:displayname/>'))
    assert root.findtext(f".//{ICAL}calendar-order") == "7"
    assert root.findtext(".//{urn:example:x}timezone-ish") == "Europe/Amsterdam"
    assert root.findtext(".//{DAV:}displayname") == "deadprops"
    # Renaming keeps them; removing one drops only that one.
    assert proppatch(env, cal, "<d:set><d:prop><d:displayname>Dead</d:displayname></d:prop></d:set>"
                               "<d:remove><d:prop><x:timezone-ish/></d:prop></d:remove>").status_code == 207
    r = propfind(env, cal, '<i:calendar-order xmlns:i="http://apple.com/ns/ical/"/>'
                           '<x:timezone-ish xmlns:x="urn:example:x"/><d:displayname/>')
    root = xml(r)
    assert root.findtext(f".//{ICAL}calendar-order") == "7"
    assert root.find(".//{urn:example:x}timezone-ish").text is None
    assert "404" in r.text and root.findtext(".//{DAV:}displayname") == "Dead"


def test_dead_properties_have_a_size_limit(env):
    cal = new_calendar(env, "bigprops")
    r = proppatch(env, cal, f"<d:set><d:prop><x:big>{'x' * 20000}</x:big></d:prop></d:set>")
    assert r.status_code == 413
    assert xml(propfind(env, cal, '<x:big xmlns:x="urn:example:x"/>')).find(".//{urn:example:x}big").text is None


def test_mkcalendar_keeps_dead_properties(env):
    path = "/caldav/demo/mkprops/"
    env.request("DELETE", path)
    body = ('<c:mkcalendar xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" '
            'xmlns:i="http://apple.com/ns/ical/"><d:set><d:prop><d:displayname>mk</d:displayname>'
            '<i:calendar-order>2</i:calendar-order></d:prop></d:set></c:mkcalendar>')
    assert env.request("MKCALENDAR", path, body, Content_Type="application/xml").status_code == 201
    root = xml(propfind(env, path, '<i:calendar-order xmlns:i="http://apple.com/ns/ical/"/>'))
    assert root.findtext(f".//{ICAL}calendar-order") == "2"


def test_the_owner_publishes_and_unpublishes_through_the_gateway(env):
    cal = new_calendar(env, "ownerpub")
    env.request("PUT", cal + "o.ics", event("owner-pub", summary="open house"))
    assert xml(propfind(env, cal, "<CS:publish-url xmlns:CS=\"http://calendarserver.org/ns/\"/>")).find(
        f".//{CS}publish-url").text is None
    r = env.request("POST", cal, PUBLISH, Content_Type="application/xml")
    assert r.status_code == 200, r.text
    url = xml(r).findtext("{DAV:}href")
    assert url.startswith(f"{env.base}/ical/published/")
    # The owner's PROPFIND shows it; anyone with the URL reads the calendar without logging in.
    shown = xml(propfind(env, cal, "<CS:publish-url xmlns:CS=\"http://calendarserver.org/ns/\"/>"))
    assert shown.findtext(f".//{CS}publish-url") == url
    feed = requests.get(url, timeout=10)
    assert feed.status_code == 200 and "SUMMARY:open house" in feed.text
    # Publishing again gives a new secret; the old one stops working.
    again = xml(env.request("POST", cal, PUBLISH, Content_Type="application/xml")).findtext("{DAV:}href")
    assert again != url and requests.get(url, timeout=10).status_code == 404
    assert env.request("POST", cal, UNPUBLISH, Content_Type="application/xml").status_code == 204
    assert requests.get(again, timeout=10).status_code == 404
    assert env.request("POST", cal, "<nonsense/>", Content_Type="application/xml").status_code == 400


def test_only_the_owner_may_publish_even_with_a_write_share(env):
    bob = ("bob", "bob-secret")
    requests.request("MKCALENDAR", env.url("/caldav/bob/Shared-pub/"), auth=bob, timeout=10)
    env.grant("bob", "bob-secret", "Shared-pub", "demo", "lrswipkxte")
    home = xml(propfind(env, "/caldav/demo/", "<d:displayname/>", depth="1"))
    shared = next(h.text for h in home.iter("{DAV:}href") if h.text.startswith("/caldav/demo/Shared-pub~"))
    assert env.request("PUT", shared + "w.ics", event("writable")).status_code == 201
    assert env.request("POST", shared, PUBLISH, Content_Type="application/xml").status_code == 403
    assert env.request("POST", shared, UNPUBLISH, Content_Type="application/xml").status_code == 403
    assert env.request("POST", "/caldav/bob/Shared-pub/", PUBLISH, Content_Type="application/xml").status_code == 404
    r = requests.post(env.url("/caldav/bob/Shared-pub/"), data=PUBLISH, auth=bob, timeout=10,
                      headers={"Content-Type": "application/xml"})
    assert r.status_code == 200
    shown = xml(propfind(env, shared, "<CS:publish-url xmlns:CS=\"http://calendarserver.org/ns/\"/>"))
    assert shown.find(f".//{CS}publish-url").text is None  # the secret is the owner's
