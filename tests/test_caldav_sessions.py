"""Store sessions behind CalDAV requests: a session the cache drops (it expired, the user logged
on again) stays logged on until the requests using it are answered, so a client syncing on
several connections never sees a 401 or 500 because of another connection's logon."""
from __future__ import annotations

import threading
import time

import pytest
import requests

from caldav_env import event, new_calendar
from waiting import scaled

EXPIRY = 2
pytestmark = pytest.mark.gateway_env("caldav", ical_session_expiry=str(EXPIRY))
CONNECTIONS = 4
QUERY = ('<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/>'
         '<c:calendar-data/></d:prop><c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT">'
         '<c:time-range start="20261101T000000Z" end="20270101T000000Z"/></c:comp-filter></c:comp-filter>'
         '</c:filter></c:calendar-query>')


def test_requests_in_flight_across_session_expiry_all_succeed(env):
    cal = new_calendar(env, "sessions")
    failures: list[tuple[str, int, str]] = []
    counts = [0] * CONNECTIONS
    stop = time.monotonic() + 3 * EXPIRY + 1

    def connection(i: int) -> None:
        http = requests.Session()
        http.auth = ("demo", env.password)
        n = 0
        while time.monotonic() < stop:
            n += 1
            name = f"{cal}c{i}-{n % 20}.ics"
            for method, path, body, headers in (
                    ("PUT", name, event(f"c{i}-{n % 20}", summary=f"round {n}"), {"Content-Type": "text/calendar"}),
                    ("GET", name, None, {}),
                    ("REPORT", cal, QUERY, {"Depth": "1", "Content-Type": "application/xml"}),
                    ("PROPFIND", cal, None, {"Depth": "1"})):
                r = http.request(method, env.url(path), data=body, headers=headers, timeout=scaled(60))
                counts[i] += 1
                if r.status_code >= 400:
                    failures.append((method, r.status_code, r.text[:200]))

    threads = [threading.Thread(target=connection, args=(i,)) for i in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:5]
    assert min(counts) > 8, counts
    log = env.log()
    # The sessions were in fact renewed while requests were running.
    assert log.count("logged on (caldav)") >= 3, log.count("logged on (caldav)")
