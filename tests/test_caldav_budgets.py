"""Bounds on the work one CalDAV request may ask for: recurrence instances walked per series
(calendar-query time ranges, expand, free-busy), instances one answer holds, and seconds of
thread work, answered 507 with
DAV:number-of-matches-within-limits (RFC 4791 §7.8, §7.10); a client that leaves stops its
request's work."""
from __future__ import annotations

import select
import time
import xml.etree.ElementTree as ET

import pytest

from caldav_env import CAL, DAV, new_calendar
from harness import rss_kb
from heavy_work import calendar_query, send_report, wait_for_cpu
from waiting import scaled, wait_until

MAX_INSTANCES = 20000
MAX_QUERY_INSTANCES = 1000
TIME_LIMIT = int(scaled(6))
pytestmark = pytest.mark.gateway_env("caldav", ical_max_instances=str(MAX_INSTANCES),
                                     ical_max_query_instances=str(MAX_QUERY_INSTANCES),
                                     ical_time_limit=str(TIME_LIMIT), users={"other": "other-secret"},
                                     # Runaway series as they may reach the store by other ways
                                     # (older data, imports) than an object PUT, which refuses them.
                                     ical_max_object_instances="0")

QUICK = scaled(5)  # seconds within which a refused request must be answered


def calendar(*events: str) -> str:
    return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n" + "".join(events) + "END:VCALENDAR\r\n"


def vevent(uid: str, rule: str, start: str = "20260101T000000Z", end: str = "20260101T000030Z") -> str:
    return (f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{start}\r\nDTEND:{end}\r\n"
            f"SUMMARY:{uid}\r\nRRULE:{rule}\r\nEND:VEVENT\r\n")


def free_busy(start: str, end: str) -> str:
    return ('<c:free-busy-query xmlns:c="urn:ietf:params:xml:ns:caldav">'
            f'<c:time-range start="{start}" end="{end}"/></c:free-busy-query>')


def report(env, path: str, body: str):
    started = time.monotonic()
    r = env.request("REPORT", path, body, Depth="1", Content_Type="application/xml")
    return r, time.monotonic() - started


def assert_too_much_work(r, took: float) -> None:
    assert r.status_code == 507, (r.status_code, r.text[:300])
    assert ET.fromstring(r.content).find(DAV + "number-of-matches-within-limits") is not None, r.text
    assert took < QUICK, took


@pytest.fixture(scope="module")
def rules(env):
    path = new_calendar(env, "Rules")
    for uid, rule in (("minutely", "FREQ=MINUTELY"), ("secondly", "FREQ=SECONDLY"), ("weekly", "FREQ=WEEKLY")):
        r = env.request("PUT", f"{path}{uid}.ics", calendar(vevent(uid, rule)), Content_Type="text/calendar")
        assert r.status_code == 201, r.text
    return path


def test_a_far_time_range_on_a_minutely_rule_is_refused_promptly(env, rules):
    r, took = report(env, rules, calendar_query("20900101T000000Z", "20910101T000000Z"))
    assert_too_much_work(r, took)
    # An ordinary range is answered, the minutely series included.
    r, _ = report(env, rules, calendar_query("20260101T010000Z", "20260101T020000Z"))
    assert r.status_code == 207, r.text
    assert "minutely.ics" in r.text and "secondly.ics" in r.text and "weekly.ics" not in r.text


def test_an_expansion_of_a_secondly_rule_is_refused_promptly(env, rules):
    r, took = report(env, rules, calendar_query("20260105T000000Z", "20260106T000000Z", expand=True))
    assert_too_much_work(r, took)


def test_ten_years_of_a_secondly_rule_expanded_are_refused_promptly_without_memory_growth(env, rules):
    before = rss_kb(env.server.pid())
    for _ in range(3):
        r, took = report(env, rules, calendar_query("20260101T000000Z", "20360101T000000Z", expand=True))
        assert_too_much_work(r, took)
    assert rss_kb(env.server.pid()) - before < 150_000, "the refused expansions grew the server"


def test_an_answer_with_more_instances_than_allowed_is_refused(env):
    """Two daily series: a month of both is answered, four years of both (2922 instances,
    each within the walk limit) is more than one answer may hold."""
    path = new_calendar(env, "Daily")
    for uid in ("daily-a", "daily-b"):
        r = env.request("PUT", f"{path}{uid}.ics", calendar(vevent(uid, "FREQ=DAILY")), Content_Type="text/calendar")
        assert r.status_code == 201, r.text
    r, _ = report(env, path, calendar_query("20270101T000000Z", "20270201T000000Z", expand=True))
    assert r.status_code == 207 and r.text.count("BEGIN:VEVENT") == 62, r.text[:300]
    r, took = report(env, path, calendar_query("20260101T000000Z", "20300101T000000Z", expand=True))
    assert_too_much_work(r, took)
    # Matching alone holds no instance: the same range without expand is answered.
    r, _ = report(env, path, calendar_query("20260101T000000Z", "20300101T000000Z"))
    assert r.status_code == 207 and r.text.count("daily-") == 2, r.text[:300]
    r, took = report(env, path, free_busy("20260101T000000Z", "20300101T000000Z"))
    assert_too_much_work(r, took)
    # The free-busy view of the calendar (a GET) holds the same bound.
    view = f"{path}?view=freebusy&start=20270101T000000Z&end=20270201T000000Z"
    r = env.request("GET", view)
    assert r.status_code == 200 and r.text.count("FREEBUSY") >= 31, r.text[:300]
    started = time.monotonic()
    r = env.request("GET", view.replace("20270201", "20300101"))
    assert_too_much_work(r, time.monotonic() - started)


def test_a_long_free_busy_range_is_refused_promptly(env, rules):
    r, took = report(env, rules, free_busy("20260101T000000Z", "20990101T000000Z"))
    assert_too_much_work(r, took)
    calm = new_calendar(env, "Calm")
    env.request("PUT", f"{calm}weekly.ics", calendar(vevent("weekly", "FREQ=WEEKLY")), Content_Type="text/calendar")
    r, _ = report(env, calm, free_busy("20260101T000000Z", "20260201T000000Z"))
    assert r.status_code == 200 and r.text.count("FREEBUSY;FBTYPE=BUSY:") == 5, r.text


# Ten minutes near the end of the Slow calendar's series: each is walked almost whole.
SLOW_QUERY = calendar_query("20260113T000000Z", "20260113T001000Z")


@pytest.fixture(scope="module")
def slow(env):
    """A calendar whose series are each just under the instance limit, so that a query over
    all of them takes far longer than the time limit."""
    path = new_calendar(env, "Slow")
    rule = f"FREQ=MINUTELY;COUNT={MAX_INSTANCES - 1000}"
    text = calendar(*(vevent(f"series-{i}", rule) for i in range(100)))
    r = env.request("PUT", path, text, Content_Type="text/calendar")
    assert r.status_code in (201, 204), r.text
    return path


def test_a_request_longer_than_its_time_limit_gets_507(env, slow):
    r, took = report(env, slow, SLOW_QUERY)
    assert r.status_code == 507, (r.status_code, r.text[:300])
    assert took < TIME_LIMIT + QUICK, took


def test_a_client_that_leaves_stops_its_request(env, slow):
    pid = env.server.pid()
    log_start = len(env.log())
    sock = send_report(env.port, slow, "demo", env.password, SLOW_QUERY)
    wait_for_cpu(pid, 0.3)  # well inside the time limit, which must not be what stops it
    sock.close()
    left = time.monotonic()
    line = "caldav: request of demo stopped: the client went away"
    wait_until(lambda: line in env.log()[log_start:], timeout=TIME_LIMIT, message="the request went on")
    assert time.monotonic() - left < TIME_LIMIT * 0.6
    assert "request of demo stopped: the request took more" not in env.log()[log_start:]


def test_one_users_slow_requests_leave_threads_for_others(env, slow):
    """As many slow REPORTs from one user as the gateway has threads (8): another user's
    PROPFIND is answered while all of them are still at work (one user holds 4 threads)."""
    hogs = [send_report(env.port, slow, "demo", env.password, SLOW_QUERY) for _ in range(8)]
    try:
        wait_for_cpu(env.server.pid(), 0.3)
        r = env.request("PROPFIND", "/caldav/other/Calendar/", auth=("other", "other-secret"), Depth="0")
        assert r.status_code == 207, r.text
        answered, _, _ = select.select(hogs, [], [], 0)
        assert not answered, "the other user's request waited for one of the slow ones to end"
    finally:
        for sock in hogs:
            sock.close()


def test_indexing_a_series_from_long_ago_expands_only_what_it_keeps():
    """The store's occurrence index keeps a series' first MAX_OCCURRENCES occurrences; a daily
    series from 1900 is not expanded over its 46,000 days to find them."""
    from server.occurrences import MAX_OCCURRENCES, occurrence_index

    text = calendar(vevent("old", "FREQ=DAILY", start="19000101T090000Z", end="19000101T100000Z"))
    started = time.monotonic()
    rows, until = occurrence_index(text)
    assert time.monotonic() - started < scaled(8)
    assert len(rows) == MAX_OCCURRENCES and rows[0] == (-2208956400, -2208952800)
    assert until == rows[-1][0] + 86400  # the next occurrence's start: indexed up to there


@pytest.mark.parametrize("body, precondition", [
    (free_busy("18000101T000000Z", "20260201T000000Z"), "min-date-time"),
    (calendar_query("20260101T000000Z", "29991231T000000Z"), "max-date-time"),
    (calendar_query("20260101T000000Z", "20260102T000000Z", expand=True).replace(
        '<c:expand start="20260101T000000Z" end="20260102T000000Z"/>',
        '<c:expand start="20260101T000000Z" end="22000101T000000Z"/>'), "max-date-time"),
])
def test_dates_beyond_the_calendar_limits_are_refused(env, rules, body, precondition):
    """RFC 4791 §7.8: a time-range (or expand) before CALDAV:min-date-time or after
    CALDAV:max-date-time is refused with 403 and that precondition, before any work."""
    r, took = report(env, rules, body)
    assert r.status_code == 403, (r.status_code, r.text[:300])
    assert ET.fromstring(r.content).find(f"{CAL}{precondition}") is not None, r.text
    assert took < QUICK


def test_calendars_show_their_date_limits(env, rules):
    body = ('<d:propfind xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop>'
            '<c:min-date-time/><c:max-date-time/></d:prop></d:propfind>')
    r = env.request("PROPFIND", rules, body, Depth="0", Content_Type="application/xml")
    assert r.status_code == 207, r.text
    root = ET.fromstring(r.content)
    assert root.find(f".//{CAL}min-date-time").text == "19000101T000000Z"
    assert root.find(f".//{CAL}max-date-time").text == "21000101T000000Z"
