"""Storage quotas over CalDAV: the `caldav` library reading DAV:quota-used-bytes and
DAV:quota-available-bytes (RFC 4331) on the home and a calendar, a PUT over quota answered
507 with the DAV:quota-not-exceeded precondition, and DELETE over quota going through."""
from __future__ import annotations

import json
from typing import ClassVar

import pytest

from caldav_env import DAV, event, new_calendar, propfind, xml

pytestmark = pytest.mark.gateway_env("caldav")

USED = "{DAV:}quota-used-bytes"
AVAILABLE = "{DAV:}quota-available-bytes"


def set_quota(env, *levels: str) -> None:
    env.server.cli("quota", "set", "demo", *levels)


def used_bytes(env) -> int:
    return json.loads(env.server.cli("quota", "show", "demo", "--json"))["used_bytes"]


@pytest.fixture
def client(env):
    import caldav
    with caldav.DAVClient(url=env.base + "/", username="demo", password=env.password,
                          require_tls=False) as c:
        yield c


def quota_elements():
    from caldav.elements.base import ValuedBaseElement

    class QuotaUsedBytes(ValuedBaseElement):
        tag: ClassVar[str] = USED

    class QuotaAvailableBytes(ValuedBaseElement):
        tag: ClassVar[str] = AVAILABLE
    return QuotaUsedBytes(), QuotaAvailableBytes()


def test_caldav_library_reads_quota_properties(env, client):
    set_quota(env, "--soft", "64k", "--hard", "default", "--warn", "default")
    principal = client.principal()
    calendar = principal.make_calendar(name="QuotaCal")
    try:
        calendar.save_event(event("quota-1@example.org"))
        used = used_bytes(env)
        assert used > 0
        for resource in (calendar, principal.calendar_home_set):
            props = resource.get_properties(list(quota_elements()))
            assert int(props[USED]) == used
            assert int(props[AVAILABLE]) == 64 * 1024 - used
        # Not part of allprop (RFC 4331 section 3).
        r = env.request("PROPFIND", calendar.url.path, '<d:propfind xmlns:d="DAV:"><d:allprop/></d:propfind>',
                        Depth="0", Content_Type="application/xml")
        assert r.status_code == 207 and b"quota-used-bytes" not in r.content
        # No limit: quota-available-bytes is not there, quota-used-bytes is.
        set_quota(env, "--soft", "0")
        r = propfind(env, "/caldav/demo/", "<d:quota-used-bytes/><d:quota-available-bytes/>")
        found = {el.tag: el for el in xml(r).iter() if el.tag in (USED, AVAILABLE)}
        assert found[USED].text == str(used)
        assert not (found[AVAILABLE].text or "").strip()  # listed under 404
    finally:
        calendar.delete()


def test_put_over_quota_is_507_and_delete_works(env):
    set_quota(env, "--soft", "default", "--hard", "default", "--warn", "default")
    path = new_calendar(env, "QuotaFull")
    first = event("full-1@example.org", summary="x" * 200)
    assert env.request("PUT", path + "1.ics", first, Content_Type="text/calendar").status_code == 201
    set_quota(env, "--soft", str(used_bytes(env) + 100))
    r = env.request("PUT", path + "2.ics", event("full-2@example.org", summary="x" * 200),
                    Content_Type="text/calendar")
    assert r.status_code == 507
    assert xml(r).find(f"{DAV}quota-not-exceeded") is not None
    # A replacement that adds bytes is refused too; one that does not goes through.
    assert env.request("PUT", path + "1.ics", event("full-1@example.org", summary="x" * 400),
                       Content_Type="text/calendar").status_code == 507
    assert env.request("PUT", path + "1.ics", event("full-1@example.org", summary="short"),
                       Content_Type="text/calendar").status_code == 204
    # Over quota (the level lowered under the usage), DELETE still works.
    set_quota(env, "--soft", "1")
    assert env.request("DELETE", path + "1.ics").status_code in (200, 204)
    assert env.request("DELETE", path).status_code in (200, 204)
    set_quota(env, "--soft", "default")
