"""iCalendar: the query columns of a calendar object (server/icalcolumns.py and its fast
line reader server/icalsimple.py) and the whole-calendar splitter of a feed import
(gateways/caldav/feed_import.py).

Input: a calendar as text (UTF-8, undecodable bytes replaced). It goes through
`calendar_columns` and `simple_columns`, then through `parse_feed`; every object the
feed is cut into goes through `calendar_columns` again, and the import plan is made
against a folder that holds the same objects.

Finding: an exception other than `BadRequest` from `calendar_columns` or `parse_feed`,
any exception from `simple_columns`, `content_key` or `plan_import`, columns from the
fast reader that differ from the full parser's (they promise to agree), or a plan that
does not see an unchanged feed as unchanged.
"""
from __future__ import annotations

from gateways.caldav.feed_import import content_key, folder_kind, parse_feed, plan_import
from server.icalcolumns import calendar_columns, etag_for
from server.icalsimple import simple_columns
from shared.errors import BadRequest


def check(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    full = columns(text)
    simple = simple_columns(text, etag_for(text))
    if simple is not None:
        assert simple == full, f"fast reader says {simple}, full parser {full}"
    try:
        feed = parse_feed(text)
    except BadRequest:
        return
    folder_kind(feed)
    stored = []
    for n, (uid, obj) in enumerate(feed.objects.items()):
        object_text = feed.object_text(obj)
        columns(object_text)
        content_key(object_text)
        stored.append((f"{n}.ics", uid, object_text))
    plan = plan_import(feed, stored)
    assert not plan.saves and not plan.deletes and plan.unchanged == len(feed.objects), plan


def columns(text: str) -> dict | None:
    try:
        return calendar_columns(text)
    except BadRequest:
        return None


if __name__ == "__main__":
    from fuzz.driver import run
    run(check, also=("icalendar",))
